"""Which customer an event belongs to, decided on all its identifiers, and the grace clock."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from svod.identity.v1 import identity_pb2
from svod.ingestion.v1 import ingestion_pb2
from svod_ingestion.domain.attribution import (
    DEFAULT_HELD_RECHECK_MAX_S,
    WAITING_RECHECK_MAX_S,
    Attributed,
    Finding,
    GraceClock,
    IdentifierState,
    Issue,
    NotAttributed,
    attribute,
    identifier_key,
    recheck_delay_s,
    sole_customer,
)
from svod_ingestion.domain.model import RecordState
from svod_ingestion.entrypoints import grpc_servicer

T0 = dt.datetime(2027, 1, 10, 12, 0, tzinfo=dt.UTC)
GRACE = 600.0
MOTHER, DAUGHTER, OTHER = "a", "b", "c"


def decisive(customer: str) -> Finding:
    return Finding(IdentifierState.DECISIVE, customer, (customer,))


SHARED = Finding(IdentifierState.SHARED, "", (MOTHER, DAUGHTER))
BLOCKED = Finding(IdentifierState.BLOCKED, "", (OTHER,))
UNKNOWN = Finding(IdentifierState.UNKNOWN)
FRESH = GraceClock()
SPENT = GraceClock(GRACE, T0)


def test_enums_mirror_the_protos() -> None:
    issues = {
        v.name.removeprefix("ATTRIBUTION_ISSUE_").lower()
        for v in ingestion_pb2.AttributionIssue.DESCRIPTOR.values
        if v.number
    }
    assert issues == {i.value for i in Issue}
    states = {
        v.name.removeprefix("IDENTIFIER_STATE_").lower()
        for v in identity_pb2.IdentifierState.DESCRIPTOR.values
        if v.number
    }
    assert states == {s.value for s in IdentifierState}
    records = {v.name for v in ingestion_pb2.RecordStatus.State.DESCRIPTOR.values if v.number}
    assert records == {f"STATE_{s.name}" for s in RecordState}
    assert set(grpc_servicer._STATE) == set(RecordState)


@pytest.mark.parametrize(
    ("findings", "clock", "expected"),
    [
        # One customer named: theirs, whatever shared or blocked identifiers say.
        ([decisive(DAUGHTER), SHARED], FRESH, Attributed(DAUGHTER)),
        ([decisive(MOTHER), BLOCKED, UNKNOWN], FRESH, Attributed(MOTHER)),
        ([decisive(MOTHER), decisive(MOTHER)], FRESH, Attributed(MOTHER)),
        # Two named: held, whatever else.
        (
            [decisive(MOTHER), decisive(OTHER)],
            FRESH,
            NotAttributed(Issue.CONFLICTING_IDENTIFIERS, (MOTHER, OTHER)),
        ),
        # Nobody named: waits while an identifier may still get a customer...
        ([SHARED, UNKNOWN], FRESH, NotAttributed(Issue.AWAITING_CUSTOMER, (MOTHER, DAUGHTER))),
        ([UNKNOWN], FRESH, NotAttributed(Issue.AWAITING_CUSTOMER)),
        # ... else held, shared before blocked before unknown.
        (
            [SHARED, BLOCKED],
            FRESH,
            NotAttributed(Issue.SHARED_IDENTIFIER, (MOTHER, DAUGHTER, OTHER)),
        ),
        ([BLOCKED], FRESH, NotAttributed(Issue.BLOCKED_IDENTIFIER, (OTHER,))),
        ([BLOCKED, UNKNOWN], SPENT, NotAttributed(Issue.BLOCKED_IDENTIFIER, (OTHER,))),
        ([UNKNOWN], SPENT, NotAttributed(Issue.UNKNOWN_CUSTOMER)),
    ],
)
def test_an_event_is_decided_on_all_its_identifiers(findings, clock, expected) -> None:
    assert attribute(findings, clock, GRACE) == expected


def test_the_grace_clock_counts_only_answered_genuinely_unknown_time() -> None:
    clock = GraceClock()
    clock = clock.advance(T0, genuinely_unknown=True)  # the first look starts it
    assert clock.used_s == 0 and clock.counting_since == T0
    clock = clock.advance(T0 + dt.timedelta(seconds=30), genuinely_unknown=True)
    assert clock.used_s == 30
    # Identity down for an hour: the looks it did not answer stop the clock...
    clock = clock.advance(T0 + dt.timedelta(seconds=31), genuinely_unknown=False)
    clock = clock.advance(T0 + dt.timedelta(hours=1), genuinely_unknown=False)
    assert clock.used_s == 30 and clock.counting_since is None
    # ... and the first answered look after it starts it again without counting the outage.
    clock = clock.advance(T0 + dt.timedelta(hours=1, seconds=5), genuinely_unknown=True)
    assert clock.used_s == 30
    clock = clock.advance(T0 + dt.timedelta(hours=1, seconds=15), genuinely_unknown=True)
    assert clock.used_s == 40
    assert attribute([UNKNOWN], clock, GRACE) == NotAttributed(Issue.AWAITING_CUSTOMER)


def test_looks_come_soon_then_less_often_up_to_a_cap() -> None:
    delays = [
        recheck_delay_s(Issue.SHARED_IDENTIFIER, n, DEFAULT_HELD_RECHECK_MAX_S) for n in range(20)
    ]
    assert delays[0] == 0.5 and delays[1] == 1.0 and delays == sorted(delays)
    assert delays[-1] == DEFAULT_HELD_RECHECK_MAX_S
    assert recheck_delay_s(Issue.IDENTITY_UNAVAILABLE, 50, 3600) == WAITING_RECHECK_MAX_S


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("phone", "8 (916) 123-45-67", ""), ("phone", "+79161234567", "")),
        (("email", " Masha@Example.RU ", ""), ("email", "masha@example.ru", "")),
        (("loyalty_card", "2000 0000-17", ""), ("loyalty_card", "2000000017", "")),
        (("external_id", "42", "Shop"), ("external_id", "42", "shop")),
        (("device_id", "dev-1", "ignored"), ("device_id", "dev-1", "")),
    ],
)
def test_identifier_keys_are_identitys_spelling(first, second) -> None:
    assert identifier_key(*first) == identifier_key(*second)
    assert identifier_key("phone", "+79161234567") != identifier_key("phone", "+79161234568")


_FINDING = st.one_of(
    st.none(),
    st.builds(
        Finding,
        st.sampled_from(list(IdentifierState)),
        st.sampled_from([MOTHER, DAUGHTER, OTHER, ""]),
        st.lists(st.sampled_from([MOTHER, DAUGHTER, OTHER]), max_size=2).map(tuple),
    ),
)


@given(st.lists(_FINDING, max_size=4))
def test_sole_customer_is_attributes_first_look(findings: list[Finding | None]) -> None:
    """An event import's first look (sole_customer) attributes exactly what ``attribute``
    attributes with a fresh clock, to the same customer."""
    usable = [f for f in findings if f is not None]
    decision = attribute(usable, GraceClock(), GRACE) if usable else None
    expected = decision.customer_id if isinstance(decision, Attributed) else None
    assert sole_customer(findings) == expected
