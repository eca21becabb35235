"""What quality's use cases need from the outside, as protocols.

``adapters.storage.QualityStore`` and ``adapters.profile_client`` satisfy them over PostgreSQL
and gRPC (mypy checks it where the app wires them); ``tests/unit/fakes.py`` satisfies them in
memory, so the use cases run in the fast unit tier without a database. Every storage method is
one transaction of its own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from svod_quality.domain import BatchTally, ProfileFacts, ProfileSnapshot, QualityReport
from svod_quality.domain.records import PairKey, RecordCountRow, StoredRule, ViolationRow
from svod_quality.domain.rules import ValidationRule


class ProfileReader(Protocol):
    """The profile service, as the quality service needs it."""

    async def get(self, customer_id: str) -> ProfileSnapshot: ...

    def stream(self) -> AsyncIterator[ProfileSnapshot]: ...


class QualityRepository(Protocol):
    """The quality schema: rules, finding counts, peers' reports, facts and snapshots."""

    # -- validation rules
    async def list_rules(self, source: str | None = None) -> list[StoredRule]:
        """Every rule, or those that apply to ``source`` (its own and the all-sources ones)."""

    async def create_rule(self, rule: ValidationRule, actor: str = "") -> StoredRule:
        """Stores a new rule and logs who made it; AlreadyExists when the id is taken."""

    async def delete_rule(self, rule_id: str, actor: str = "") -> None:
        """Deletes a rule and logs who did; NotFound when there is none."""

    # -- findings
    async def add_tally(self, day: dt.date, source: str, tally: BatchTally) -> None:
        """Adds a batch's counts to the day's and source's."""

    async def violation_stats(
        self, since: dt.date, source: str | None
    ) -> tuple[list[ViolationRow], list[RecordCountRow]]: ...

    # -- what peers report
    async def report_duplicates(
        self,
        suspected: dict[PairKey, float],
        resolved: Iterable[PairKey],
        blocked: Iterable[tuple[str, str, str]],
        unblocked: Iterable[tuple[str, str, str]],
        at: dt.datetime,
    ) -> None:
        """Applies one report; rows only change for a report at least as new."""

    async def record_contact_failures(
        self, failures: Sequence[tuple[bytes, str, dt.datetime]]
    ) -> None:
        """(identifier hash, type, failure time); the latest failure of each is kept."""

    async def erase_customer(self, customer_id: str, hashes: Sequence[bytes]) -> int:
        """Forgets the customer's facts, pairs and contact failures; returns rows removed."""

    async def contact_failures(
        self, hashes: Sequence[bytes] | None = None
    ) -> dict[bytes, dt.datetime]: ...

    async def is_suspected_duplicate(self, customer_id: str) -> bool: ...

    # -- facts and the base report
    def refresh_lock(self) -> AbstractAsyncContextManager[int]:
        """Holds the refresh lock (one refresh at a time); yields a new refresh id."""

    async def save_facts(self, refresh_id: int, facts: Sequence[ProfileFacts]) -> None: ...

    async def drop_facts_except(self, refresh_id: int) -> None:
        """Drops the facts of profiles the refresh ``refresh_id`` did not see."""

    def iter_facts(self) -> AsyncIterator[ProfileFacts]: ...

    async def duplicate_counts(self) -> tuple[int, int]:
        """(suspected duplicate pairs, blocked identifiers)."""

    async def save_snapshot(self, report: QualityReport) -> None: ...

    async def snapshots(self, since: dt.date) -> list[QualityReport]:
        """The daily snapshots since ``since``, oldest first."""

    async def latest_snapshot_day(self) -> dt.date | None: ...
