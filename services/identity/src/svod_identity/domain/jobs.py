"""Batch jobs of the identity service: imports and re-resolutions, their states and phases.

A job is named by its ``job_id``: an import's id is chosen by the caller (ingestion's import
job), a re-resolution's by the caller or the service. One batch job runs at a time; a job whose
attempt dies is started again from the beginning (its write is one transaction), at most
``MAX_ATTEMPTS`` times. The enums mirror ``svod.identity.v1`` (parity is tested).
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.model import RecordRef, ResolutionOutcome
from svod_runtime import bounds
from svod_runtime.errors import ViolationCollector

MAX_JOB_ID = 128
_JOB_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Records of one StageImportRecords message.
MAX_STAGE_RECORDS = 2_000
# Results per ImportResultPage (ListImportResultPages).
RESULTS_PER_PAGE = 2_000
MAX_ATTEMPTS = 3


class JobKind(enum.Enum):
    """Mirrors ``svod.identity.v1.ResolutionJobKind``."""

    IMPORT = "import"
    RERESOLVE = "reresolve"


class JobState(enum.Enum):
    """Mirrors ``svod.identity.v1.ResolutionJobState``."""

    STAGING = "staging"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class JobPhase(enum.Enum):
    """Mirrors ``svod.identity.v1.ResolutionJobPhase``."""

    UNSPECIFIED = "unspecified"
    LOADING = "loading"
    BLOCKING = "blocking"
    SCORING = "scoring"
    PLACING = "placing"
    WRITING = "writing"
    DONE = "done"
    FITTING = "fitting"


def check_job_id(value: str, field_name: str, errors: ViolationCollector) -> None:
    """1-128 characters of [A-Za-z0-9._:-]: safe in logs, URLs and file names."""
    if not value:
        errors.add(field_name, "required")
    elif not _JOB_ID.match(value):
        errors.add(field_name, f"1-{MAX_JOB_ID} characters of A-Z a-z 0-9 . _ : -")


def new_reresolve_id() -> str:
    return f"reresolve-{uuid.uuid4()}"


def check_request_text(actor: str, reason: str, errors: ViolationCollector) -> None:
    bounds.check_text(actor, "actor", bounds.MAX_ACTOR, errors)
    bounds.check_text(reason, "reason", bounds.MAX_REASON, errors)


@dataclass(frozen=True)
class JobOutcome:
    """What a succeeded job did (imports) or found (re-resolutions: ``changes``)."""

    customers_created: int = 0
    records_linked: int = 0
    records_already_resolved: int = 0
    customers_merged: int = 0
    review_items_opened: int = 0
    # A re-resolution's report, as PreviewRules gives it (JSON-ready).
    changes: dict[str, Any] | None = None
    phase_seconds: dict[str, float] = field(default_factory=dict)
    # First and last record pk an import wrote: its results tell its records from those
    # the graph had before.
    written_pks: tuple[int, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "customers_created": self.customers_created,
            "records_linked": self.records_linked,
            "records_already_resolved": self.records_already_resolved,
            "customers_merged": self.customers_merged,
            "review_items_opened": self.review_items_opened,
            "changes": self.changes,
            "phase_seconds": self.phase_seconds,
            "written_pks": list(self.written_pks) if self.written_pks else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> JobOutcome:
        data = data or {}
        return cls(
            customers_created=int(data.get("customers_created", 0)),
            records_linked=int(data.get("records_linked", 0)),
            records_already_resolved=int(data.get("records_already_resolved", 0)),
            customers_merged=int(data.get("customers_merged", 0)),
            review_items_opened=int(data.get("review_items_opened", 0)),
            changes=data.get("changes"),
            phase_seconds={k: float(v) for k, v in (data.get("phase_seconds") or {}).items()},
            written_pks=(
                (int(data["written_pks"][0]), int(data["written_pks"][1]))
                if data.get("written_pks")
                else None
            ),
        )


@dataclass(frozen=True)
class Job:
    job_pk: int
    job_id: str
    kind: JobKind
    state: JobState
    phase: JobPhase
    dry_run: bool
    actor: str
    reason: str
    records_staged: int
    records_total: int
    records_done: int
    outcome: JobOutcome
    error: str
    attempts: int
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    # A PreviewRules job's candidate rules (``Rules.to_dict``); None: the rules in force.
    candidate_rules: dict[str, Any] | None = None


def new_preview_id() -> str:
    return f"preview-{uuid.uuid4()}"


@dataclass(frozen=True)
class StageResult:
    staged: int
    duplicates: int
    import_staged: int


@dataclass(frozen=True)
class ImportResult:
    sequence: int
    ref: RecordRef
    customer_id: str
    outcome: ResolutionOutcome
    identifiers: tuple[IdentifierKey, ...]
    rule: str
