"""In-memory ingestion storage and held events: satisfy ``service_layer.ports`` without
PostgreSQL.

The store keeps each (source, message id) once with its payload hash, its outbox entry and its
state; a transaction commits only when its block ends without an error. ``erase_pending``
fails the undelivered messages the test's matcher picks, as the SQL does; statuses and the
held-event queue are what the test puts there.
"""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from svod_ingestion.domain.attribution import HeldEvent, Issue
from svod_ingestion.domain.model import Incoming, MessageKind, RecordStatus, StoredRecord
from svod_ingestion.service_layer.ports import HeldEvents, IngestionRepository, IngestionUnit
from svod_runtime.outbox import OutboxLane


@dataclass
class Row:
    stored: StoredRecord
    kind: MessageKind
    payload: bytes | None
    state: str = "pending"
    last_error: str | None = None


@dataclass
class State:
    rows: dict[tuple[str, str], Row] = field(default_factory=dict)
    outbox: list[tuple[int, MessageKind, bool]] = field(default_factory=list)  # pk, kind, unchecked
    lanes: dict[int, OutboxLane] = field(default_factory=dict)  # the relay lane of each pk
    next_pk: int = 1


class FakeUnit:
    def __init__(self, state: State, now: dt.datetime) -> None:
        self.s = state
        self.now = now

    async def store_new(
        self, rows: Sequence[tuple[Incoming, bytes]], lane: OutboxLane
    ) -> dict[tuple[str, str], StoredRecord]:
        stored = {}
        # As the SQL: any copy of a message not checked by quality makes its entry ask for it.
        unchecked = {(m.source, m.message_id) for m, _ in rows if not m.quality_checked}
        for message, payload_hash in rows:
            ref = (message.source, message.message_id)
            if ref in self.s.rows:
                continue
            record = StoredRecord(self.s.next_pk, str(uuid.uuid4()), payload_hash, self.now)
            self.s.next_pk += 1
            self.s.rows[ref] = Row(record, message.kind, message.payload)
            stored[ref] = record
            self.s.outbox.append((record.record_pk, message.kind, ref in unchecked))
            self.s.lanes[record.record_pk] = lane
        return stored

    async def store_new_refs(
        self, rows: Sequence[tuple[Incoming, bytes]], lane: OutboxLane
    ) -> set[tuple[str, str]]:
        return set(await self.store_new(rows, lane))

    async def existing_many(
        self, refs: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], StoredRecord]:
        return {r: self.s.rows[r].stored for r in refs if r in self.s.rows}


class FakeIngestionStore:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now
        self.state = State()
        self.statuses: dict[tuple[str, str], RecordStatus] = {}
        self.purgeable = 0  # payloads old enough to purge, taken at most ``limit`` a call

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[IngestionUnit]:
        working = copy.deepcopy(self.state)
        yield FakeUnit(working, self.now)
        self.state = working  # reached only when the block raised nothing

    async def erase_pending(
        self, matches: Callable[[MessageKind, bytes], bool], error: str, chunk: int = 2_000
    ) -> int:
        erased = [
            row
            for row in self.state.rows.values()
            if row.state in ("pending", "unattributed")
            and row.payload is not None
            and matches(row.kind, row.payload)
        ]
        for row in erased:
            row.payload, row.state, row.last_error = None, "failed", error
        gone = {row.stored.record_pk for row in erased}
        self.state.outbox = [e for e in self.state.outbox if e[0] not in gone]
        return len(erased)

    async def erase_payloads(self, refs: list[tuple[str, str]]) -> int:
        erased = 0
        for ref in refs:
            row = self.state.rows.get(ref)
            if row is not None and row.payload is not None:
                row.payload = None
                erased += 1
        return erased

    async def purge_payloads(self, older_than: dt.timedelta, limit: int = 5_000) -> int:
        taken = min(self.purgeable, limit)
        self.purgeable -= taken
        return taken

    async def status(self, source: str, message_id: str) -> RecordStatus | None:
        return self.statuses.get((source, message_id))


@dataclass
class FakeHeldEvents:
    held: list[HeldEvent] = field(default_factory=list)
    woken: list[str] = field(default_factory=list)  # "all" or a customer id

    async def page(self, issues: Sequence[Issue], after_pk: int, limit: int) -> list[HeldEvent]:
        found = [e for e in self.held if e.issue in issues and e.record_pk > after_pk]
        return sorted(found, key=lambda e: e.record_pk)[:limit]

    async def counts(self) -> dict[Issue, int]:
        out: dict[Issue, int] = {}
        for e in self.held:
            out[e.issue] = out.get(e.issue, 0) + 1
        return out

    async def wake_all(self) -> int:
        self.woken.append("all")
        return len(self.held)

    async def wake_by_candidates(self, customer_ids: Sequence[str]) -> int:
        self.woken.extend(customer_ids)
        return sum(bool(set(e.candidates) & set(customer_ids)) for e in self.held)


def _conforms(store: FakeIngestionStore, held: FakeHeldEvents) -> tuple[object, object]:
    checked: tuple[IngestionRepository, HeldEvents] = (store, held)  # mypy checks both
    return checked
