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
from pathlib import Path
from typing import Protocol

from svod_runtime.custom_attributes import AttributeType
from svod_segmentation.domain.activation import (
    Binding,
    Contact,
    Delivery,
    DeliveryKind,
    DeliveryState,
    Destination,
    Sync,
)
from svod_segmentation.domain.attribution import Order, Touch
from svod_segmentation.domain.lookalike import CustomerFeatures
from svod_segmentation.domain.model import (
    CustomerEvent,
    CustomerSnapshot,
    Evaluation,
    EventColumns,
    Member,
    MembershipEvent,
    MembershipKind,
    MetricsSnapshot,
    Segment,
)
from svod_segmentation.domain.responsiveness import ChannelStats
from svod_segmentation.domain.rules import Rule
from svod_segmentation.domain.webhooks import HttpAnswer


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

    async def update_metrics(self, changes: Sequence[MetricsSnapshot]) -> set[str]:
        """Stores the metrics newer than those held (a customer not seen before is stored
        with its metrics alone); returns the customers stored."""

    async def customer_states(
        self, customer_ids: Sequence[str]
    ) -> dict[str, tuple[bool, str | None, bool]]:
        """(exists, merged into, erased) of each customer, locking them."""

    async def ensure_customers(self, customer_ids: Sequence[str]) -> None: ...

    async def ensure_customer(self, customer_id: str) -> None: ...

    async def add_events_many(
        self, events: Sequence[tuple[str, Sequence[CustomerEvent] | EventColumns]]
    ) -> None:
        """(customer, its events) pairs, stored in the order given."""

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
        events: list[tuple[str, str, MembershipKind, str]],
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


# -- activation and campaigns --------------------------------------------------------------


class ActivationUnit(Protocol):
    """One transaction over destinations, bindings, syncs, deliveries and the facts campaign
    reports read."""

    async def insert_destination(self, d: Destination) -> Destination:
        """Stores a new destination (raises KeyError when the id is taken)."""

    async def destination(self, destination_id: str) -> Destination | None: ...

    async def destinations(self, after: str, limit: int) -> list[Destination]: ...

    async def delete_destination(self, destination_id: str) -> None: ...

    async def insert_binding(self, b: Binding) -> Binding: ...

    async def binding(self, binding_id: str, *, lock: bool = False) -> Binding | None: ...

    async def bindings(self, segment_id: str = "", destination_id: str = "") -> list[Binding]: ...

    async def delete_binding(self, binding_id: str) -> None: ...

    async def lock_live_binding(self, binding_id: str) -> Binding | None:
        """The binding, locked for this transaction, unless another replica holds it."""

    async def live_binding_ids(self) -> list[str]: ...

    async def claim_scheduled(self, now: dt.datetime) -> list[Binding]:
        """Bindings whose scheduled full sync is due, moved on to their next time."""

    async def reconcile(
        self, binding_id: str, segment_id: str, channel: str
    ) -> list[tuple[str, bool, bool, str, str]]:
        """What the destination holds brought in line with the consenting members:
        (customer, was in, is in, old label, new label) of each difference."""

    async def replace_held(
        self, binding_id: str, segment_id: str, channel: str
    ) -> list[tuple[str, str]]:
        """A full sync: the destination holds exactly the consenting members now."""

    async def members(self, segment_id: str) -> list[tuple[str, str]]:
        """Every live member (customer, label), by customer."""

    async def member_count(self, segment_id: str) -> int: ...

    async def segment_exists(self, segment_id: str) -> bool: ...

    async def insert_sync(self, sync: Sync, scheduled: bool) -> None: ...

    async def finish_sync(self, sync: Sync) -> None: ...

    async def sync(self, sync_id: str) -> Sync | None: ...

    async def add_deliveries(
        self,
        binding: Binding,
        kind: DeliveryKind,
        item_pages: Sequence[Sequence[Sequence[str]]],
        sync_id: str = "",
    ) -> list[str]:
        """One delivery per page, numbered in order, each with its outbox message."""

    async def enqueue_export(self, binding_id: str, sync_id: str) -> None: ...

    async def delivery(self, delivery_id: str) -> Delivery | None: ...

    async def earlier_pending(self, binding_id: str, sequence: int) -> int | None:
        """The sequence of an earlier delivery of the binding still pending, if any."""

    async def record_attempt(
        self,
        delivery_id: str,
        state: DeliveryState,
        status: int,
        error: str,
        *,
        counted: bool,
        now: dt.datetime,
    ) -> None: ...

    async def deliveries(
        self, destination_id: str, state: DeliveryState | None, before: str, limit: int
    ) -> list[Delivery]: ...

    async def dead_letter_count(self, destination_id: str) -> int: ...

    async def states_of(self, destination_id: str, ids: Sequence[str]) -> dict[str, str]: ...

    async def redrive(
        self, destination_id: str, ids: Sequence[str] | None
    ) -> list[tuple[str, str]]:
        """Dead letters made pending again with a fresh attempt budget."""

    # -- campaign reports
    async def orders_and_touches(
        self,
        start: dt.datetime,
        end: dt.datetime,
        window: dt.timedelta,
        touch_types: Sequence[str],
        campaign_ids: Sequence[str],
    ) -> tuple[list[Order], list[Touch]]: ...

    async def responsiveness(self, customer_id: str) -> list[ChannelStats]: ...

    async def current_id(self, customer_id: str) -> str | None:
        """The customer (or its survivor), None when segmentation does not know it."""


class ActivationRepository(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[ActivationUnit]: ...


class ContactDirectory(Protocol):
    """The profile service: contacts and consents of customers, when a delivery is made."""

    async def contacts(self, customer_ids: list[str]) -> dict[str, Contact]: ...


class WebhookSender(Protocol):
    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> HttpAnswer: ...


class ExportFiles(Protocol):
    """Where file exports are written (each file whole or not at all)."""

    def write_csv(
        self, path: Path, header: Sequence[str] | None, rows: Sequence[Sequence[str]]
    ) -> None: ...

    def write_jsonl(self, path: Path, rows: Sequence[dict[str, str]]) -> None: ...
