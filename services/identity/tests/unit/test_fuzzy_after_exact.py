"""Fuzzy matching runs after exact links too: a record that links by one identifier still
finds the person's other customer, whose records share no identifier with it."""

from __future__ import annotations

from services.identity.tests.unit.records import incoming as _record
from svod_identity.domain.engine import GraphState, Resolver
from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.matching.model import default_model
from svod_identity.domain.model import IncomingRecord
from svod_identity.domain.rules import default_rules

CARD = IdentifierKey("loyalty_card", "2941185716529", "loyalty")
PHONE = IdentifierKey("phone", "+79155796616")


def _place(*records: IncomingRecord, **options: bool) -> list[str]:
    state = GraphState()
    resolver = Resolver(
        state, default_rules(), default_model(), new_id=iter("abcdef").__next__, **options
    )
    placed = [resolver.resolve(r) for r in records]
    return [state.find(p.customer_id) for p in placed]


def _records() -> list[IncomingRecord]:
    name = {"first_name": "Наталья", "last_name": "Пахомова"}
    return [
        # A till record known by its card, with the birth date.
        _record(1, CARD, **name, birth_date="1990-02-01"),
        # A call-centre record by phone, no birth date: names alone, so a customer of its own.
        _record(2, PHONE, **name),
        # A web record by the same phone, with the birth date: the phone links it to the
        # second customer, and name and birth date to the first.
        _record(3, PHONE, first_name="Наташа", last_name="Пахомова", birth_date="1990-02-01"),
    ]


def test_a_record_linked_by_phone_also_joins_the_customer_its_name_and_birth_date_match() -> None:
    first, second, third = _place(*_records())
    assert first == second == third


def test_without_fuzzy_after_exact_the_two_customers_stay_apart() -> None:
    first, second, third = _place(*_records(), fuzzy_after_exact=False)
    assert second == third
    assert first != third


def test_a_conflict_with_the_other_customer_keeps_it_apart() -> None:
    records = _records()
    # The first customer's birth date is another one: a namesake, not the same person.
    records[0] = _record(
        1, CARD, first_name="Наталья", last_name="Пахомова", birth_date="1961-07-19"
    )
    first, second, third = _place(*records)
    assert second == third
    assert first != third
