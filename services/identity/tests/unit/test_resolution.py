from __future__ import annotations

import datetime as dt

from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.model import Owner
from svod_identity.domain.resolution import decide_link

PHONE = IdentifierKey("phone", "+79161234567")
EMAIL = IdentifierKey("email", "m@example.ru")
CARD = IdentifierKey("loyalty_card", "2000")
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_nothing_known_creates_a_customer_with_all_identifiers() -> None:
    decision = decide_link((EMAIL, PHONE), {})
    assert decision.customer_id is None
    assert decision.link == (EMAIL, PHONE)
    assert decision.merge == ()


def test_known_identifier_links_and_new_ones_attach() -> None:
    decision = decide_link((EMAIL, PHONE), {PHONE: Owner("a", T0)})
    assert decision.customer_id == "a"
    assert decision.link == (EMAIL,)
    assert decision.rule == "exact:phone"


def test_identifiers_of_two_customers_merge_them_into_the_oldest() -> None:
    owners = {
        PHONE: Owner("new", T0 + dt.timedelta(days=1)),
        EMAIL: Owner("old", T0),
        CARD: Owner("new", T0 + dt.timedelta(days=1)),
    }
    decision = decide_link((CARD, EMAIL, PHONE), owners)
    assert decision.customer_id == "old"
    assert decision.merge == ("new",)
    assert decision.link == ()


def test_resolution_outcomes_match_the_proto_enum() -> None:
    """Every outcome the engine gives has its RESOLUTION_OUTCOME_* in identity.v1, and back."""
    from svod.identity.v1 import identity_pb2
    from svod_identity.domain.model import ResolutionOutcome

    in_proto = {
        v.name.removeprefix("RESOLUTION_OUTCOME_").lower()
        for v in identity_pb2.ResolutionOutcome.DESCRIPTOR.values
        if v.number != 0
    }
    assert {o.value for o in ResolutionOutcome} == in_proto
