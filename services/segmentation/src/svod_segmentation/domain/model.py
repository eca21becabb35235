"""Segmentation's vocabulary: segments, profile snapshots, events, memberships."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from decimal import Decimal
from enum import StrEnum
from typing import Any

from svod_segmentation.domain.rules import SegmentDefinition


@dataclass(frozen=True)
class Segment:
    definition: SegmentDefinition
    display_name: str = ""
    description: str = ""
    version: int = 0
    member_count: int = 0
    updated_at: dt.datetime | None = None
    # Computed state of a built-in (cut-offs), JSON-able.
    state: dict[str, object] = field(default_factory=dict)

    @property
    def segment_id(self) -> str:
        return self.definition.segment_id


# The snapshots are made per announced change and have 20-40 fields: not frozen, with slots
# (a frozen MetricsSnapshot took 8 us of CPU to make, half of a metrics change's conversion;
# probe). Nothing changes one once made.
@dataclass(slots=True, kw_only=True)
class MetricValues:
    """A profile's metrics as the read model holds them: part of every snapshot, and all a
    metrics change (events applied) carries."""

    currency: str = ""
    order_count: int = 0
    total_spent: Decimal = Decimal(0)
    average_order_value: Decimal = Decimal(0)
    return_count: int = 0
    total_returned: Decimal = Decimal(0)
    first_order_at: dt.datetime | None = None
    last_order_at: dt.datetime | None = None
    last_contact_at: dt.datetime | None = None
    channels: tuple[str, ...] = ()
    items_bought: int = 0
    abandoned_cart_count: int = 0
    campaign_delivered_count: int = 0
    campaign_opened_count: int = 0
    campaign_clicked_count: int = 0
    session_count: int = 0
    support_ticket_count: int = 0
    last_support_ticket_at: dt.datetime | None = None
    loyalty_points_balance: int = 0


# The snapshot's fields that come from the profile's metrics (a metrics change carries these).
METRIC_FIELDS = tuple(f.name for f in fields(MetricValues))


@dataclass(slots=True)
class CustomerSnapshot(MetricValues):
    """The fields of a profile that rules can test (the read model's row)."""

    customer_id: str
    profile_version: int
    first_name: str = ""
    last_name: str = ""
    middle_name: str = ""
    gender: str = ""
    birth_date: dt.date | None = None
    city: str = ""
    region: str = ""
    country_code: str = ""
    postal_code: str = ""
    sources: tuple[str, ...] = ()
    identifier_types: tuple[str, ...] = ()
    # channel -> "opted_in" / "opted_out"
    consents: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


@dataclass(slots=True)
class MetricsSnapshot(MetricValues):
    """A profile's metrics alone, at a version (a change that only applied events): the read
    model versions them apart from the rest of the profile (see ProfileChange.metrics)."""

    customer_id: str
    profile_version: int
    updated_at: dt.datetime | None = None
    # Stored when none is held yet (a customer whose profile so far is its metrics).
    created_at: dt.datetime | None = None


# Not frozen, with slots: one is made per announced event, and a frozen dataclass' __init__
# (object.__setattr__ per field) took 2.2 us of CPU against 0.3 (probe, 11 fields); nothing
# changes an event once made.
@dataclass(slots=True)
class CustomerEvent:
    source: str
    message_id: str
    event_type: str
    occurred_at: dt.datetime
    amount: Decimal | None = None
    discount: Decimal | None = None
    categories: tuple[str, ...] = ()
    channel: str = ""
    properties: dict[str, str] = field(default_factory=dict)
    # The campaign (or ticket) id, and the order id, of the event.
    reference_id: str = ""
    order_id: str = ""


@dataclass(frozen=True)
class EventColumns:
    """A change's events in columns (ApplyProfileChangeRequest.new_event_columns): the i-th
    value of each column is the i-th event's. Kept in the form the read model's statement
    reads (svod_segmentation.adapters.storage), so nothing is made per event: a CustomerEvent
    and its row per announced event were most of segmentation's conversion CPU on an event
    import (docs/performance.md, "Announcing events in columns").

    ``occurred_us``: microseconds since the Unix epoch; ``amount``, ``discount``: decimal
    text, "" for none; ``categories``: a PostgreSQL array literal, "" for none;
    ``properties``: a JSON object, "" for none; the rest as CustomerEvent's fields."""

    source: Sequence[str]
    message_id: Sequence[str]
    event_type: Sequence[str]
    occurred_us: Sequence[int]
    channel: Sequence[str]
    amount: Sequence[str]
    discount: Sequence[str]
    categories: Sequence[str]
    properties: Sequence[str]
    reference_id: Sequence[str]
    order_id: Sequence[str]

    def __len__(self) -> int:
        return len(self.source)

    def columns(self) -> tuple[Sequence[Any], ...]:
        """Every column, in the order of the fields."""
        return (
            self.source,
            self.message_id,
            self.event_type,
            self.occurred_us,
            self.channel,
            self.amount,
            self.discount,
            self.categories,
            self.properties,
            self.reference_id,
            self.order_id,
        )


@dataclass(frozen=True)
class SplitSide:
    """The customer a split took records and events from (see ProfileChange.split)."""

    source_customer_id: str
    snapshot: CustomerSnapshot | None
    moved_events: tuple[CustomerEvent, ...] = ()


@dataclass(frozen=True)
class ProfileChange:
    customer_id: str
    profile_version: int
    snapshot: CustomerSnapshot | None
    events: tuple[CustomerEvent, ...] = ()
    merged_customer_ids: tuple[str, ...] = ()
    # The change's events in columns (applied after ``events``, when both are given).
    event_columns: EventColumns | None = None
    # Set when records were split off another customer into this one.
    split: SplitSide | None = None
    # Set, without a snapshot, when only the profile's metrics changed (events applied).
    metrics: MetricsSnapshot | None = None

    @property
    def customer_ids(self) -> frozenset[str]:
        """Every customer the change touches (its changes must keep their order)."""
        ids = {self.customer_id, *self.merged_customer_ids}
        if self.split is not None:
            ids.add(self.split.source_customer_id)
        return frozenset(ids)


@dataclass(frozen=True)
class ChangeOutcome:
    profile_applied: bool
    entered: tuple[str, ...] = ()
    exited: tuple[str, ...] = ()


@dataclass(frozen=True)
class Member:
    customer_id: str
    entered_at: dt.datetime
    label: str = ""
    segment_id: str = ""
    # (R, F, M) for members of an RFM built-in.
    rfm_scores: tuple[int, int, int] | None = None


class MembershipKind(StrEnum):
    """A change of membership: in a membership event and in a live binding's change delivery."""

    ENTERED = "entered"
    EXITED = "exited"


@dataclass(frozen=True)
class MembershipEvent:
    segment_id: str
    customer_id: str
    kind: MembershipKind
    at: dt.datetime
    label: str
    position: tuple[int, int]  # (transaction id, event id): the resume position


@dataclass(frozen=True)
class RecomputeOutcome:
    entered: int
    exited: int
    seconds: float


@dataclass(frozen=True)
class Evaluation:
    """One customer evaluated against every segment."""

    customer_id: str
    # segment id -> label ("" for rule segments) of the segments the customer is in now.
    now_in: dict[str, str]
    # segment id -> label of the memberships stored before.
    was_in: dict[str, str]
    due: dt.datetime | None
    generation: int
    # the recheck time stored before (None: none)
    recheck_due: dt.datetime | None = None
