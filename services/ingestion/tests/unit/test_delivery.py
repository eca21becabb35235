"""Ingestion's outbox handlers over in-memory storage and peers (no database, no network):
what is delivered, in what order, what the relay is told to retry (a retryable refusal) or to
dead-letter (a permanent one), which events wait or are held and why, and what wakes them.

The SQL behind the ports is tested against PostgreSQL in tests/e2e and tests/faults; the relay
itself (retries with backoff, dead letters after the last attempt) in tests/integration.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable
from typing import TypeVar

from services.ingestion.tests.unit.delivery_fakes import (
    FakeDeliveryStore,
    FakeDownstream,
    FakeEventHolds,
    payload,
)
from svod_ingestion.domain.attribution import GraceClock, Issue, identifier_key
from svod_ingestion.domain.model import UNCHECKED
from svod_ingestion.service_layer.delivery import ERASED, RecordDelivery
from svod_runtime.errors import ERASED_TEXT
from svod_runtime.outbox import DeliveryError, OutboxMessage

T = TypeVar("T")
NOW = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
GRACE_S = 600.0
ANNA = ("phone", "+79161234567", "")
BORIS = ("phone", "+79169876543", "")
SHOP = ("phone", "+74950000000", "")
CARD = ("loyalty_card", "2000-1234", "")


def run(awaitable: Awaitable[T]) -> T:
    async def main() -> T:
        return await awaitable

    return asyncio.run(main())


def outbox(record_pk: int, *, attempts: int = 0, unchecked: bool = False) -> OutboxMessage:
    topic_payload = UNCHECKED if unchecked else b""
    return OutboxMessage(record_pk, "record.x", str(record_pk), topic_payload, {}, attempts)


class Delivery:
    def __init__(self) -> None:
        self.store = FakeDeliveryStore(NOW)
        self.held = FakeEventHolds()
        self.peers = FakeDownstream()
        self.woken = 0
        self.gate_calls: list[list[bytes]] = []
        self.handler = RecordDelivery(
            self.store, self.peers, GRACE_S, self.held, on_woken=self.count_woken
        )

    def count_woken(self) -> None:
        self.woken += 1

    def stored(self, record_pk: int, stored: bytes, clock: GraceClock | None = None) -> int:
        self.store.add(record_pk, stored, clock)
        return record_pk

    def identify(self, *messages: OutboxMessage) -> list[DeliveryError | None]:
        return run(self.handler.identify(list(messages)))

    def track(self, *messages: OutboxMessage) -> list[DeliveryError | None]:
        return run(self.handler.track(list(messages)))

    def with_quality(self) -> None:
        """Quality upper-cases passed payloads; b'reject' fails a rule, b'down' is unchecked."""

        async def gate(payloads: list[bytes]) -> list[bytes | DeliveryError]:
            self.gate_calls.append(payloads)
            verdicts: list[bytes | DeliveryError] = []
            for stored in payloads:
                if b"reject" in stored:
                    verdicts.append(DeliveryError("INVALID_ARGUMENT", "birth_date: implausible"))
                elif b"down" in stored:
                    verdicts.append(DeliveryError("UNAVAILABLE", "quality is down"))
                else:
                    verdicts.append(stored.replace(b"note", b"NOTE"))
            return verdicts

        self.handler.quality_gate = gate


# -- identify calls --------------------------------------------------------------------------


def test_identify_calls_go_to_identity_in_outbox_order_and_are_marked_delivered() -> None:
    d = Delivery()
    anna, boris = payload(ANNA), payload(BORIS)
    d.stored(1, anna), d.stored(2, boris)
    answers = d.identify(outbox(2, attempts=2), outbox(1))
    assert answers == [None, None]
    assert d.peers.identified == [boris, anna]
    assert d.store.delivered == {2: ("customer-1", 3), 1: ("customer-2", 1)}


def test_a_refused_identify_is_answered_with_its_refusal_and_the_others_go_through() -> None:
    d = Delivery()
    anna, boris = payload(ANNA), payload(BORIS)
    d.stored(1, anna), d.stored(2, boris)
    refusal = DeliveryError("INVALID_ARGUMENT", "record.identifiers: empty")
    d.peers.identify_refusals[anna] = refusal
    answers = d.identify(outbox(1), outbox(2))
    # The relay dead-letters a permanent refusal and retries a passing one; either way the
    # record is not delivered.
    assert answers == [refusal, None]
    assert refusal.permanent
    assert list(d.store.delivered) == [2]


def test_identity_down_answers_every_identify_with_a_retryable_refusal() -> None:
    d = Delivery()
    d.stored(1, payload(ANNA))
    d.peers.identity_reachable = False
    (answer,) = d.identify(outbox(1))
    assert isinstance(answer, DeliveryError) and answer.outage and not answer.permanent
    assert d.store.delivered == {}


def test_an_erased_payload_is_not_sent_and_fails_for_good() -> None:
    d = Delivery()
    d.stored(2, payload(BORIS))
    answers = d.identify(outbox(1), outbox(2))
    erased = answers[0]
    assert isinstance(erased, DeliveryError) and str(erased).endswith(ERASED)
    assert erased.permanent
    assert answers[1] is None
    assert d.peers.identified == [payload(BORIS)]


def test_a_delivered_identify_wakes_the_events_waiting_for_its_identifiers() -> None:
    d = Delivery()
    d.stored(10, payload(ANNA, note="event"))
    d.track(outbox(10))
    assert d.held.held[10].issue is Issue.AWAITING_CUSTOMER
    d.stored(11, payload(BORIS, note="other event"))
    d.track(outbox(11))
    d.stored(1, payload(ANNA, CARD))
    d.identify(outbox(1))
    assert d.held.woken == [10]
    assert d.woken == 1


def test_an_identify_no_event_waits_for_wakes_nothing() -> None:
    d = Delivery()
    d.stored(1, payload(ANNA))
    d.identify(outbox(1))
    assert (d.held.woken, d.woken) == ([], 0)


# -- identify calls accepted while quality could not be asked ----------------------------------


def test_an_unchecked_identify_is_delivered_as_quality_standardised_it() -> None:
    d = Delivery()
    d.with_quality()
    d.stored(1, payload(ANNA, note="kiosk"))
    d.stored(2, payload(BORIS, note="web"))
    answers = d.identify(outbox(1, unchecked=True), outbox(2))
    assert answers == [None, None]
    assert d.gate_calls == [[payload(ANNA, note="kiosk")]]  # the checked one is not asked
    standardised = payload(ANNA, note="kiosk").replace(b"note", b"NOTE")
    assert d.peers.identified == [standardised, payload(BORIS, note="web")]
    assert d.store.checked == {1: standardised}
    assert d.store.rows[1].payload == standardised


def test_an_unchecked_identify_quality_rejects_fails_and_one_it_cannot_check_waits() -> None:
    d = Delivery()
    d.with_quality()
    d.stored(1, payload(ANNA, note="reject"))
    d.stored(2, payload(BORIS, note="down"))
    d.stored(3, payload(CARD))
    rejected, unchecked, passed = d.identify(
        outbox(1, unchecked=True), outbox(2, unchecked=True), outbox(3, unchecked=True)
    )
    assert isinstance(rejected, DeliveryError) and rejected.permanent
    assert isinstance(unchecked, DeliveryError) and unchecked.outage
    assert passed is None
    assert d.peers.identified == [payload(CARD).replace(b"note", b"NOTE")]
    assert list(d.store.delivered) == [3]


def test_without_a_quality_gate_an_unchecked_identify_is_retried_never_sent_unchecked() -> None:
    d = Delivery()
    d.stored(1, payload(ANNA))
    (answer,) = d.identify(outbox(1, unchecked=True))
    assert isinstance(answer, DeliveryError) and answer.status == "UNAVAILABLE"
    assert d.peers.identified == []


# -- events ----------------------------------------------------------------------------------


def test_an_event_whose_identifiers_name_one_customer_goes_to_their_profile() -> None:
    d = Delivery()
    anna = d.peers.holder(ANNA)
    d.peers.shared[identifier_key(*SHOP)] = (anna, "customer-x")
    event = payload(ANNA, SHOP)
    d.stored(5, event)
    assert d.track(outbox(5, attempts=1)) == [None]
    assert d.peers.applied == [(event, anna)]
    assert d.store.delivered == {5: (anna, 2)}
    assert d.held.released == [5]


def test_events_are_applied_in_outbox_order() -> None:
    d = Delivery()
    anna = d.peers.holder(ANNA)
    first, second, third = (payload(ANNA, note=n) for n in ("1", "2", "3"))
    d.stored(7, first), d.stored(8, second), d.stored(9, third)
    d.track(outbox(7), outbox(8), outbox(9))
    assert d.peers.applied == [(first, anna), (second, anna), (third, anna)]


def test_an_event_naming_two_customers_is_held_not_guessed() -> None:
    d = Delivery()
    anna, boris = d.peers.holder(ANNA), d.peers.holder(BORIS)
    d.stored(5, payload(ANNA, BORIS))
    assert d.track(outbox(5)) == [None]  # done for the outbox: the sweeper hands it back
    hold = d.held.held[5]
    assert hold.issue is Issue.CONFLICTING_IDENTIFIERS
    assert hold.candidates == (anna, boris)
    assert d.peers.applied == [] and d.store.delivered == {}


def test_an_event_with_only_blocked_identifiers_is_held_once_its_grace_is_spent() -> None:
    d = Delivery()
    d.peers.blocked.add(identifier_key(*SHOP))
    d.stored(5, payload(SHOP))
    d.track(outbox(5))
    assert d.held.held[5].issue is Issue.BLOCKED_IDENTIFIER


def test_an_unknown_customer_waits_then_is_held_once_the_grace_is_spent() -> None:
    d = Delivery()
    d.stored(5, payload(ANNA))
    d.track(outbox(5))
    waiting = d.held.held[5]
    assert waiting.issue is Issue.AWAITING_CUSTOMER
    assert waiting.keys == (identifier_key(*ANNA),)
    # Identity answered and nobody holds the phone: the grace clock runs from this look.
    assert waiting.clock.used_s == 0.0 and waiting.clock.counting_since is not None
    spent = GraceClock(GRACE_S, NOW - dt.timedelta(seconds=1))
    d.stored(6, payload(ANNA, note="later"), clock=spent)
    d.track(outbox(6))
    assert d.held.held[6].issue is Issue.UNKNOWN_CUSTOMER


def test_the_grace_clock_stops_while_an_identify_with_its_identifiers_is_pending() -> None:
    d = Delivery()
    d.held.pending_identifies.append(payload(ANNA, CARD))
    since = NOW - dt.timedelta(seconds=30)
    d.stored(5, payload(ANNA), clock=GraceClock(100.0, since))
    d.track(outbox(5))
    clock = d.held.held[5].clock
    assert clock == GraceClock(100.0, None)  # not counted, and stopped
    # A pending identify of someone else does not stop it.
    d.held.pending_identifies[:] = [payload(BORIS)]
    d.stored(6, payload(ANNA, note="again"), clock=GraceClock(100.0, since))
    d.track(outbox(6))
    assert d.held.held[6].clock.used_s > 100.0


def test_a_backlog_of_identify_calls_stops_every_grace_clock() -> None:
    d = Delivery()
    d.held.pending_identifies[:] = [payload(BORIS, note=str(n)) for n in range(1_001)]
    d.stored(5, payload(ANNA), clock=GraceClock(100.0, NOW - dt.timedelta(seconds=30)))
    d.track(outbox(5))
    assert d.held.held[5].clock.counting_since is None


def test_identity_down_every_event_waits_with_its_clock_stopped_and_none_fails() -> None:
    d = Delivery()
    d.peers.identity_reachable = False
    d.stored(5, payload(ANNA), clock=GraceClock(50.0, NOW - dt.timedelta(seconds=30)))
    d.stored(6, payload(BORIS))
    assert d.track(outbox(5), outbox(6)) == [None, None]
    assert {pk: h.issue for pk, h in d.held.held.items()} == {
        5: Issue.IDENTITY_UNAVAILABLE,
        6: Issue.IDENTITY_UNAVAILABLE,
    }
    assert d.held.held[5].clock == GraceClock(50.0, None)
    assert "(UNAVAILABLE)" in d.held.held[5].detail


def test_identity_answering_again_wakes_the_events_that_waited_for_it() -> None:
    d = Delivery()
    d.peers.identity_reachable = False
    d.stored(5, payload(ANNA))
    d.track(outbox(5))
    d.peers.identity_reachable = True
    d.peers.holder(BORIS)
    d.stored(6, payload(BORIS))
    d.track(outbox(6))
    assert d.held.woken == [5]
    assert d.woken == 1


def test_an_event_whose_every_identifier_is_malformed_fails_for_good() -> None:
    d = Delivery()
    d.stored(5, payload(("phone", "", "")))
    (answer,) = d.track(outbox(5))
    assert isinstance(answer, DeliveryError) and answer.permanent
    assert d.held.held == {} and d.peers.applied == []


def test_a_profile_refusal_is_the_events_answer_and_profile_down_answers_them_all() -> None:
    d = Delivery()
    anna = d.peers.holder(ANNA)
    refused, fine = payload(ANNA, note="refused"), payload(ANNA, note="fine")
    refusal = DeliveryError("FAILED_PRECONDITION", "customer merged away")
    d.peers.apply_refusals[refused] = refusal
    d.stored(5, refused), d.stored(6, fine)
    assert d.track(outbox(5), outbox(6)) == [refusal, None]
    assert d.store.delivered == {6: (anna, 1)}
    d.peers.profile_reachable = False
    d.stored(7, payload(ANNA, note="7")), d.stored(8, payload(ANNA, note="8"))
    first, second = d.track(outbox(7), outbox(8))
    # One error object for the whole call: the relay retries it as an outage.
    assert isinstance(first, DeliveryError) and first.outage and second is first
    assert 7 not in d.store.delivered and 8 not in d.store.delivered


# -- dead letters ----------------------------------------------------------------------------


def test_a_dead_lettered_message_is_marked_failed_with_its_last_error_and_attempts() -> None:
    d = Delivery()
    d.stored(1, payload(ANNA))
    run(d.handler.failed(outbox(1, attempts=4), "INVALID_ARGUMENT: bad record"))
    assert d.store.failed == {1: ("INVALID_ARGUMENT: bad record", 5)}
    assert 1 in d.store.rows  # kept: an operator may redrive it


def test_a_message_about_an_erased_customer_loses_its_payload_when_dead_lettered() -> None:
    d = Delivery()
    d.stored(1, payload(ANNA))
    run(d.handler.failed(outbox(1, attempts=0), f"FAILED_PRECONDITION: customer {ERASED_TEXT}"))
    assert d.store.failed[1][1] == 1
    assert 1 not in d.store.rows
