"""A fuzzy link does not put a third mobile number in a customer whose two sides share none,
unless its score bears each number beyond two weighed as a phone disagreement
(``Resolver._mobiles_beyond_a_change``): a person's records show the number they had and the one
they changed to, and the pair that links sees at most one of the others. Households seed 5151 at
20,000 persons (EM): two Кузнецов Иван born the same day in 2008, one customer by a thin link,
then a third of that name in Рязань with a third mobile joined on the full name and the city."""

from __future__ import annotations

from services.identity.tests.unit.records import incoming as _record
from services.identity.tests.unit.records import phone
from services.identity.tests.unit.records import place as _place
from services.identity.tests.unit.test_thin_chains import _households
from svod_identity.domain.identifiers import IdentifierKey

CARD = IdentifierKey("loyalty_card", "776715072974")
GMAIL = IdentifierKey("email", "ivan.kuznetsov08@gmail.com")
MAIL_RU = IdentifierKey("email", "ivan.kuznetsov08@mail.ru")
IVAN = {"first_name": "Иван", "last_name": "Кузнецов", "birth_date": "2008-06-09"}
PATRONYMIC = {**IVAN, "middle_name": "Иванович"}


def test_a_third_mobile_on_a_link_that_does_not_bear_it_is_left_for_review() -> None:
    """The customer holds two mobiles on its card's records; a record with a third one links
    on the full name and the birth date to its record without a number (5.2 bits, over the
    threshold of 3.2), which saw no phone at all: one disagreement more (-2.7 bits) puts it
    under the threshold, and it goes to review."""
    (*customer, last), resolver = _place(
        _households(),
        _record(1, phone(1), CARD, **IVAN),
        _record(2, phone(2), CARD, **IVAN),
        _record(3, CARD, **IVAN),
        _record(4, phone(3), **IVAN),
    )
    assert len(set(customer)) == 1
    assert last != customer[0]
    assert resolver.changes.records[-1].rule == "new_customer"
    assert resolver.changes.reviews  # left to a human


def test_a_customer_of_one_mobile_takes_a_second() -> None:
    """One number on the customer and the record's new one: a person who changed numbers."""
    (*customer, last), _ = _place(
        _households(),
        _record(1, phone(1), CARD, **IVAN),
        _record(2, CARD, **IVAN),
        _record(3, CARD, **IVAN),
        _record(4, phone(3), **IVAN),
    )
    assert len(set(customer)) == 1
    assert last == customer[0]


def test_a_link_strong_enough_bears_the_third_mobile() -> None:
    """The same login at another provider and the same patronymic as well (12 bits): the
    link still clears the threshold with the third number weighed against it."""
    (*customer, last), _ = _place(
        _households(),
        _record(1, phone(1), CARD, **IVAN),
        _record(2, phone(2), CARD, **IVAN),
        _record(3, CARD, GMAIL, **PATRONYMIC),
        _record(4, phone(3), MAIL_RU, **PATRONYMIC),
    )
    assert len(set(customer)) == 1
    assert last == customer[0]
