"""Ingestion's use cases over in-memory storage (no database): a message accepted exactly once
per (source, message id), retries answered as the first time, reuse of an id refused, outbox
entries written with the message, erasure of undelivered messages by identifier, retention,
and the operators' view of held events.

The SQL behind each storage method is tested against PostgreSQL in tests/e2e and tests/faults;
here the use cases' own decisions are.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

import pytest

from services.ingestion.tests.unit.fakes import FakeHeldEvents, FakeIngestionStore, FakeUnit
from svod_ingestion.domain.attribution import HeldEvent, Issue
from svod_ingestion.domain.model import Accepted, Incoming, MessageKind
from svod_ingestion.service_layer.use_cases import ERASED_PENDING, IngestionService
from svod_runtime.errors import AlreadyExists, InvalidArgument, NotFound
from svod_runtime.outbox import OutboxLane

T = TypeVar("T")
NOW = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
CUSTOMER = "00000000-0000-0000-0000-000000000001"


def run(awaitable: Awaitable[T]) -> T:
    async def main() -> T:
        return await awaitable

    return asyncio.run(main())


def identifiers_of(kind: MessageKind, payload: bytes) -> list[tuple[str, str, str]]:
    """The test's payloads are JSON: {"ids": [[type, value, namespace], ...]}."""
    return [tuple(i) for i in json.loads(payload)["ids"]]  # type: ignore[misc]


def message(
    message_id: str,
    phone: str = "+79161234567",
    *,
    kind: MessageKind = MessageKind.IDENTIFY,
    checked: bool = True,
    source: str = "web",
) -> Incoming:
    payload = json.dumps({"ids": [["phone", phone, ""]]}).encode()
    return Incoming(kind, source, message_id, "web", payload, payload, checked)


class Service:
    def __init__(self) -> None:
        self.store = FakeIngestionStore(NOW)
        self.held = FakeHeldEvents()
        self.enqueued = self.woken = 0
        self.woken_lanes: list[OutboxLane] = []
        self.use_cases = IngestionService(
            self.store,
            on_enqueued=self.count_enqueued,
            held=self.held,
            on_woken=self.count_woken,
            identifiers_of=identifiers_of,
        )

    def count_enqueued(self, lane: OutboxLane) -> None:
        self.enqueued += 1
        self.woken_lanes.append(lane)

    def count_woken(self) -> None:
        self.woken += 1


def paths(error: InvalidArgument) -> set[str]:
    return {v.field for v in error.violations}


def test_a_message_is_stored_once_with_its_outbox_entry_and_a_retry_answers_the_same() -> None:
    svc = Service()
    first = run(svc.use_cases.accept(message("m1")))
    retry = run(svc.use_cases.accept(message("m1")))

    assert first.duplicate is False and retry == Accepted(first.record_id, True, NOW)
    assert svc.store.state.outbox == [(1, MessageKind.IDENTIFY, False)]
    assert svc.enqueued == 1  # the retry wrote nothing, so nothing to wake the relay for


def test_a_message_id_reused_for_another_payload_is_refused() -> None:
    svc = Service()
    run(svc.use_cases.accept(message("m1")))
    with pytest.raises(AlreadyExists, match="different payload"):
        run(svc.use_cases.accept(message("m1", phone="+79160000000")))
    # The same id from another source is another message.
    assert run(svc.use_cases.accept(message("m1", source="pos"))).duplicate is False


def test_a_bulk_call_answers_each_message_and_commits_them_together() -> None:
    svc = Service()
    run(svc.use_cases.accept(message("m0")))
    outcomes = run(
        svc.use_cases.accept_many(
            [
                message("m1"),
                message("m1"),  # repeated inside the call: a retry of the first
                message("m0", phone="+79160000000"),  # id taken before, other payload
                message("m2", checked=False),  # accepted while quality was away
                message("t1", kind=MessageKind.TRACK),
            ]
        )
    )

    first, again, reused, unchecked, track = outcomes
    assert isinstance(first, Accepted) and isinstance(again, Accepted)
    assert (first.duplicate, again.duplicate, again.record_id) == (False, True, first.record_id)
    assert isinstance(reused, AlreadyExists)
    assert isinstance(unchecked, Accepted) and isinstance(track, Accepted)
    assert svc.store.state.outbox[1:] == [
        (2, MessageKind.IDENTIFY, False),
        (3, MessageKind.IDENTIFY, True),
        (4, MessageKind.TRACK, False),
    ]
    assert svc.enqueued == 2


def test_a_single_call_waits_in_the_interactive_lane_and_a_bulk_stream_in_the_bulk_lane() -> None:
    # A single Identify must not queue behind a bulk import's backlog (issue #20): each lane has
    # a relay of its own.
    svc = Service()
    run(svc.use_cases.accept(message("single")))
    run(svc.use_cases.accept_many([message("bulk-1"), message("bulk-2", kind="track")]))

    assert svc.store.state.lanes == {
        1: OutboxLane.INTERACTIVE,
        2: OutboxLane.BULK,
        3: OutboxLane.BULK,
    }


def test_erasing_by_identifier_fails_the_undelivered_messages_that_carry_it() -> None:
    svc = Service()
    run(svc.use_cases.accept(message("m1", phone="+7 916 123-45-67")))
    run(svc.use_cases.accept(message("m2", phone="+79160000000")))
    run(svc.use_cases.accept(message("m3", phone="89161234567")))
    svc.store.state.rows[("web", "m3")].state = "delivered"

    erased = run(svc.use_cases.erase_payloads([], [("phone", "8 (916) 123 45 67", "")]))

    rows = svc.store.state.rows
    assert erased == 1
    assert (rows[("web", "m1")].state, rows[("web", "m1")].last_error) == (
        "failed",
        ERASED_PENDING,
    )
    assert rows[("web", "m1")].payload is None and rows[("web", "m2")].payload is not None
    assert rows[("web", "m3")].payload is not None  # delivered: erased by its record ref
    assert [pk for pk, _, _ in svc.store.state.outbox] == [2, 3]
    assert run(svc.use_cases.erase_payloads([("web", "m3")])) == 1


def test_an_erasure_request_says_what_it_is_missing() -> None:
    svc = Service()
    with pytest.raises(InvalidArgument) as caught:
        run(svc.use_cases.erase_payloads([]))
    assert paths(caught.value) == {"record_refs"}
    with pytest.raises(InvalidArgument) as caught:
        run(svc.use_cases.erase_payloads([], [("phone", "1", "")] * 1001))
    assert paths(caught.value) == {"identifiers"}


def test_retention_purges_until_nothing_is_left() -> None:
    svc = Service()
    svc.store.purgeable = 12_000
    assert run(svc.use_cases.purge_expired_payloads(30)) == 12_000
    assert svc.store.purgeable == 0


def test_the_status_of_a_message_never_sent_is_not_found() -> None:
    with pytest.raises(NotFound, match="never sent"):
        run(Service().use_cases.status("web", "nope"))


def held(pk: int, issue: Issue, candidates: tuple[str, ...] = ()) -> HeldEvent:
    return HeldEvent(pk, f"r{pk}", "web", f"m{pk}", None, issue, candidates, NOW, NOW, 1, NOW)


def test_held_events_page_through_and_waits_are_left_out_unless_asked() -> None:
    svc = Service()
    svc.held.held = [
        held(1, Issue.SHARED_IDENTIFIER),
        held(2, Issue.AWAITING_CUSTOMER),
        held(3, Issue.UNKNOWN_CUSTOMER),
        held(4, Issue.BLOCKED_IDENTIFIER),
    ]

    first, token, counts = run(svc.use_cases.unattributed([], 2, ""))
    rest, last, _ = run(svc.use_cases.unattributed([], 2, token))
    waiting, _, _ = run(svc.use_cases.unattributed([Issue.AWAITING_CUSTOMER], 0, ""))

    assert [e.record_pk for e in first + rest] == [1, 3, 4] and last == ""
    assert [e.record_pk for e in waiting] == [2]
    assert counts[Issue.AWAITING_CUSTOMER] == 1
    with pytest.raises(InvalidArgument) as caught:
        run(svc.use_cases.unattributed([], 5000, "not a token!"))
    assert paths(caught.value) == {"page_size", "page_token"}


def test_a_held_events_token_issued_before_the_shared_codec_still_pages_on() -> None:
    svc = Service()
    svc.held.held = [held(1, Issue.SHARED_IDENTIFIER), held(3, Issue.UNKNOWN_CUSTOMER)]
    issued_before = "MQ=="  # base64 of the bare key 1, as ingestion issued tokens then

    rest, last, _ = run(svc.use_cases.unattributed([], 2, issued_before))

    assert [e.record_pk for e in rest] == [3] and last == ""


def test_a_recheck_wakes_the_events_naming_the_customers_and_says_how_many() -> None:
    svc = Service()
    svc.held.held = [held(1, Issue.SHARED_IDENTIFIER, (CUSTOMER,))]

    assert run(svc.use_cases.recheck([CUSTOMER, CUSTOMER], False)) == 1
    assert svc.held.woken == [CUSTOMER] and svc.woken == 1
    assert run(svc.use_cases.recheck([], True)) == 1
    with pytest.raises(InvalidArgument) as caught:
        run(svc.use_cases.recheck(["x"], False))
    assert paths(caught.value) == {"customer_ids[0]"}
    with pytest.raises(InvalidArgument):
        run(svc.use_cases.recheck([], False))


class Deadlock(Exception):
    """As psycopg raises it: a transaction that lost a deadlock (SQLSTATE 40P01)."""

    sqlstate = "40P01"


def test_a_chunk_that_lost_a_deadlock_is_stored_again_and_answered(monkeypatch) -> None:
    # Concurrent streams sending the same ids in other orders deadlock in the database; the
    # stream cannot be read again, so the chunk's transaction is run again instead.
    from services.ingestion.tests.unit import fakes

    svc = Service()
    real = fakes.FakeUnit.store_new
    calls = 0

    async def losing_once(self, rows, lane):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        stored = await real(self, rows, lane)
        if calls == 1:
            raise Deadlock("deadlock detected")  # after writing: the transaction rolls back
        return stored

    monkeypatch.setattr(fakes.FakeUnit, "store_new", losing_once)
    outcomes = run(svc.use_cases.accept_many([message("m1"), message("m2")]))

    assert calls == 2
    assert [o.duplicate for o in outcomes if isinstance(o, Accepted)] == [False, False]
    assert [pk for pk, _, _ in svc.store.state.outbox] == [1, 2]


def test_a_counted_chunk_answers_as_accept_many_without_reading_records_back() -> None:
    # A stream's chunk (accept_counted) only counts: True for stored now, False for a retry.
    # Same cases as test_a_bulk_call_answers_each_message_and_commits_them_together.
    svc = Service()
    run(svc.use_cases.accept(message("m0")))
    outcomes = run(
        svc.use_cases.accept_counted(
            [
                message("m1"),
                message("m1"),  # repeated inside the call: a retry of the first
                message("m1", phone="+79160000001"),  # repeated, another payload
                message("m0", phone="+79160000000"),  # id taken before, other payload
                message("m0"),  # taken before, same payload: a retry
                message("m2", checked=False),
                message("t1", kind=MessageKind.TRACK),
            ]
        )
    )

    first, again, reused_here, reused, retried, unchecked, track = outcomes
    assert (first, again, retried, unchecked, track) == (True, False, False, True, True)
    assert isinstance(reused_here, AlreadyExists) and isinstance(reused, AlreadyExists)
    assert svc.store.state.outbox[1:] == [
        (2, MessageKind.IDENTIFY, False),
        (3, MessageKind.IDENTIFY, True),
        (4, MessageKind.TRACK, False),
    ]


def test_a_chunk_of_new_messages_is_answered_without_a_look_at_earlier_records(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every message new (the common case): all True at once, and no look-up of records
    # stored before; one message taken before makes the chunk take the look-up again.
    svc = Service()
    looked_up: list[list[tuple[str, str]]] = []
    existing_many = FakeUnit.existing_many

    async def counting(unit: FakeUnit, refs: Sequence[tuple[str, str]]) -> Any:
        looked_up.append(list(refs))
        return await existing_many(unit, refs)

    monkeypatch.setattr(FakeUnit, "existing_many", counting)
    fresh = run(svc.use_cases.accept_counted([message(f"n{i}") for i in range(5)]))
    assert fresh == [True] * 5 and looked_up == []

    mixed = run(svc.use_cases.accept_counted([message("n0"), message("n5")]))
    assert mixed == [False, True]
    assert looked_up == [[("web", "n0")]]


def test_a_stored_chunk_wakes_only_its_lanes_relay() -> None:
    # A stream's chunk woke the interactive relay too: a claim that found nothing per chunk.
    svc = Service()
    run(svc.use_cases.accept(message("single")))
    run(svc.use_cases.accept_counted([message("bulk-1"), message("bulk-2")]))
    run(svc.use_cases.accept_counted([message("bulk-1")]))  # nothing new: nothing to wake

    assert svc.woken_lanes == [OutboxLane.INTERACTIVE, OutboxLane.BULK]
