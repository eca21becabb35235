"""In-memory segmentation storage: satisfies ``service_layer.ports`` without PostgreSQL.

It keeps what the use cases read and write (definitions with versions, profiles, merges,
memberships, the membership feed, recheck times, erasures) and commits a transaction only when
its block ends without an error, as the database does. Rules are evaluated in Python for the
part of the language the unit tests use: conditions on profile fields, attributes and
consents, ``all``/``any``/``not`` and membership of another segment. Behaviour conditions,
relative times and the built-ins are the SQL compiler's and are tested against PostgreSQL
(``tests/integration``); the fake refuses them rather than guess.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation

from svod_runtime.custom_attributes import AttributeType
from svod_segmentation.domain.fields import NO_DECLARATIONS
from svod_segmentation.domain.lookalike import CustomerFeatures
from svod_segmentation.domain.model import (
    METRIC_FIELDS,
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
from svod_segmentation.domain.rules import AllOf, AnyOf, FieldCondition, InSegment, Not, Rule
from svod_segmentation.service_layer.ports import SegmentationRepository, SegmentationUnit

# A whole profile older than the metrics held keeps these (the adapter's metric columns).
_KEPT_WITH_METRICS = (*METRIC_FIELDS, "updated_at")


@dataclass
class FakeCustomer:
    snapshot: CustomerSnapshot | None = None
    merged_into: str | None = None
    # The version of the metrics held (versioned apart from the rest, as the adapter does).
    metrics_version: int = 0


@dataclass
class State:
    segments: dict[str, Segment] = field(default_factory=dict)
    versions: list[tuple[str, int, str, bool]] = field(default_factory=list)  # id, v, actor, del
    generation: int = 0
    customers: dict[str, FakeCustomer] = field(default_factory=dict)
    events: dict[tuple[str, str], tuple[str, CustomerEvent]] = field(default_factory=dict)
    erased: set[str] = field(default_factory=set)
    # (segment, customer) -> (label, entered at)
    memberships: dict[tuple[str, str], tuple[str, dt.datetime]] = field(default_factory=dict)
    feed: list[MembershipEvent] = field(default_factory=list)
    rechecks: dict[str, dt.datetime] = field(default_factory=dict)
    scores: dict[str, list[tuple[str, float]]] = field(default_factory=dict)


def _value(snapshot: CustomerSnapshot, name: str) -> object:
    if name.startswith("attributes."):
        return snapshot.attributes.get(name.removeprefix("attributes."))
    if name.startswith("consents."):
        return snapshot.consents.get(name.removeprefix("consents."))
    if name.startswith("metrics."):
        name = name.removeprefix("metrics.")
    if name in {"sources", "identifier_types", "channels"}:
        raise NotImplementedError(f"fake evaluates no list field ({name})")
    value = getattr(snapshot, name)
    return value if value not in ("", None) else None


def _number(text: object) -> Decimal | None:
    try:
        return Decimal(str(text))
    except InvalidOperation:
        return None


def _holds(cond: FieldCondition, snapshot: CustomerSnapshot) -> bool:
    value = _value(snapshot, cond.field)
    op, values = cond.operator, cond.values
    if op == "is_set":
        return value is not None
    if value is None:
        return op == "ne"
    if op in ("eq", "ne", "in"):
        numeric = isinstance(value, (int, Decimal))
        left = _number(value) if numeric else str(value)
        rights = [_number(v) if numeric else v for v in values]
        found = left in rights
        return not found if op == "ne" else found
    if op in ("lt", "le", "gt", "ge", "between"):
        left_n, rights_n = _number(value), [_number(v) for v in values]
        if left_n is None or None in rights_n:
            return False
        if op == "between":
            low, high = rights_n
            assert low is not None and high is not None
            return low <= left_n <= high
        right = rights_n[0]
        assert right is not None
        return {
            "lt": left_n < right,
            "le": left_n <= right,
            "gt": left_n > right,
            "ge": left_n >= right,
        }[op]
    if op == "contains":
        return values[0] in str(value)
    if op == "starts_with":
        return str(value).startswith(values[0])
    raise NotImplementedError(f"fake evaluates no {op!r} condition")


def _matches(
    rule: Rule | None,
    snapshot: CustomerSnapshot,
    segments: Mapping[str, Segment],
    labels: dict[str, str | None],
) -> bool:
    if rule is None:
        return False
    if isinstance(rule, AllOf):
        return all(_matches(n, snapshot, segments, labels) for n in rule.nodes)
    if isinstance(rule, AnyOf):
        return any(_matches(n, snapshot, segments, labels) for n in rule.nodes)
    if isinstance(rule, Not):
        return not _matches(rule.node, snapshot, segments, labels)
    if isinstance(rule, FieldCondition):
        return _holds(rule, snapshot)
    if isinstance(rule, InSegment):
        label = _label(rule.segment_id, snapshot, segments, labels)
        return label is not None and (not rule.labels or label in rule.labels)
    raise NotImplementedError(f"fake evaluates no {type(rule).__name__}")


def _label(
    segment_id: str,
    snapshot: CustomerSnapshot,
    segments: Mapping[str, Segment],
    labels: dict[str, str | None],
) -> str | None:
    """The customer's label in the segment ("" for a rule segment), None when not in it."""
    if segment_id not in labels:
        definition = segments[segment_id].definition
        if definition.builtin:
            raise NotImplementedError(f"fake evaluates no built-in ({definition.builtin})")
        inside = _matches(definition.rule, snapshot, segments, labels)
        labels[segment_id] = "" if inside else None
    return labels[segment_id]


def now_in(customer: FakeCustomer, segments: Mapping[str, Segment]) -> dict[str, str]:
    if customer.merged_into is not None or customer.snapshot is None:
        return {}
    labels: dict[str, str | None] = {}
    out = {}
    for segment_id in sorted(segments):
        label = _label(segment_id, customer.snapshot, segments, labels)
        if label is not None:
            out[segment_id] = label
    return out


class FakeUnit:
    def __init__(self, state: State) -> None:
        self.s = state

    def _log(
        self, segment_id: str, customer_id: str, kind: MembershipKind, label: str, at: dt.datetime
    ):
        position = (1, len(self.s.feed) + 1)
        self.s.feed.append(MembershipEvent(segment_id, customer_id, kind, at, label, position))

    def _was_in(self, customer_id: str) -> dict[str, str]:
        return {s: label for (s, c), (label, _) in self.s.memberships.items() if c == customer_id}

    # -- definitions
    async def load_segments(self) -> dict[str, Segment]:
        return dict(sorted(self.s.segments.items()))

    async def lock_for_recompute(self) -> None:
        pass

    async def save_segment(self, segment: Segment, *, create: bool, actor: str = "") -> Segment:
        current = self.s.segments.get(segment.segment_id)
        if create and current is not None:
            raise KeyError(segment.segment_id)
        assert create or current is not None
        version = 1 if current is None else current.version + 1
        state = (
            current.state
            if current is not None and current.definition.builtin == segment.definition.builtin
            else {}
        )
        saved = replace(segment, version=version, state=state, member_count=0)
        self.s.segments[segment.segment_id] = saved
        self.s.versions.append((segment.segment_id, version, actor, False))
        self.s.generation += 1
        return replace(saved, state={})

    async def save_state(self, segment_id: str, state: dict[str, object]) -> None:
        self.s.segments[segment_id] = replace(self.s.segments[segment_id], state=state)

    async def delete_segment(self, segment_id: str, now: dt.datetime, actor: str = "") -> int:
        ended = sorted(
            (c, label) for (s, c), (label, _) in self.s.memberships.items() if s == segment_id
        )
        for customer_id, label in ended:
            del self.s.memberships[(segment_id, customer_id)]
            self._log(segment_id, customer_id, MembershipKind.EXITED, label, now)
        gone = self.s.segments.pop(segment_id)
        self.s.versions.append((segment_id, gone.version + 1, actor, True))
        self.s.generation += 1
        return len(ended)

    async def member_counts(self, segment_ids: Sequence[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for segment_id, _ in self.s.memberships:
            if segment_id in segment_ids:
                counts[segment_id] = counts.get(segment_id, 0) + 1
        return counts

    async def bump_generation(self) -> None:
        self.s.generation += 1

    # -- population-wide evaluation
    async def bulk_settings(self) -> None:
        pass

    async def builtin_state(
        self, segment: Segment, segments: Mapping[str, Segment], now: dt.datetime
    ) -> dict[str, object]:
        raise NotImplementedError("built-in cut-offs are computed in SQL")

    async def recompute_many(
        self,
        segment_ids: Sequence[str],
        segments: Mapping[str, Segment],
        now: dt.datetime,
        per_segment: dict[str, tuple[int, int]] | None = None,
    ) -> tuple[int, int]:
        entered = exited = 0
        for segment_id in segment_ids:
            came = left = 0
            for customer_id, customer in sorted(self.s.customers.items()):
                after = now_in(customer, segments).get(segment_id)
                held = self.s.memberships.get((segment_id, customer_id))
                before = None if held is None else held[0]
                if before == after:
                    continue
                if before is not None:
                    left += 1
                    self._log(segment_id, customer_id, MembershipKind.EXITED, before, now)
                    del self.s.memberships[(segment_id, customer_id)]
                if after is not None:
                    came += 1
                    self._log(segment_id, customer_id, MembershipKind.ENTERED, after, now)
                    self.s.memberships[(segment_id, customer_id)] = (after, now)
            entered, exited = entered + came, exited + left
            if per_segment is not None:
                per_segment[segment_id] = (came, left)
        return entered, exited

    async def preview(
        self,
        rule: Rule,
        segments: Mapping[str, Segment],
        now: dt.datetime,
        sample: int,
        within: Sequence[str] | None = None,
    ) -> tuple[int, list[str]]:
        chosen = []
        for customer_id, customer in sorted(self.s.customers.items()):
            if customer.merged_into is not None or customer.snapshot is None:
                continue
            if within is not None and not any(
                (s, customer_id) in self.s.memberships for s in within
            ):
                continue
            if _matches(rule, customer.snapshot, segments, {}):
                chosen.append(customer_id)
        return len(chosen), chosen[:sample]

    # -- the read model of profiles
    async def upsert_customers(self, snapshots: Sequence[CustomerSnapshot]) -> set[str]:
        stored = set()
        for snapshot in snapshots:
            if snapshot.customer_id in self.s.erased:
                continue
            customer = self.s.customers.setdefault(snapshot.customer_id, FakeCustomer())
            older = customer.snapshot is None or (
                customer.snapshot.profile_version < snapshot.profile_version
            )
            if older and customer.merged_into is None:
                if customer.snapshot is not None and (
                    customer.metrics_version >= snapshot.profile_version
                ):  # newer metrics held: kept
                    kept = {f: getattr(customer.snapshot, f) for f in _KEPT_WITH_METRICS}
                    snapshot = replace(snapshot, **kept)
                customer.snapshot = snapshot
                customer.metrics_version = max(customer.metrics_version, snapshot.profile_version)
                stored.add(snapshot.customer_id)
        return stored

    async def update_metrics(self, changes: Sequence[MetricsSnapshot]) -> set[str]:
        stored = set()
        for change in changes:
            if change.customer_id in self.s.erased:
                continue
            customer = self.s.customers.setdefault(change.customer_id, FakeCustomer())
            if customer.merged_into is not None or customer.metrics_version >= (
                change.profile_version
            ):
                continue
            held = customer.snapshot or CustomerSnapshot(change.customer_id, 0)
            customer.snapshot = replace(
                held,
                updated_at=change.updated_at,
                created_at=held.created_at or change.created_at,
                **{f: getattr(change, f) for f in METRIC_FIELDS},
            )
            customer.metrics_version = change.profile_version
            stored.add(change.customer_id)
        return stored

    async def customer_states(
        self, customer_ids: Sequence[str]
    ) -> dict[str, tuple[bool, str | None, bool]]:
        out = {}
        for customer_id in customer_ids:
            customer = self.s.customers.get(customer_id)
            merged = None if customer is None else customer.merged_into
            out[customer_id] = (customer is not None, merged, customer_id in self.s.erased)
        return out

    async def ensure_customers(self, customer_ids: Sequence[str]) -> None:
        for customer_id in customer_ids:
            self.s.customers.setdefault(customer_id, FakeCustomer())

    async def ensure_customer(self, customer_id: str) -> None:
        self.s.customers.setdefault(customer_id, FakeCustomer())

    async def add_events_many(
        self, events: Sequence[tuple[str, Sequence[CustomerEvent] | EventColumns]]
    ) -> None:
        for customer_id, part in events:
            for event in part if not isinstance(part, EventColumns) else _from_columns(part):
                self.s.events.setdefault((event.source, event.message_id), (customer_id, event))

    async def move_events(self, customer_id: str, events: Sequence[CustomerEvent]) -> None:
        for event in events:
            self.s.events[(event.source, event.message_id)] = (customer_id, event)

    async def unmerge(self, customer_ids: Sequence[str]) -> None:
        for customer_id in customer_ids:
            if customer_id in self.s.customers:
                self.s.customers[customer_id].merged_into = None

    async def merge(self, survivor: str, merged: Sequence[str]) -> None:
        for customer_id in merged:
            self.s.customers.setdefault(customer_id, FakeCustomer()).merged_into = survivor
            self.s.rechecks.pop(customer_id, None)
        for customer in self.s.customers.values():
            if customer.merged_into in merged:
                customer.merged_into = survivor
        for key, (owner, event) in list(self.s.events.items()):
            if owner in merged:
                self.s.events[key] = (survivor, event)

    # -- incremental evaluation
    async def evaluate_current(
        self, customer_ids: Sequence[str], now: dt.datetime
    ) -> list[Evaluation]:
        out = []
        for customer_id in customer_ids:
            customer = self.s.customers.get(customer_id)
            if customer is None:
                continue
            out.append(
                Evaluation(
                    customer_id=customer_id,
                    now_in=now_in(customer, self.s.segments),
                    was_in=self._was_in(customer_id),
                    due=None,
                    generation=self.s.generation,
                    recheck_due=self.s.rechecks.get(customer_id),
                )
            )
        return out

    async def write_changes(
        self,
        removed: list[tuple[str, str]],
        put: list[tuple[str, str, str]],
        events: list[tuple[str, str, MembershipKind, str]],
        now: dt.datetime,
    ) -> None:
        for key in removed:
            del self.s.memberships[key]
        for segment_id, customer_id, label in put:
            self.s.memberships[(segment_id, customer_id)] = (label, now)
        for segment_id, customer_id, kind, label in events:
            self._log(segment_id, customer_id, kind, label, now)

    async def set_rechecks(self, due: dict[str, dt.datetime | None]) -> None:
        for customer_id, at in due.items():
            if at is None:
                self.s.rechecks.pop(customer_id, None)
            else:
                self.s.rechecks[customer_id] = at

    async def claim_due(self, now: dt.datetime, limit: int) -> list[str]:
        due = sorted((at, c) for c, at in self.s.rechecks.items() if at <= now)[:limit]
        for _, customer_id in due:
            del self.s.rechecks[customer_id]
        return [c for _, c in due]

    # -- look-alikes
    async def segment_members(self, segment_id: str) -> list[str]:
        return sorted(c for s, c in self.s.memberships if s == segment_id)

    async def load_features(
        self, now: dt.datetime, population: Sequence[str] | None
    ) -> list[CustomerFeatures]:
        raise NotImplementedError("look-alike features are read in SQL")

    async def replace_scores(self, segment_id: str, chosen: Sequence[tuple[str, float]]) -> None:
        self.s.scores[segment_id] = list(chosen)

    async def drop_scores(self, segment_id: str) -> None:
        self.s.scores.pop(segment_id, None)

    # -- reads
    async def members(self, segment_id: str, after: str, limit: int) -> list[Member]:
        rows = [
            Member(c, at, label, s)
            for (s, c), (label, at) in self.s.memberships.items()
            if s == segment_id and c > after
        ]
        return sorted(rows, key=lambda m: m.customer_id)[:limit]

    async def members_with_consent(
        self, segment_id: str, channel: str, after: str, limit: int
    ) -> list[Member]:
        def opted_in(customer_id: str) -> bool:
            customer = self.s.customers.get(customer_id)
            return (
                customer is not None
                and customer.merged_into is None
                and customer.snapshot is not None
                and customer.snapshot.consents.get(channel) == "opted_in"
            )

        rows = await self.members(segment_id, after, len(self.s.memberships))
        return [m for m in rows if opted_in(m.customer_id)][:limit]

    async def rfm_inputs(
        self, customer_ids: Sequence[str]
    ) -> dict[str, tuple[dt.datetime | None, int, Decimal]]:
        out = {}
        for customer_id in customer_ids:
            customer = self.s.customers.get(customer_id)
            if customer is not None and customer.snapshot is not None:
                snap = customer.snapshot
                out[customer_id] = (snap.last_order_at, snap.order_count, snap.total_spent)
        return out

    async def customer_memberships(self, customer_id: str) -> list[Member]:
        return sorted(
            (
                Member(customer_id, at, label, s)
                for (s, c), (label, at) in self.s.memberships.items()
                if c == customer_id
            ),
            key=lambda m: m.segment_id,
        )

    async def current_id(self, customer_id: str) -> str:
        customer = self.s.customers.get(customer_id)
        if customer is None or customer.merged_into is None:
            return customer_id
        return customer.merged_into

    async def feed_start(self) -> tuple[int, int]:
        return (1, len(self.s.feed))

    async def feed(
        self, after: tuple[int, int], segment_ids: Sequence[str] | None, limit: int
    ) -> list[MembershipEvent]:
        found = [
            e
            for e in self.s.feed
            if e.position > after and (segment_ids is None or e.segment_id in segment_ids)
        ]
        return found[:limit]

    async def is_erased(self, customer_id: str) -> bool:
        return customer_id in self.s.erased

    async def erase(self, customer_id: str, now: dt.datetime) -> int:
        ids = {customer_id} | {
            c for c, customer in self.s.customers.items() if customer.merged_into == customer_id
        }
        gone = sorted((s, c) for s, c in self.s.memberships if c in ids)
        for segment_id, member in gone:
            del self.s.memberships[(segment_id, member)]
        self.s.feed = [e for e in self.s.feed if e.customer_id not in ids]
        for segment_id, member in gone:
            self._log(segment_id, member, MembershipKind.EXITED, "", now)
        for key, (owner, _) in list(self.s.events.items()):
            if owner in ids:
                del self.s.events[key]
        for member in ids:
            self.s.rechecks.pop(member, None)
            self.s.customers.pop(member, None)
        self.s.erased |= ids
        return len(gone)


class FakeSegmentationStore:
    """A store whose transactions commit on success and leave nothing behind on error."""

    def __init__(self, declared: Mapping[str, AttributeType] = NO_DECLARATIONS) -> None:
        self.declared = declared
        self.state = State()
        self.transactions = 0
        self.compilations_dropped = 0

    def definitions_changed(self) -> None:
        self.compilations_dropped += 1

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SegmentationUnit]:
        working = copy.deepcopy(self.state)
        yield FakeUnit(working)
        # Reached only when the block raised nothing: commit.
        self.state = working
        self.transactions += 1


def _conforms(store: FakeSegmentationStore) -> SegmentationRepository:
    return store  # mypy: the fake satisfies the port the use cases depend on


def _from_columns(columns: EventColumns) -> list[CustomerEvent]:
    """The events of columns (categories of plain words only: the fake's tests use no
    other)."""
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return [
        CustomerEvent(
            source,
            message_id,
            event_type,
            epoch + dt.timedelta(microseconds=us),
            Decimal(amount) if amount else None,
            Decimal(discount) if discount else None,
            tuple(categories.strip("{}").split(",")) if categories else (),
            channel,
            json.loads(properties) if properties else {},
            reference_id,
            order_id,
        )
        for (
            source,
            message_id,
            event_type,
            us,
            channel,
            amount,
            discount,
            categories,
            properties,
            reference_id,
            order_id,
        ) in zip(*columns.columns(), strict=True)
    ]
