"""What segmentation's use cases need from storage, as protocols.

``adapters.storage.SegmentationStore`` satisfies them over PostgreSQL (mypy checks it where
the app wires it); ``tests/unit/fakes.py`` satisfies them in memory, so the use cases run in
the fast unit tier without a database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from decimal import Decimal
from typing import Protocol

from svod_runtime.custom_attributes import AttributeType
from svod_segmentation.domain.lookalike import CustomerFeatures
from svod_segmentation.domain.model import (
    CustomerEvent,
    CustomerSnapshot,
    Evaluation,
    Member,
    MembershipEvent,
    Segment,
)
from svod_segmentation.domain.rules import Rule


class SegmentationUnit(Protocol):
    """One transaction over segmentation's data: everything in it commits or nothing does."""

    # -- definitions
    async def load_segments(self) -> dict[str, Segment]: ...

    async def lock_for_recompute(self) -> None:
        """Waits for changes in flight and holds new ones until the transaction ends."""

    async def save_segment(self, segment: Segment, *, create: bool, actor: str = "") -> Segment:
        """Stores a new version (raises KeyError when ``create`` and it exists)."""

    async def save_state(self, segment_id: str, state: dict[str, object]) -> None: ...

    async def delete_segment(self, segment_id: str, now: dt.datetime, actor: str = "") -> int:
        """Ends every membership with an exit event; returns how many ended."""

    async def member_counts(self, segment_ids: Sequence[str]) -> dict[str, int]: ...

    async def bump_generation(self) -> None: ...

    # -- population-wide evaluation
    async def bulk_settings(self) -> None: ...

    async def builtin_state(
        self, segment: Segment, segments: Mapping[str, Segment], now: dt.datetime
    ) -> dict[str, object]: ...

    async def recompute_many(
        self,
        segment_ids: Sequence[str],
        segments: Mapping[str, Segment],
        now: dt.datetime,
        per_segment: dict[str, tuple[int, int]] | None = None,
    ) -> tuple[int, int]: ...

    async def preview(
        self,
        rule: Rule,
        segments: Mapping[str, Segment],
        now: dt.datetime,
        sample: int,
        within: Sequence[str] | None = None,
    ) -> tuple[int, list[str]]: ...

    # -- the read model of profiles
    async def upsert_customers(self, snapshots: Sequence[CustomerSnapshot]) -> set[str]:
        """Stores the newer profiles; returns the customers stored."""

    async def customer_states(
        self, customer_ids: Sequence[str]
    ) -> dict[str, tuple[bool, str | None, bool]]:
        """(exists, merged into, erased) of each customer, locking them."""

    async def ensure_customers(self, customer_ids: Sequence[str]) -> None: ...

    async def ensure_customer(self, customer_id: str) -> None: ...

    async def add_events_many(self, events: Sequence[tuple[str, CustomerEvent]]) -> None: ...

    async def move_events(self, customer_id: str, events: Sequence[CustomerEvent]) -> None: ...

    async def unmerge(self, customer_ids: Sequence[str]) -> None: ...

    async def merge(self, survivor: str, merged: Sequence[str]) -> None: ...

    # -- incremental evaluation
    async def evaluate_current(
        self, customer_ids: Sequence[str], now: dt.datetime
    ) -> list[Evaluation]:
        """The customers against the current definitions, with their stored memberships."""

    async def write_changes(
        self,
        removed: list[tuple[str, str]],
        put: list[tuple[str, str, str]],
        events: list[tuple[str, str, str, str]],
        now: dt.datetime,
    ) -> None: ...

    async def set_rechecks(self, due: dict[str, dt.datetime | None]) -> None: ...

    async def claim_due(self, now: dt.datetime, limit: int) -> list[str]: ...

    # -- look-alikes
    async def segment_members(self, segment_id: str) -> list[str]: ...

    async def load_features(
        self, now: dt.datetime, population: Sequence[str] | None
    ) -> list[CustomerFeatures]: ...

    async def replace_scores(
        self, segment_id: str, chosen: Sequence[tuple[str, float]]
    ) -> None: ...

    async def drop_scores(self, segment_id: str) -> None: ...

    # -- reads
    async def members(self, segment_id: str, after: str, limit: int) -> list[Member]: ...

    async def members_with_consent(
        self, segment_id: str, channel: str, after: str, limit: int
    ) -> list[Member]: ...

    async def rfm_inputs(
        self, customer_ids: Sequence[str]
    ) -> dict[str, tuple[dt.datetime | None, int, Decimal]]: ...

    async def customer_memberships(self, customer_id: str) -> list[Member]: ...

    async def current_id(self, customer_id: str) -> str: ...

    async def feed_start(self) -> tuple[int, int]: ...

    async def feed(
        self, after: tuple[int, int], segment_ids: Sequence[str] | None, limit: int
    ) -> list[MembershipEvent]: ...

    async def is_erased(self, customer_id: str) -> bool: ...

    async def erase(self, customer_id: str, now: dt.datetime) -> int: ...


class SegmentationRepository(Protocol):
    """Where segmentation's data lives: transactions over it."""

    @property
    def declared(self) -> Mapping[str, AttributeType]:
        """Declared custom attributes' types: rules compare them by type."""

    def transaction(self) -> AbstractAsyncContextManager[SegmentationUnit]: ...

    def definitions_changed(self) -> None:
        """This process changed the definitions (evaluations compile them again)."""
