"""The event import over in-memory storage and peers (no database, no network): staging
attributes with the streaming path's decision (one customer: staged with profile; nobody yet,
two customers, identifiers all refused: handed to the streaming delivery), a re-sent message
stages its events again, identity or profile unreachable leaves the message unanswered
(UNAVAILABLE), profile's refusal fails the event alone, an id of a customer import is refused;
the job commits profile's fold, waits it out and delivers the staged events. The SQL behind the
ports and the real peers are tested in tests/e2e/test_import_events_batch.py."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from svod_ingestion.domain.attribution import Finding, IdentifierState
from svod_ingestion.domain.imports import (
    CustomerImport,
    EventFoldProgress,
    ImportKind,
    ImportPhase,
    ImportState,
    LostLease,
    OtherKind,
    Staged,
)
from svod_ingestion.domain.model import Accepted, Incoming, MessageKind, StoredRecord
from svod_ingestion.service_layer.imports import (
    NOT_STAGED_EVENTS,
    EventImports,
    ImportJobRunner,
)
from svod_runtime.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from svod_runtime.outbox import DeliveryError

NOW = dt.datetime(2026, 12, 4, tzinfo=dt.UTC)


def incoming(message_id: str, payload: bytes | None = None) -> Incoming:
    body = payload or message_id.encode()
    return Incoming(MessageKind.TRACK, "shop", message_id, "web", body, body)


class FakeStore:
    def __init__(self, kind: ImportKind = ImportKind.EVENTS) -> None:
        self.kind = kind
        self.job: CustomerImport | None = None
        # (source, message id) -> [pk, payload hash, state, customer, import id]
        self.records: dict[tuple[str, str], list[Any]] = {}
        self.outbox: list[int] = []
        self.owner = ""

    async def stage(
        self, import_id: str, rows: Sequence[tuple[Incoming, bytes]], kind: ImportKind
    ) -> Staged | ImportState:
        if self.job is None:
            self.job = CustomerImport(import_id, ImportState.STAGING, ImportPhase.STAGING)
        if kind is not self.kind:
            raise OtherKind(self.kind)
        if self.job.state is not ImportState.STAGING:
            return self.job.state
        stored: dict[tuple[str, str], StoredRecord] = {}
        earlier: dict[tuple[str, str], tuple[StoredRecord, str | None]] = {}
        for message, payload_hash in rows:
            ref = (message.source, message.message_id)
            if ref in self.records:
                row = self.records[ref]
                earlier[ref] = (StoredRecord(row[0], f"r{row[0]}", row[1], NOW), row[4])
                continue
            pk = len(self.records) + 1
            self.records[ref] = [pk, payload_hash, "pending", None, import_id]
            stored[ref] = StoredRecord(pk, f"r{pk}", payload_hash, NOW)
        return Staged(stored, earlier)

    def _by_pk(self) -> dict[int, list[Any]]:
        return {row[0]: row for row in self.records.values()}

    async def get(self, import_id: str, kind: ImportKind | None = None) -> CustomerImport | None:
        if kind is not None and kind is not self.kind:
            return None
        return self.job

    async def fail_records(self, record_pks: Sequence[int], errors: Sequence[str]) -> None:
        for pk in record_pks:
            self._by_pk()[pk][2] = "failed"

    async def staged_with_profile(
        self, import_id: str, attributed: Sequence[tuple[int, str]], import_staged: int
    ) -> None:
        for pk, customer in attributed:
            self._by_pk()[pk][3] = customer
        assert self.job is not None
        self.job = replace(self.job, records_staged=max(self.job.records_staged, import_staged))

    async def hand_over(self, import_id: str, record_pks: Sequence[int]) -> int:
        moved = [pk for pk in record_pks if self._by_pk()[pk][4] == import_id]
        for pk in moved:
            self._by_pk()[pk][4] = None
        self.outbox += moved
        assert self.job is not None
        self.job = replace(self.job, events_handed_over=self.job.events_handed_over + len(moved))
        return len(moved)

    async def commit(self, import_id: str, kind: ImportKind) -> CustomerImport | None:
        if self.job is None or kind is not self.kind:
            return None
        if self.job.state is ImportState.STAGING:
            self.job = replace(self.job, state=ImportState.RUNNING, phase=ImportPhase.FOLDING)
        return self.job

    async def claim(self, owner: str, lease_s: float) -> CustomerImport | None:
        if self.owner or self.job is None or self.job.state is not ImportState.RUNNING:
            return None
        self.owner = owner
        return replace(self.job, kind=self.kind)

    async def update(self, import_id: str, owner: str, lease_s: float, **values: Any) -> None:
        if owner != self.owner:
            raise LostLease(import_id)
        values = {k: v for k, v in values.items() if k != "finished_at"}
        for name in ("state", "phase"):
            if name in values:
                values[name] = (ImportState if name == "state" else ImportPhase)(values[name])
        assert self.job is not None
        self.job = replace(self.job, **values)

    async def deliver_staged(
        self, import_id: str, owner: str, lease_s: float, not_staged: str
    ) -> tuple[int, int]:
        delivered = failed = 0
        for row in self.records.values():
            if row[4] == import_id and row[2] == "pending":
                if row[3] is not None:
                    row[2], delivered = "delivered", delivered + 1
                else:
                    row[2:4], failed = ["failed", not_staged], failed + 1
        return delivered, failed

    async def release(self, import_id: str, owner: str) -> None:
        self.owner = ""


class FakePeers:
    def __init__(self) -> None:
        # payload -> findings for its identifiers
        self.findings: dict[bytes, list[Finding | None]] = {}
        self.staged: dict[str, str] = {}  # payload -> customer
        self.lookup_error: DeliveryError | None = None
        self.stage_error: DeliveryError | None = None
        self.refuse: set[bytes] = set()
        self.polls = 0
        self.committed = 0

    async def lookup(self, payloads: Sequence[bytes]) -> list[list[Finding | None]]:
        if self.lookup_error:
            raise self.lookup_error
        return [self.findings[p] for p in payloads]

    async def stage(self, import_id: str, items: Sequence[tuple[bytes, str]]) -> tuple[Any, int]:
        if self.stage_error:
            raise self.stage_error
        refused = {}
        for index, (payload, customer) in enumerate(items):
            if payload in self.refuse:
                refused[index] = ("bad event", [])
            else:
                self.staged[payload.decode()] = customer
        return refused, len(self.staged)

    async def commit(self, import_id: str) -> EventFoldProgress:
        if not self.staged:
            raise DeliveryError("NOT_FOUND", "never staged")
        self.committed += 1
        return EventFoldProgress("committing", len(self.staged), 0, 0, 0, 0)

    async def progress(self, import_id: str) -> EventFoldProgress:
        self.polls += 1
        if self.polls < 2:
            return EventFoldProgress("committing", len(self.staged), 1, 0, 0, 1)
        customers = len(set(self.staged.values()))
        return EventFoldProgress("committed", len(self.staged), len(self.staged), 0, 0, customers)


def decisive(customer: str) -> Finding:
    return Finding(IdentifierState.DECISIVE, customer)


def imports(store: FakeStore, peers: FakePeers) -> tuple[EventImports, list[str]]:
    woken: list[str] = []
    return (
        EventImports(
            store,
            peers,
            grace_s=60.0,
            on_committed=lambda: woken.append("job"),
            on_enqueued=lambda: woken.append("relay"),
        ),
        woken,
    )


def test_staging_attributes_as_the_stream_does_and_hands_the_rest_over() -> None:
    store, peers = FakeStore(), FakePeers()
    peers.findings = {
        b"one": [decisive("c1")],
        b"same-twice": [decisive("c2"), decisive("c2")],
        b"nobody": [Finding(IdentifierState.UNKNOWN)],
        b"two": [decisive("c1"), decisive("c2")],
        b"refused-ids": [None],
        b"shared": [Finding(IdentifierState.SHARED, "", ("c1", "c3"))],
    }
    service, woken = imports(store, peers)
    answer = asyncio.run(service.stage("evt-1", [incoming(p.decode()) for p in peers.findings]))
    assert all(isinstance(o, Accepted) and not o.duplicate for o in answer.outcomes)
    assert peers.staged == {"one": "c1", "same-twice": "c2"}
    assert answer.handed_over == 4 and answer.import_staged == 2
    assert len(store.outbox) == 4 and "relay" in woken
    # the staged ones carry their customer, still pending; the others left the import
    assert {m: (r[2], r[3], r[4]) for (_, m), r in store.records.items()}["one"] == (
        "pending",
        "c1",
        "evt-1",
    )
    assert store.records[("shop", "nobody")][4] is None

    # The same message again: duplicates; the import's own events staged again (profile
    # keeps the first copy), the handed-over ones left to the streaming delivery.
    peers.staged.clear()
    again = asyncio.run(service.stage("evt-1", [incoming(p.decode()) for p in peers.findings]))
    assert all(isinstance(o, Accepted) and o.duplicate for o in again.outcomes)
    assert set(peers.staged) == {"one", "same-twice"} and again.handed_over == 0
    assert len(store.outbox) == 4


def test_unreachable_peers_leave_the_message_unanswered_and_a_refusal_fails_one_event() -> None:
    store, peers = FakeStore(), FakePeers()
    peers.findings = {b"a": [decisive("c1")], b"b": [decisive("c2")]}
    service, _ = imports(store, peers)
    peers.lookup_error = DeliveryError("UNAVAILABLE", "down")
    with pytest.raises(Unavailable):
        asyncio.run(service.stage("evt-1", [incoming("a"), incoming("b")]))
    peers.lookup_error = None
    peers.stage_error = DeliveryError("DEADLINE_EXCEEDED", "slow")
    with pytest.raises(Unavailable):
        asyncio.run(service.stage("evt-1", [incoming("a"), incoming("b")]))
    peers.stage_error = None
    peers.refuse = {b"b"}
    answer = asyncio.run(service.stage("evt-1", [incoming("a"), incoming("b")]))
    assert isinstance(answer.outcomes[0], Accepted) and answer.outcomes[0].duplicate
    assert isinstance(answer.outcomes[1], InvalidArgument)
    assert store.records[("shop", "b")][2] == "failed"
    assert peers.staged == {"a": "c1"}


def test_ids_of_the_other_kind_and_unknown_imports_are_refused() -> None:
    store, peers = FakeStore(kind=ImportKind.CUSTOMERS), FakePeers()
    service, _ = imports(store, peers)
    with pytest.raises(FailedPrecondition):
        asyncio.run(service.stage("cust-1", [incoming("a")]))
    with pytest.raises(NotFound):
        asyncio.run(service.commit("cust-1"))
    with pytest.raises(NotFound):
        asyncio.run(service.get("cust-1"))
    with pytest.raises(InvalidArgument):
        asyncio.run(service.get("no spaces allowed"))


def test_the_job_commits_profiles_fold_and_delivers_what_profile_staged() -> None:
    store, peers = FakeStore(), FakePeers()
    peers.findings = {b"a": [decisive("c1")], b"b": [decisive("c1")], b"x": [decisive("c2")]}
    service, woken = imports(store, peers)
    asyncio.run(service.stage("evt-1", [incoming("a"), incoming("b")]))
    # stored, never staged with profile (its message was answered UNAVAILABLE, never re-sent)
    peers.stage_error = DeliveryError("UNAVAILABLE", "down")
    with pytest.raises(Unavailable):
        asyncio.run(service.stage("evt-1", [incoming("x")]))
    peers.stage_error = None
    job = asyncio.run(service.commit("evt-1"))
    assert job.state is ImportState.RUNNING and "job" in woken
    runner = ImportJobRunner(store, peers, poll_s=0.0, event_peers=peers)  # type: ignore[arg-type]
    assert asyncio.run(runner.run_once())
    done = store.job
    assert done is not None and done.state is ImportState.SUCCEEDED
    assert done.phase is ImportPhase.DONE
    assert (done.events_applied, done.customers_changed, done.records_staged) == (2, 1, 2)
    states = {m: (r[2], r[3]) for (_, m), r in store.records.items()}
    assert states == {
        "a": ("delivered", "c1"),
        "b": ("delivered", "c1"),
        "x": ("failed", NOT_STAGED_EVENTS),
    }
    # committing again returns the job as it is
    assert asyncio.run(service.commit("evt-1")).state is ImportState.SUCCEEDED
    with pytest.raises(FailedPrecondition):
        asyncio.run(service.stage("evt-1", [incoming("c")]))
