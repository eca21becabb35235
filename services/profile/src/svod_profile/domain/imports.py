"""Event imports (issue 22): a file of history staged, then folded into metrics at once."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

from svod_runtime.errors import FieldViolation, InvalidArgument

# Events per StageEventImport message (as identity's StageImportRecords takes 2,000 records).
MAX_STAGE_EVENTS = 2000
# Records per FoldCustomerImport call (the same bound).
MAX_FOLD_RECORDS = 2000
_IMPORT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class ImportState(IntEnum):
    """Stored in ``event_imports.state``; the numbers are EventImport.State's."""

    STAGING = 1
    COMMITTING = 2
    COMMITTED = 3


@dataclass(frozen=True)
class EventImport:
    import_id: str
    state: ImportState
    staged: int = 0
    applied: int = 0
    duplicates: int = 0
    erased: int = 0
    customers: int = 0
    created_at: dt.datetime | None = None
    committed_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None


@dataclass(frozen=True)
class Staged:
    """What staging one message did."""

    staged: int
    duplicates: int
    import_staged: int


class StagedEvent(NamedTuple):
    """An event to stage: its record ref and its row as the store writes it (the store's
    ``staged_event`` makes it of a customer id and an EventFact; the servicer of a plain order
    event's fields directly)."""

    source: str
    message_id: str
    row: str


@dataclass(frozen=True)
class ChunkFolded:
    """What one transaction of a commit did."""

    applied: int
    duplicates: int
    erased: int
    customers: int


def check_import_id(import_id: str, field: str = "import_id") -> None:
    if not _IMPORT_ID.fullmatch(import_id):
        raise InvalidArgument(
            [FieldViolation(field, "required: 1-128 characters of [A-Za-z0-9._:-]")]
        )
