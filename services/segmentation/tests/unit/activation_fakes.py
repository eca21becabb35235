"""In-memory activation storage, profile contacts, webhook receiver and export files: satisfy
``service_layer.ports`` without PostgreSQL, the profile service, HTTP or a disk.

The store keeps destinations, bindings (with their delivery sequence), syncs, deliveries and
what each binding's destination holds, with the rules the SQL keeps: a destination id is taken
once, a binding's deliveries are numbered in order, an attempt is recorded only on a pending
delivery, a redrive gives dead letters a fresh budget. The segment's members and their consents
are set by the test (``members``, ``opted_in``). Campaign facts are SQL (tests/e2e) and refused.
"""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from svod_segmentation.domain.activation import (
    Binding,
    BindingMode,
    Contact,
    Delivery,
    DeliveryKind,
    DeliveryState,
    Destination,
    Sync,
)
from svod_segmentation.domain.attribution import Order, Touch
from svod_segmentation.domain.responsiveness import ChannelStats
from svod_segmentation.domain.webhooks import HttpAnswer
from svod_segmentation.service_layer.ports import (
    ActivationRepository,
    ActivationUnit,
    ContactDirectory,
    ExportFiles,
    WebhookSender,
)


@dataclass
class ActivationState:
    destinations: dict[str, Destination] = field(default_factory=dict)
    bindings: dict[str, Binding] = field(default_factory=dict)
    next_sequence: dict[str, int] = field(default_factory=dict)
    syncs: dict[str, tuple[Sync, bool]] = field(default_factory=dict)
    deliveries: dict[str, Delivery] = field(default_factory=dict)
    held: dict[str, dict[str, str]] = field(default_factory=dict)  # binding -> customer: label
    # segment -> customer -> label; customer -> channels opted in to (the read model)
    members: dict[str, dict[str, str]] = field(default_factory=dict)
    opted_in: dict[str, set[str]] = field(default_factory=dict)
    outbox: list[tuple[str, str, str]] = field(default_factory=list)  # topic, key, payload


class FakeActivationUnit:
    def __init__(self, state: ActivationState, now: dt.datetime) -> None:
        self.s = state
        self.now = now

    def _desired(self, segment_id: str, channel: str) -> dict[str, str]:
        members = self.s.members.get(segment_id, {})
        return {
            c: label
            for c, label in sorted(members.items())
            if channel in self.s.opted_in.get(c, set())
        }

    async def insert_destination(self, d: Destination) -> Destination:
        if d.destination_id in self.s.destinations:
            raise KeyError(d.destination_id)
        saved = self.s.destinations[d.destination_id] = replace(d, created_at=self.now)
        return saved

    async def destination(self, destination_id: str) -> Destination | None:
        return self.s.destinations.get(destination_id)

    async def destinations(self, after: str, limit: int) -> list[Destination]:
        return [d for i, d in sorted(self.s.destinations.items()) if i > after][:limit]

    async def delete_destination(self, destination_id: str) -> None:
        del self.s.destinations[destination_id]

    async def insert_binding(self, b: Binding) -> Binding:
        saved = self.s.bindings[b.binding_id] = replace(b, created_at=self.now)
        self.s.next_sequence[b.binding_id] = 1
        return saved

    async def binding(self, binding_id: str, *, lock: bool = False) -> Binding | None:
        return self.s.bindings.get(binding_id)

    async def bindings(self, segment_id: str = "", destination_id: str = "") -> list[Binding]:
        return [
            b
            for b in self.s.bindings.values()
            if (not segment_id or b.segment_id == segment_id)
            and (not destination_id or b.destination_id == destination_id)
        ]

    async def delete_binding(self, binding_id: str) -> None:
        del self.s.bindings[binding_id]
        self.s.held.pop(binding_id, None)

    async def lock_live_binding(self, binding_id: str) -> Binding | None:
        found = self.s.bindings.get(binding_id)
        return found if found is not None and found.mode is BindingMode.LIVE else None

    async def live_binding_ids(self) -> list[str]:
        return [i for i, b in self.s.bindings.items() if b.mode is BindingMode.LIVE]

    async def claim_scheduled(self, now: dt.datetime) -> list[Binding]:
        due = []
        for binding_id, b in sorted(self.s.bindings.items()):
            if b.next_sync_at is not None and b.next_sync_at <= now:
                moved = replace(b, next_sync_at=now + dt.timedelta(seconds=b.schedule_seconds))
                self.s.bindings[binding_id] = moved
                due.append(moved)
        return due

    async def reconcile(
        self, binding_id: str, segment_id: str, channel: str
    ) -> list[tuple[str, bool, bool, str, str]]:
        desired = self._desired(segment_id, channel)
        held = self.s.held.setdefault(binding_id, {})
        diff = []
        for c in sorted(set(desired) | set(held)):
            if desired.get(c) != held.get(c):
                diff.append((c, c in held, c in desired, held.get(c, ""), desired.get(c, "")))
        self.s.held[binding_id] = desired
        return diff

    async def replace_held(
        self, binding_id: str, segment_id: str, channel: str
    ) -> list[tuple[str, str]]:
        self.s.held[binding_id] = self._desired(segment_id, channel)
        return sorted(self.s.held[binding_id].items())

    async def members(self, segment_id: str) -> list[tuple[str, str]]:
        return sorted(self.s.members.get(segment_id, {}).items())

    async def member_count(self, segment_id: str) -> int:
        return len(self.s.members.get(segment_id, {}))

    async def segment_exists(self, segment_id: str) -> bool:
        return segment_id in self.s.members

    async def insert_sync(self, sync: Sync, scheduled: bool) -> None:
        self.s.syncs[sync.sync_id] = (sync, scheduled)

    async def finish_sync(self, sync: Sync) -> None:
        self.s.syncs[sync.sync_id] = (sync, self.s.syncs[sync.sync_id][1])

    async def sync(self, sync_id: str) -> Sync | None:
        found = self.s.syncs.get(sync_id)
        return None if found is None else found[0]

    async def add_deliveries(
        self,
        binding: Binding,
        kind: DeliveryKind,
        item_pages: Sequence[Sequence[Sequence[str]]],
        sync_id: str = "",
    ) -> list[str]:
        ids = []
        for index, items in enumerate(item_pages):
            sequence = self.s.next_sequence[binding.binding_id]
            self.s.next_sequence[binding.binding_id] += 1
            delivery = Delivery(
                delivery_id=str(uuid.uuid4()),
                binding_id=binding.binding_id,
                destination_id=binding.destination_id,
                segment_id=binding.segment_id,
                sequence=sequence,
                kind=kind,
                state=DeliveryState.PENDING,
                items=tuple(tuple(i) for i in items),
                sync_id=sync_id,
                page=index + 1 if sync_id else 0,
                last_page=bool(sync_id) and index == len(item_pages) - 1,
                created_at=self.now + dt.timedelta(microseconds=len(self.s.deliveries)),
            )
            self.s.deliveries[delivery.delivery_id] = delivery
            self.s.outbox.append(("webhook", binding.binding_id, delivery.delivery_id))
            ids.append(delivery.delivery_id)
        return ids

    async def enqueue_export(self, binding_id: str, sync_id: str) -> None:
        self.s.outbox.append(("export", binding_id, sync_id))

    async def delivery(self, delivery_id: str) -> Delivery | None:
        return self.s.deliveries.get(delivery_id)

    async def earlier_pending(self, binding_id: str, sequence: int) -> int | None:
        earlier = [
            d.sequence
            for d in self.s.deliveries.values()
            if d.binding_id == binding_id
            and d.state is DeliveryState.PENDING
            and d.sequence < sequence
        ]
        return min(earlier, default=None)

    async def record_attempt(
        self,
        delivery_id: str,
        state: DeliveryState,
        status: int,
        error: str,
        *,
        counted: bool,
        now: dt.datetime,
    ) -> None:
        d = self.s.deliveries[delivery_id]
        if d.state is not DeliveryState.PENDING:
            return
        self.s.deliveries[delivery_id] = replace(
            d,
            state=state,
            attempts=d.attempts + 1,
            failed_attempts=d.failed_attempts + int(counted),
            last_http_status=status,
            last_error=error,
            delivered_at=now if state is DeliveryState.DELIVERED else d.delivered_at,
        )

    async def deliveries(
        self, destination_id: str, state: DeliveryState | None, before: str, limit: int
    ) -> list[Delivery]:
        mine = sorted(
            (
                d
                for d in self.s.deliveries.values()
                if d.destination_id == destination_id and (state is None or d.state is state)
            ),
            key=lambda d: (d.created_at, d.delivery_id),
            reverse=True,
        )
        if before:
            cut = self.s.deliveries[before]
            mine = [d for d in mine if (d.created_at, d.delivery_id) < (cut.created_at, before)]
        return mine[:limit]

    async def dead_letter_count(self, destination_id: str) -> int:
        return sum(
            d.destination_id == destination_id and d.state is DeliveryState.DEAD_LETTER
            for d in self.s.deliveries.values()
        )

    async def states_of(self, destination_id: str, ids: Sequence[str]) -> dict[str, str]:
        return {
            i: self.s.deliveries[i].state.value
            for i in ids
            if i in self.s.deliveries and self.s.deliveries[i].destination_id == destination_id
        }

    async def redrive(
        self, destination_id: str, ids: Sequence[str] | None
    ) -> list[tuple[str, str]]:
        found = []
        for d in self.s.deliveries.values():
            if (
                d.destination_id == destination_id
                and d.state is DeliveryState.DEAD_LETTER
                and (ids is None or d.delivery_id in ids)
            ):
                self.s.deliveries[d.delivery_id] = replace(
                    d, state=DeliveryState.PENDING, failed_attempts=0
                )
                found.append((d.binding_id, d.sequence, d.delivery_id))
        pairs = [(b, i) for b, _, i in sorted(found)]
        self.s.outbox.extend(("webhook", b, i) for b, i in pairs)
        return pairs

    async def orders_and_touches(
        self,
        start: dt.datetime,
        end: dt.datetime,
        window: dt.timedelta,
        touch_types: Sequence[str],
        campaign_ids: Sequence[str],
    ) -> tuple[list[Order], list[Touch]]:
        raise NotImplementedError("campaign facts are SQL (tests/e2e/test_attribution.py)")

    async def responsiveness(self, customer_id: str) -> list[ChannelStats]:
        raise NotImplementedError("responsiveness is SQL (tests/e2e/test_attribution.py)")

    async def current_id(self, customer_id: str) -> str | None:
        raise NotImplementedError("the read model's merges are SQL here")


class FakeActivationStore:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now
        self.state = ActivationState()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[ActivationUnit]:
        working = copy.deepcopy(self.state)
        yield FakeActivationUnit(working, self.now)
        self.state = working  # reached only when the block raised nothing


@dataclass
class FakeContacts:
    """The profile service's answer at delivery time (its contacts and consents now)."""

    known: dict[str, Contact] = field(default_factory=dict)

    async def contacts(self, customer_ids: list[str]) -> dict[str, Contact]:
        return {c: self.known[c] for c in customer_ids if c in self.known}


@dataclass
class FakeReceiver:
    """A webhook receiver answering with the statuses given, in turn (the last one repeats)."""

    statuses: list[int] = field(default_factory=lambda: [200])
    received: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> HttpAnswer:
        self.received.append((url, body, headers))
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return HttpAnswer(status, "" if status else "connection refused")


@dataclass
class FakeFiles:
    written: dict[Path, tuple[Sequence[str] | None, list[Sequence[str]]]] = field(
        default_factory=dict
    )

    def write_csv(
        self, path: Path, header: Sequence[str] | None, rows: Sequence[Sequence[str]]
    ) -> None:
        self.written[path] = (header, list(rows))

    def write_jsonl(self, path: Path, rows: Sequence[dict[str, str]]) -> None:
        self.written[path] = (None, [list(r.values()) for r in rows])


def _conforms(
    store: FakeActivationStore, contacts: FakeContacts, receiver: FakeReceiver, files: FakeFiles
) -> tuple[object, ...]:
    checked: tuple[ActivationRepository, ContactDirectory, WebhookSender, ExportFiles] = (
        store,
        contacts,
        receiver,
        files,
    )
    return checked
