"""In-memory identity storage: satisfies ``service_layer.ports`` without PostgreSQL.

It keeps what the merge, split, review, ledger and look-up use cases read and write (customers
and where they were merged, records, held identifiers, the ledger, review items, kept-apart
pairs, the outbox) and commits a transaction only when its block ends without an error, as the
database does. Resolution (``StateLoader``, ``GraphWrites.apply``), explain, previews, refits,
exports and erasure are SQL-heavy and tested against PostgreSQL (``tests/integration``,
``tests/e2e``): the fake refuses them rather than guess.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

from svod_identity.domain.announcements import MERGED_TOPIC
from svod_identity.domain.engine import Changes, GraphState, KnownRecord, person_from
from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.ledger import PLACEMENT_KINDS, LedgerKind
from svod_identity.domain.lookup import Fact
from svod_identity.domain.matching.model import MatchModel
from svod_identity.domain.model import CustomerView, Erasure, IncomingRecord, RecordRef
from svod_identity.domain.review import ReviewState, SideRecord
from svod_identity.domain.rules import Rules
from svod_identity.service_layer.ports import IdentityRepository

T = TypeVar("T")
SYSTEM_ACTOR = "svod-identity"
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _refused() -> NoReturn:
    raise NotImplementedError("tested in tests/e2e")


@dataclass
class FakeCustomer:
    created_at: dt.datetime
    merged_into: str | None = None
    erased: bool = False


@dataclass
class FakeRecord:
    pk: int
    ref: RecordRef
    customer_id: str
    identifiers: tuple[IdentifierKey, ...]
    attributes: dict[str, Any]


@dataclass
class FakeIdentifier:
    customer_id: str
    first_source: str
    first_seen: dt.datetime
    last_seen: dt.datetime
    sharers: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LedgerRow:
    """A ledger entry with the columns of the ``ledger`` table."""

    entry_id: int
    at: dt.datetime
    kind: str
    customer_id: str
    other_customer_id: str | None
    source: str | None
    message_id: str | None
    detail: dict[str, Any]
    actor: str
    reason: str


@dataclass
class FakeReview:
    review_item_id: str
    record_pk: int
    candidate_record_pk: int | None
    candidate_customer_id: str
    probability: float
    created_at: dt.datetime
    state: ReviewState = ReviewState.OPEN
    decided_by: str = ""
    decision_reason: str = ""


@dataclass(frozen=True)
class ReviewRow:
    """A review item joined with its records, as ``ReviewQueue`` selects it."""

    review_item_id: str
    state: str
    candidate_customer_id: str
    probability: float
    score: float
    explanation: dict[str, Any]
    created_at: dt.datetime
    record_customer_id: str
    source: str
    message_id: str
    record_pk: int
    candidate_record_pk: int | None
    candidate_source: str | None
    candidate_message_id: str | None


@dataclass
class FakeGraph:
    """Everything the store holds; a transaction works on a copy."""

    customers: dict[str, FakeCustomer] = field(default_factory=dict)
    records: dict[int, FakeRecord] = field(default_factory=dict)
    identifiers: dict[IdentifierKey, FakeIdentifier] = field(default_factory=dict)
    ledger: list[LedgerRow] = field(default_factory=list)
    reviews: dict[str, FakeReview] = field(default_factory=dict)
    kept_apart: set[frozenset[str]] = field(default_factory=set)
    # (topic, key, payload) messages of the outbox.
    outbox: list[tuple[str, str, bytes]] = field(default_factory=list)
    # Customers announced to ingestion as changed (None: everything).
    changed: list[list[str] | None] = field(default_factory=list)
    # Reports to quality: (pairs, resolved, blocked).
    quality: list[dict[str, list[Any]]] = field(default_factory=list)
    clock: dt.datetime = START

    def tick(self) -> dt.datetime:
        self.clock += dt.timedelta(seconds=1)
        return self.clock

    def current(self, customer_id: str) -> str | None:
        seen = 0
        while customer_id in self.customers and seen < 64:
            following = self.customers[customer_id].merged_into
            if following is None:
                return customer_id
            customer_id, seen = following, seen + 1
        return None

    def aliases(self, customer_id: str) -> dict[str, str]:
        """Every id merged (directly or not) into the customer -> the id it was merged into."""
        tree: dict[str, str] = {}
        frontier = [customer_id]
        while frontier:
            parent = frontier.pop()
            for alias, customer in self.customers.items():
                if customer.merged_into == parent and alias not in tree:
                    tree[alias] = parent
                    frontier.append(alias)
        return tree

    def records_of(self, customer_id: str) -> list[FakeRecord]:
        return sorted(
            (r for r in self.records.values() if r.customer_id == customer_id),
            key=lambda r: r.pk,
        )

    def known(self, record: FakeRecord) -> KnownRecord:
        person = person_from(
            str(record.pk), record.attributes, record.identifiers, record.ref.source
        )
        return KnownRecord(record.pk, record.ref, record.customer_id, person, record.identifiers)


class FakeGraphReads:
    def __init__(self, graph: FakeGraph) -> None:
        self.g = graph

    async def canonical_id(self, customer_id: str, *, include_erased: bool = False) -> str | None:
        current = self.g.current(customer_id)
        if current is None or (self.g.customers[current].erased and not include_erased):
            return None
        return current

    async def current_ids(self, customer_ids: Iterable[str]) -> dict[str, str]:
        found = {c: self.g.current(c) for c in set(customer_ids)}
        return {c: now for c, now in found.items() if now is not None}

    async def merged_ids(self, customer_id: str) -> list[str]:
        return sorted(self.g.aliases(customer_id))

    async def alias_tree(self, customer_id: str) -> dict[str, str]:
        return self.g.aliases(customer_id)

    async def alias_ids(self, customer_id: str) -> list[str]:
        return [customer_id, *self.g.aliases(customer_id)]

    async def record_customer(self, ref: RecordRef) -> str | None:
        for record in self.g.records.values():
            if record.ref == ref:
                return await self.canonical_id(record.customer_id)
        return None

    async def identifier_facts(self, keys: Sequence[IdentifierKey]) -> dict[IdentifierKey, Fact]:
        _refused()

    async def facts_by_position(self, keys: Sequence[IdentifierKey]) -> dict[int, Fact]:
        _refused()

    async def records_by_pk(self, pks: Iterable[int]) -> dict[int, KnownRecord]:
        return {pk: self.g.known(self.g.records[pk]) for pk in set(pks) if pk in self.g.records}

    async def records_by_ref(self, refs: Sequence[RecordRef]) -> dict[RecordRef, tuple[int, str]]:
        wanted = set(refs)
        return {r.ref: (r.pk, r.customer_id) for r in self.g.records.values() if r.ref in wanted}

    async def record_refs_by_pk(self, pks: Iterable[int]) -> dict[int, RecordRef]:
        return {pk: self.g.records[pk].ref for pk in set(pks) if pk in self.g.records}

    async def customer_records(self, customer_id: str) -> list[tuple[int, RecordRef]]:
        return [(r.pk, r.ref) for r in self.g.records_of(customer_id)]

    async def customers_created(self, ids: Sequence[str]) -> dict[str, dt.datetime]:
        return {c: self.g.customers[c].created_at for c in set(ids) if c in self.g.customers}

    async def recent_records(self, customer_id: str, limit: int) -> list[KnownRecord]:
        return [self.g.known(r) for r in reversed(self.g.records_of(customer_id))][:limit]

    async def customer_view(self, customer_id: str) -> CustomerView | None:
        customer = self.g.customers.get(customer_id)
        if customer is None or customer.merged_into is not None or customer.erased:
            return None
        merged = sorted(
            (c for c, v in self.g.customers.items() if v.merged_into == customer_id),
            key=lambda c: self.g.customers[c].created_at,
        )
        held = sorted(
            (k for k, i in self.g.identifiers.items() if i.customer_id == customer_id),
            key=lambda k: (k.type, k.value),
        )
        return CustomerView(
            customer_id=customer_id,
            merged_ids=tuple(merged),
            identifiers=tuple(
                (
                    key,
                    self.g.identifiers[key].first_source,
                    self.g.identifiers[key].first_seen,
                    self.g.identifiers[key].last_seen,
                )
                for key in held
            ),
            created_at=customer.created_at,
            record_count=len(self.g.records_of(customer_id)),
        )

    async def explain_material(self, customer_id: str) -> dict[str, Any]:
        _refused()


class FakeLedger:
    def __init__(self, graph: FakeGraph) -> None:
        self.g = graph

    async def append(
        self,
        kind: LedgerKind,
        customer_id: str,
        *,
        ref: RecordRef | None = None,
        other_customer_id: str | None = None,
        detail: dict[str, Any] | None = None,
        actor: str = SYSTEM_ACTOR,
        reason: str = "",
    ) -> int:
        entry_id = len(self.g.ledger) + 1
        self.g.ledger.append(
            LedgerRow(
                entry_id,
                self.g.tick(),
                kind.value,
                customer_id,
                other_customer_id,
                ref.source if ref else None,
                ref.message_id if ref else None,
                # Stored as JSON, read back as JSON.
                json.loads(json.dumps(detail or {}, default=str)),
                actor,
                reason,
            )
        )
        return entry_id

    async def page(
        self, customer_ids: Sequence[str] | None, kinds: Sequence[str], after: int, limit: int
    ) -> list[Any]:
        ids = None if customer_ids is None else set(customer_ids)
        return [
            e
            for e in self.g.ledger
            if e.entry_id > after
            and (not kinds or e.kind in kinds)
            and (ids is None or e.customer_id in ids or e.other_customer_id in ids)
        ][:limit]

    async def decisions_between(self, side_a: Sequence[str], side_b: Sequence[str]) -> list[Any]:
        _refused()

    async def human_decisions(self) -> tuple[list[list[int]], list[frozenset[str]]]:
        _refused()

    async def first_placed_holdings(self, customer_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        where = {r.ref: r.customer_id for r in self.g.records.values()}
        holdings: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for entry in self.g.ledger:
            placed = entry.kind in {k.value for k in PLACEMENT_KINDS}
            ref = RecordRef(entry.source or "", entry.message_id or "")
            if placed and entry.customer_id in customer_ids and ref in where:
                holdings[entry.customer_id][where[ref]] += 1
        return {c: dict(held) for c, held in holdings.items()}


class FakeAnnouncements:
    def __init__(self, graph: FakeGraph) -> None:
        self.g = graph

    async def announce(self, topic: str, key: str, payload: bytes) -> None:
        self.g.outbox.append((topic, key, payload))

    async def announce_changed(self, customer_ids: Sequence[str], everything: bool = False) -> None:
        self.g.changed.append(None if everything else sorted(set(customer_ids)))

    async def report_quality(
        self,
        *,
        pairs: Sequence[tuple[str, str, float]] = (),
        resolved: Sequence[tuple[str, str]] = (),
        blocked: Sequence[IdentifierKey] = (),
    ) -> None:
        if pairs or resolved or blocked:
            self.g.quality.append(
                {"pairs": list(pairs), "resolved": list(resolved), "blocked": list(blocked)}
            )


class FakeGraphWrites:
    def __init__(self, graph: FakeGraph, ledger: FakeLedger, announce: FakeAnnouncements) -> None:
        self.g = graph
        self.ledger = ledger
        self.announcements = announce

    async def lock_customers(self, customer_ids: Iterable[str]) -> None:
        """Nothing runs beside a fake transaction."""

    async def create_customer(self) -> str:
        customer_id = str(uuid.uuid4())
        self.g.customers[customer_id] = FakeCustomer(self.g.tick())
        return customer_id

    async def apply(self, changes: Changes, free_pks: Sequence[int] = ()) -> dict[int, int]:
        _refused()

    async def merge_customers(self, survivor: str, merged: Sequence[str]) -> None:
        gone = set(merged)
        for customer_id, customer in self.g.customers.items():
            if customer_id in gone or customer.merged_into in gone:
                customer.merged_into = survivor
        for held in self.g.identifiers.values():
            if held.customer_id in gone:
                held.customer_id = survivor
        for record in self.g.records.values():
            if record.customer_id in gone:
                record.customer_id = survivor

    async def record_merge(
        self,
        survivor: str,
        merged: Sequence[str],
        *,
        kind: LedgerKind,
        ref: RecordRef | None = None,
        detail: dict[str, Any] | None = None,
        actor: str = SYSTEM_ACTOR,
        reason: str = "",
    ) -> int:
        change_id = await self.ledger.append(
            kind,
            survivor,
            ref=ref,
            other_customer_id=merged[0],
            detail={"merged": list(merged), **(detail or {})},
            actor=actor,
            reason=reason,
        )
        payload = {"change_id": str(change_id), "survivor": survivor, "merged": list(merged)}
        await self.announcements.announce(MERGED_TOPIC, survivor, json.dumps(payload).encode())
        await self.announcements.report_quality(resolved=[(survivor, m) for m in merged])
        await self.announcements.announce_changed([survivor, *merged])
        return change_id

    async def move_records(
        self, source: str, target: str, pks: Sequence[int]
    ) -> list[IdentifierKey]:
        moving = [self.g.records[pk] for pk in pks]
        for record in moving:
            record.customer_id = target
        still_carried = {k for r in self.g.records_of(source) for k in r.identifiers}
        moved = []
        for key in {k for r in moving for k in r.identifiers}:
            held = self.g.identifiers.get(key)
            if held is not None and held.customer_id == source and key not in still_carried:
                held.customer_id = target
                moved.append(key)
        return sorted(moved)

    async def point_aliases(self, sides: Mapping[str, str]) -> None:
        for alias, customer_id in sides.items():
            self.g.customers[alias].merged_into = customer_id

    async def share_left_identifiers(self, source: str, target: str, pks: Sequence[int]) -> int:
        carried = {k for pk in pks for k in self.g.records[pk].identifiers}
        shared = 0
        for key in carried:
            held = self.g.identifiers.get(key)
            if held is not None and held.customer_id == source and target not in held.sharers:
                held.sharers.append(target)
                shared += 1
        return shared

    async def keep_apart(self, a: str, b: str) -> None:
        self.g.kept_apart.add(frozenset((a, b)))


class FakeReviewQueue:
    def __init__(self, graph: FakeGraph) -> None:
        self.g = graph

    def _row(self, item: FakeReview) -> ReviewRow:
        record = self.g.records[item.record_pk]
        candidate = (
            self.g.records.get(item.candidate_record_pk) if item.candidate_record_pk else None
        )
        return ReviewRow(
            review_item_id=item.review_item_id,
            state=item.state.value,
            candidate_customer_id=item.candidate_customer_id,
            probability=item.probability,
            score=item.probability,
            explanation={},
            created_at=item.created_at,
            record_customer_id=record.customer_id,
            source=record.ref.source,
            message_id=record.ref.message_id,
            record_pk=record.pk,
            candidate_record_pk=item.candidate_record_pk,
            candidate_source=candidate.ref.source if candidate else None,
            candidate_message_id=candidate.ref.message_id if candidate else None,
        )

    async def review_items(
        self,
        limit: int,
        after: tuple[dt.datetime, str] | None,
        include_decided: bool,
        customer_ids: Sequence[str] = (),
    ) -> list[Any]:
        rows = sorted(
            (self._row(item) for item in self.g.reviews.values()),
            key=lambda r: (r.created_at, r.review_item_id),
        )
        ids = set(customer_ids)
        return [
            r
            for r in rows
            if (include_decided or r.state == ReviewState.OPEN)
            and (not ids or r.record_customer_id in ids or r.candidate_customer_id in ids)
            and (after is None or (r.created_at, r.review_item_id) > after)
        ][:limit]

    async def review_item(self, review_item_id: str) -> Any:
        item = self.g.reviews.get(review_item_id)
        return None if item is None else self._row(item)

    async def decide_review(
        self, review_item_id: str, state: ReviewState, actor: str, reason: str
    ) -> None:
        item = self.g.reviews[review_item_id]
        item.state, item.decided_by, item.decision_reason = state, actor, reason

    async def side_records(
        self, customer_ids: Sequence[str], limit: int
    ) -> tuple[dict[str, list[SideRecord]], dict[str, int]]:
        records: dict[str, list[SideRecord]] = {}
        counts: dict[str, int] = {}
        for customer_id in set(customer_ids):
            theirs = self.g.records_of(customer_id)
            if not theirs:
                continue
            counts[customer_id] = len(theirs)
            records[customer_id] = [
                SideRecord(r.ref, dict(r.attributes), r.identifiers, self.g.known(r).person)
                for r in reversed(theirs)
            ][:limit]
        return records, counts

    async def open_reviews_between(self, side_a: Sequence[str], side_b: Sequence[str]) -> list[Any]:
        _refused()


class FakeExport:
    async def mapping_page(self, after_pk: int, limit: int) -> list[Any]:
        _refused()

    async def blocked_identifiers(
        self, limit: int, after: tuple[dt.datetime, str, str, str] | None
    ) -> list[Any]:
        _refused()

    async def raw_records(self, limit: int) -> list[Any]:
        _refused()

    async def all_identifier_owners(self) -> dict[IdentifierKey, str]:
        _refused()

    async def count_records(self) -> int:
        _refused()

    async def sample_candidate_pairs(
        self, max_pairs: int, records: int = 0
    ) -> list[tuple[KnownRecord, KnownRecord]]:
        _refused()

    async def value_counts(self) -> dict[str, list[tuple[str, int]]]:
        _refused()


class FakeErasure:
    async def erase(self, customer_id: str) -> Erasure:
        _refused()


class FakeSettings:
    """No rules or model stored: the use cases fall back to the defaults."""

    async def current_rules(self) -> tuple[int, dict[str, Any], dt.datetime, str] | None:
        return None

    async def store_rules(self, version: int, body: dict[str, Any], actor: str) -> dt.datetime:
        _refused()

    async def lock_rules(self) -> None:
        _refused()

    async def current_model(self) -> tuple[int, dict[str, Any], int, dt.datetime, str] | None:
        return None

    async def store_model(
        self, body: dict[str, Any], pairs: int, actor: str
    ) -> tuple[int, dt.datetime]:
        _refused()

    async def lock_models(self) -> None:
        _refused()

    async def queue_reresolution(self, job_id: str, actor: str, reason: str) -> None:
        _refused()


class FakeStateLoader:
    async def load_state(
        self,
        records: Sequence[IncomingRecord],
        rules: Rules,
        *,
        fuzzy: bool = True,
        candidates_for: Iterable[RecordRef] | None = None,
        model: MatchModel | None = None,
        lock_keys: Iterable[str] = (),
    ) -> GraphState:
        _refused()


class FakeUnit:
    """One transaction over a copy of the graph, by part (as ``IdentityTransaction``)."""

    def __init__(self, graph: FakeGraph) -> None:
        self.announcements = FakeAnnouncements(graph)
        self.ledger = FakeLedger(graph)
        self.graph = FakeGraphReads(graph)
        self.writes = FakeGraphWrites(graph, self.ledger, self.announcements)
        self.reviews = FakeReviewQueue(graph)
        self.export = FakeExport()
        self.erasure = FakeErasure()
        self.settings = FakeSettings()
        self.loader = FakeStateLoader()


class FakeIdentityStore:
    def __init__(self) -> None:
        self.state = FakeGraph()
        self.transactions = 0

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[FakeUnit]:
        working = copy.deepcopy(self.state)
        yield FakeUnit(working)
        # Reached only when the block ended without an error: commit.
        self.state = working
        self.transactions += 1

    async def run(self, work: Callable[[FakeUnit], Awaitable[T]]) -> T:
        async with self.transaction() as unit:
            return await work(unit)

    # -- what the tests start from ---------------------------------------------------------

    def add_customer(self, created_at: dt.datetime | None = None, customer_id: str = "") -> str:
        customer_id = customer_id or str(uuid.uuid4())
        self.state.customers[customer_id] = FakeCustomer(created_at or self.state.tick())
        return customer_id

    def add_record(
        self,
        customer_id: str,
        message_id: str,
        *,
        source: str = "web",
        identifiers: Sequence[tuple[str, str]] = (),
        **attributes: str,
    ) -> RecordRef:
        """A record placed under the customer, with the ledger entry of its placement; its
        identifiers not yet held become the customer's."""
        g = self.state
        ref = RecordRef(source, message_id)
        keys = tuple(IdentifierKey(t, v) for t, v in identifiers)
        first = not g.records_of(customer_id)
        pk = max(g.records, default=0) + 1
        g.records[pk] = FakeRecord(pk, ref, customer_id, keys, dict(attributes))
        now = g.tick()
        for key in keys:
            g.identifiers.setdefault(key, FakeIdentifier(customer_id, source, now, now))
        kind = LedgerKind.CUSTOMER_CREATED if first else LedgerKind.RECORD_LINKED
        g.ledger.append(
            LedgerRow(
                len(g.ledger) + 1,
                now,
                kind.value,
                customer_id,
                None,
                source,
                message_id,
                {},
                SYSTEM_ACTOR,
                "",
            )
        )
        return ref

    def add_review(self, ref: RecordRef, candidate: RecordRef, probability: float = 0.8) -> str:
        """A suspected duplicate: ``ref``'s record may be the person of ``candidate``'s."""
        g = self.state
        pk_of = {r.ref: r.pk for r in g.records.values()}
        review_item_id = str(uuid.uuid4())
        g.reviews[review_item_id] = FakeReview(
            review_item_id,
            pk_of[ref],
            pk_of[candidate],
            g.records[pk_of[candidate]].customer_id,
            probability,
            g.tick(),
        )
        return review_item_id

    def ledger_of(self, kind: LedgerKind) -> list[LedgerRow]:
        return [e for e in self.state.ledger if e.kind == kind.value]

    def announced(self, topic: str) -> list[dict[str, Any]]:
        return [json.loads(payload) for t, _, payload in self.state.outbox if t == topic]


def _conforms(store: FakeIdentityStore) -> object:
    checked: IdentityRepository = store  # mypy checks the fake against the ports
    return checked
