"""A woman's record under her married name links to her customer on the same given name, birth
date and place when the fitted model's score says so; not without the place, nor against a
contact or place of the customer that disagrees."""

from __future__ import annotations

from services.identity.tests.unit.records import city_model as _model
from services.identity.tests.unit.records import incoming as _record
from services.identity.tests.unit.records import place as _place
from svod_identity.domain.identifiers import IdentifierKey

MAIDEN = {"first_name": "Ольга", "last_name": "Смирнова", "gender": "female"}
MARRIED = {"first_name": "Ольга", "last_name": "Кузнецова", "gender": "female"}
BORN = {"birth_date": "1987-03-14"}
# The maiden name's record has a phone, the married one's a loyalty card: nothing in common
# but the name, the birth date and the place (no contact disagrees either).
PHONE = IdentifierKey("phone", "+79164821937")
CARD = IdentifierKey("loyalty_card", "776729210834")
KOSTROMA = {"addresses": [{"city": "Кострома"}]}


def test_a_married_name_with_the_same_birth_date_and_city_links() -> None:
    (first, second), resolver = _place(
        _model(),
        _record(1, PHONE, **MAIDEN, **BORN, **KOSTROMA),
        _record(2, CARD, **MARRIED, **BORN, **KOSTROMA),
    )
    assert first == second
    assert resolver.changes.records[1].evidence.get("married_name") is True


def test_without_a_place_in_common_it_goes_to_review() -> None:
    """A given name and a birth date alone are shared by strangers in a large base."""
    (first, second), resolver = _place(
        _model(),
        _record(1, PHONE, **MAIDEN, **BORN, **KOSTROMA),
        _record(2, CARD, **MARRIED, **BORN),
    )
    assert first != second
    assert resolver.changes.reviews, "the pair is left to a reviewer"


def test_a_disagreeing_record_of_the_customer_stops_it() -> None:
    """The customer's other record puts her in another city: someone else's namesake."""
    (first, _, third), _ = _place(
        _model(),
        _record(1, PHONE, **MAIDEN, **BORN, **KOSTROMA),
        _record(2, PHONE, **MAIDEN, addresses=[{"city": "Тверь"}]),
        _record(3, CARD, **MARRIED, **BORN, **KOSTROMA),
    )
    assert first != third


def test_not_with_the_hand_set_model() -> None:
    """Only weights the data gave (EM) may let the score stand in for a contact."""
    (first, second), _ = _place(
        _model(trained_pairs=0),
        _record(1, PHONE, **MAIDEN, **BORN, **KOSTROMA),
        _record(2, CARD, **MARRIED, **BORN, **KOSTROMA),
    )
    assert first != second
