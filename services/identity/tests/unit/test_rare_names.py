"""A full name and a place link a record when only one customer holds that full name (term
frequency from the data); not when several do, nor against a disagreeing contact."""

from __future__ import annotations

from dataclasses import replace

from services.identity.tests.unit.records import city_model as _model
from services.identity.tests.unit.records import incoming as _record
from services.identity.tests.unit.records import phone as _phone
from svod_identity.domain.engine import GraphState, Resolver
from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.matching.model import default_model
from svod_identity.domain.model import IncomingRecord
from svod_identity.domain.rules import default_rules

NAME = {"first_name": "Феврония", "last_name": "Муравьева"}
CITY = {"addresses": [{"city": "Кологрив"}]}


def _place(*records: IncomingRecord, **options: bool) -> tuple[list[str], Resolver]:
    state = GraphState()
    resolver = Resolver(state, default_rules(), _model(), new_id=iter("abcdef").__next__, **options)
    placed = [resolver.resolve(r) for r in records]
    return [state.find(p.customer_id) for p in placed], resolver


def test_a_full_name_only_one_customer_holds_links_in_the_same_city() -> None:
    email = IdentifierKey("email", "muraveva.f@yandex.ru")
    (first, second), resolver = _place(
        _record(1, email, **NAME, **CITY), _record(2, _phone(1), **NAME, **CITY)
    )
    assert first == second
    assert resolver.changes.records[1].evidence.get("rare_full_name") is True


def test_a_full_name_held_once_does_not_link_on_a_review_score_alone() -> None:
    """A big city shared by many customers: the pair scores "review", short of the link
    threshold. Being the name's only holder so far does not lift it: a popular name is held
    once only until its second holder arrives (precision fell with the size of the base when
    it did; see ``Resolver._rare_name_link``). The pair goes to the review queue instead."""
    model = replace(default_model(), trained_pairs=10_000)
    state = GraphState()
    resolver = Resolver(state, default_rules(), model, new_id=iter("ab").__next__)
    moscow = {"addresses": [{"city": "Москва"}]}
    email = IdentifierKey("email", "muraveva.f@yandex.ru")
    first = resolver.resolve(_record(1, email, **NAME, **moscow))
    second = resolver.resolve(_record(2, _phone(1), **NAME, **moscow))
    assert state.find(first.customer_id) != state.find(second.customer_id)
    assert "rare_full_name" not in resolver.changes.records[1].evidence
    assert resolver.changes.reviews, "the pair is left to a reviewer"


def test_the_rule_can_be_turned_off() -> None:
    email = IdentifierKey("email", "muraveva.f@yandex.ru")
    (first, second), _ = _place(
        _record(1, email, **NAME, **CITY), _record(2, _phone(1), **NAME, **CITY), rare_names=False
    )
    assert first != second


def test_not_with_the_hand_set_model() -> None:
    """Term-frequency evidence only with weights estimated from the data."""
    state = GraphState()
    resolver = Resolver(state, default_rules(), default_model(), new_id=iter("ab").__next__)
    email = IdentifierKey("email", "muraveva.f@yandex.ru")
    home = {"addresses": [{"city": "Кологрив", "address_line": "ул. Садовая, д. 5, кв. 7"}]}
    first = resolver.resolve(_record(1, email, **NAME, **home))
    second = resolver.resolve(_record(2, _phone(1), **NAME, **home))
    assert state.find(first.customer_id) != state.find(second.customer_id)


def test_a_full_name_two_customers_hold_is_no_evidence() -> None:
    (first, second, third), _ = _place(
        _record(1, _phone(1), **NAME, **CITY, birth_date="1961-07-19"),
        _record(2, _phone(2), **NAME, **CITY, birth_date="1988-03-02"),
        _record(3, IdentifierKey("email", "f.m@mail.ru"), **NAME, **CITY),
    )
    assert first != second
    assert third not in (first, second)


def test_a_contact_disagreeing_with_the_holder_keeps_the_record_apart() -> None:
    card = IdentifierKey("loyalty_card", "2621796009307", "loyalty")
    other_card = IdentifierKey("loyalty_card", "2434424106465", "loyalty")
    (first, second), _ = _place(
        _record(1, card, **NAME, **CITY), _record(2, other_card, **NAME, **CITY)
    )
    assert first != second


def test_a_namesake_known_to_live_in_another_city_leaves_the_name_rare_here() -> None:
    (here, elsewhere, third), _ = _place(
        _record(1, _phone(1), **NAME, **CITY, birth_date="1961-07-19"),
        _record(2, _phone(2), **NAME, addresses=[{"city": "Москва"}], birth_date="1988-03-02"),
        _record(3, IdentifierKey("email", "f.m@mail.ru"), **NAME, **CITY),
    )
    assert here != elsewhere
    assert third == here


def test_a_namesake_whose_place_is_unknown_may_live_here() -> None:
    (first, second, third), _ = _place(
        _record(1, _phone(1), **NAME, **CITY, birth_date="1961-07-19"),
        _record(2, _phone(2), **NAME, birth_date="1988-03-02"),
        _record(3, IdentifierKey("email", "f.m@mail.ru"), **NAME, **CITY),
    )
    assert first != second
    assert third not in (first, second)


def test_a_namesake_of_another_patronymic_leaves_the_full_name_rare() -> None:
    """Two Февронии Муравьевы in Кологрив, told apart by the patronymic: a record of one of
    them, patronymic given, has only one holder of its full name there."""
    (petrovna, ivanovna, third), _ = _place(
        _record(1, _phone(1), **NAME, **CITY, middle_name="Петровна"),
        _record(2, _phone(2), **NAME, **CITY, middle_name="Ивановна"),
        _record(3, IdentifierKey("email", "f.m@mail.ru"), **NAME, **CITY, middle_name="Петровна"),
    )
    assert petrovna != ivanovna
    assert third == petrovna


def test_a_namesake_of_another_birth_date_leaves_the_full_name_rare() -> None:
    """The holder whose birth date is unknown may be the record's; the one born on another
    day is not."""
    (unknown, other_day, third), _ = _place(
        _record(1, _phone(1), **NAME, **CITY),
        _record(2, _phone(2), **NAME, **CITY, birth_date="1988-03-02"),
        _record(3, IdentifierKey("email", "f.m@mail.ru"), **NAME, **CITY, birth_date="1961-07-19"),
    )
    assert unknown != other_day
    assert third == unknown


def test_a_record_without_a_patronymic_is_either_namesake() -> None:
    (petrovna, ivanovna, third), _ = _place(
        _record(1, _phone(1), **NAME, **CITY, middle_name="Петровна"),
        _record(2, _phone(2), **NAME, **CITY, middle_name="Ивановна"),
        _record(3, IdentifierKey("email", "f.m@mail.ru"), **NAME, **CITY),
    )
    assert third not in (petrovna, ivanovna)
