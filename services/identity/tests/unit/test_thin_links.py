"""A fuzzy link on a given name and a birth date alone (no contact, no place in common) does
not join two sides whose records disagree on the surname, the place and a contact at once
(``Resolver._contradicted_thin_link``). Households seed 8787 at 20,000 persons (EM): a till
record «Елена Владимировна» born 2008-08-12 with Соловьёва's card merged her customer with
those of Харитонова Елена of Новосибирск and Иванова Елена of Санкт-Петербург, born the same
day: one customer of three persons."""

from __future__ import annotations

from dataclasses import replace

from services.identity.tests.unit.records import incoming as _record
from services.identity.tests.unit.records import place as _place
from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.matching.model import MatchModel, default_model

BORN = {"birth_date": "2008-08-12"}
KHARITONOVAS_PHONE = IdentifierKey("phone", "+79993240103")
KHARITONOVAS_CARD = IdentifierKey("loyalty_card", "776586521596")
SOLOVYOVAS_CARD = IdentifierKey("loyalty_card", "772409441241")
ELENA = {"first_name": "Елена", "gender": "female"}
KHARITONOVA = {
    **ELENA,
    "last_name": "Харитонова",
    "addresses": [{"city": "Новосибирск"}],
    **BORN,
}


def _telling_birth_dates() -> MatchModel:
    """A model fitted where the same birth date says much (6.5 bits, as EM finds it in a base
    whose records mostly carry one): a given name and a birth date alone score "link"."""
    base = default_model()
    m = {f: dict(levels) for f, levels in base.m.items()}
    u = {f: dict(levels) for f, levels in base.u.items()}
    m["birth_date"]["exact"], u["birth_date"]["exact"] = 0.9, 0.01
    return replace(base, m=m, u=u, trained_pairs=10_000)


def test_a_till_record_does_not_merge_two_women_of_other_surnames_cities_and_cards() -> None:
    """The card ties the till record to Соловьёва of Уфа; its given name and birth date also
    score "link" against Харитонова of Новосибирск, whose surname, city and card all differ
    from Соловьёва's: the record stays with its card, the two women apart."""
    (kharitonova, solovyova, till), resolver = _place(
        _telling_birth_dates(),
        _record(1, KHARITONOVAS_PHONE, KHARITONOVAS_CARD, **KHARITONOVA),
        _record(2, SOLOVYOVAS_CARD, **ELENA, last_name="Соловьёва", addresses=[{"city": "Уфа"}]),
        _record(3, SOLOVYOVAS_CARD, **ELENA, middle_name="Владимировна", **BORN),
    )
    assert till == solovyova
    assert kharitonova != solovyova
    assert not resolver.changes.merges


def test_a_thin_link_with_one_disagreement_still_links() -> None:
    """A given name and a birth date against a customer whose only disagreement with the
    record is a mobile (a new number): the same person."""
    (first, second), _ = _place(
        _telling_birth_dates(),
        _record(1, KHARITONOVAS_PHONE, **KHARITONOVA),
        _record(2, IdentifierKey("phone", "+79161570250"), **ELENA, **BORN),
    )
    assert first == second


def test_the_same_sides_link_on_a_contact_in_common() -> None:
    """Not a thin link: the record shares the card of the customer it joins fuzzily, however
    much the other side's records disagree."""
    (kharitonova, solovyova, till), _ = _place(
        _telling_birth_dates(),
        _record(1, KHARITONOVAS_PHONE, KHARITONOVAS_CARD, **KHARITONOVA),
        _record(2, SOLOVYOVAS_CARD, **ELENA, last_name="Соловьёва", addresses=[{"city": "Уфа"}]),
        _record(3, KHARITONOVAS_CARD, **ELENA, middle_name="Владимировна", **BORN),
    )
    assert till == kharitonova
    assert solovyova != kharitonova
