"""Customer imports through identity's batch engine, and event imports through profile's
set-based event fold: their vocabulary and bounds."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from enum import StrEnum

from svod_ingestion.domain.model import StoredRecord
from svod_runtime.errors import ViolationCollector

# Records of one StageCustomerImport message: identity's StageImportRecords takes as many
# per message, so one message of ours is one of theirs.
MAX_IMPORT_RECORDS = 2_000
_IMPORT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class ImportKind(StrEnum):
    """What an import carries; customer and event imports share one namespace of ids."""

    CUSTOMERS = "customers"
    EVENTS = "events"

    @property
    def noun(self) -> str:
        """As in "no customer import 'x'"."""
        return "customer" if self is ImportKind.CUSTOMERS else "event"

    @property
    def items(self) -> str:
        """What one import of the kind takes: "records" or "events"."""
        return "records" if self is ImportKind.CUSTOMERS else "events"

    @property
    def other(self) -> ImportKind:
        return ImportKind.EVENTS if self is ImportKind.CUSTOMERS else ImportKind.CUSTOMERS


class ImportState(StrEnum):
    STAGING = "staging"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class ImportPhase(StrEnum):
    STAGING = "staging"
    # identity's batch engine resolves the records
    RESOLVING = "resolving"
    # the results are folded into the profiles, the records marked delivered
    FOLDING = "folding"
    # segmentation recomputes once for the import
    SEGMENTS = "segments"
    DONE = "done"


@dataclass(frozen=True)
class CustomerImport:
    import_id: str
    state: ImportState
    phase: ImportPhase
    records_staged: int = 0
    resolution_phase: str = ""
    records_total: int = 0
    records_resolved: int = 0
    results_after: int = 0
    records_delivered: int = 0
    records_failed: int = 0
    customers_created: int = 0
    records_linked: int = 0
    records_already_resolved: int = 0
    customers_merged: int = 0
    review_items_opened: int = 0
    error: str = ""
    created_at: dt.datetime | None = None
    committed_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    kind: ImportKind = ImportKind.CUSTOMERS
    # Event imports: events handed to the streaming delivery (not attributable when staged),
    # and what profile's fold did (see EventFoldProgress).
    events_handed_over: int = 0
    events_applied: int = 0
    events_duplicate: int = 0
    events_erased: int = 0
    customers_changed: int = 0


@dataclass(frozen=True)
class EventFoldProgress:
    """Profile's event import as the event import's job follows it."""

    state: str  # staging | committing | committed
    staged: int
    applied: int
    duplicate: int
    erased: int
    customers: int


@dataclass(frozen=True)
class ResolutionProgress:
    """Identity's batch job as the import's job follows it."""

    state: str  # staging | queued | running | succeeded | failed
    phase: str
    records_total: int
    records_done: int
    customers_created: int = 0
    records_linked: int = 0
    records_already_resolved: int = 0
    customers_merged: int = 0
    review_items_opened: int = 0
    error: str = ""


@dataclass(frozen=True)
class ImportResult:
    """Where identity placed one record of the import."""

    sequence: int
    source: str
    message_id: str
    customer_id: str
    # the record's identifiers as identity normalised them (serialised common.v1.Identifier)
    normalized_identifiers: tuple[bytes, ...]


# Not staged with identity when the import was committed (a message answered UNAVAILABLE and
# never sent again): such a record of the import is never resolved, so it fails, saying so.
NOT_STAGED = "not staged with identity before the import was committed; import it again"


def check_import_id(import_id: str, errors: ViolationCollector, field: str = "import_id") -> None:
    if not import_id:
        errors.add(field, "required")
    elif not _IMPORT_ID.fullmatch(import_id):
        errors.add(field, "1-128 characters of [A-Za-z0-9._:-]")


@dataclass(frozen=True)
class Staged:
    """What storing a message's records did: those stored now, and those stored before (with
    the import they came in with, None for another path)."""

    stored: dict[tuple[str, str], StoredRecord]
    earlier: dict[tuple[str, str], tuple[StoredRecord, str | None]]


class OtherKind(Exception):
    """The import id names an import of the other kind."""

    def __init__(self, kind: ImportKind) -> None:
        super().__init__(kind.value)
        self.kind = kind


class LostLease(Exception):
    """Another worker took the import's job over (this one was too slow to renew its lease):
    this one stops; the other goes on from the last step recorded."""
