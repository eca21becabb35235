"""A login made from a person's name and ending in a year (maksim.sergeev60, ivan1981) says the
birth year of its holder: a record of a full name without a birth date links on it to the one
namesake born that year, where two customers hold the name in the city and neither the score
nor the rare-name rule can tell which."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from services.identity.tests.unit.records import city_model as _model
from services.identity.tests.unit.records import incoming, place
from services.identity.tests.unit.records import phone as _phone
from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.matching.compare import login_birth_year
from svod_identity.domain.matching.contacts import email_address
from svod_identity.domain.matching.model import default_model
from svod_identity.domain.matching.record import PersonRecord
from svod_identity.domain.model import IncomingRecord

NAME = {"first_name": "Феврония", "last_name": "Муравьева"}
CITY = {"addresses": [{"city": "Кологрив"}]}


def _email(address: str) -> IdentifierKey:
    return IdentifierKey("email", address)


def _two_namesakes() -> tuple[IncomingRecord, IncomingRecord]:
    """Two Февронии Муравьевы in Кологрив, born 1961 and 1988."""
    return (
        incoming(1, _phone(1), **NAME, **CITY, birth_date="1961-07-19"),
        incoming(2, _phone(2), **NAME, **CITY, birth_date="1988-03-02"),
    )


def test_a_login_ending_in_a_birth_year_links_to_the_namesake_born_that_year() -> None:
    older, younger = _two_namesakes()
    record = incoming(3, _email("fevroniya.muraveva61@mail.ru"), **NAME, **CITY)
    (first, second, third), _ = place(_model(), older, younger, record)
    assert first != second
    assert third == first
    record = incoming(3, _email("muraveva1988@yandex.ru"), **NAME, **CITY)
    (first, second, third), _ = place(_model(), older, younger, record)
    assert third == second


def test_not_a_login_made_of_another_name() -> None:
    """A spouse's box (arhip1961): its year is not hers."""
    older, younger = _two_namesakes()
    record = incoming(3, _email("arhip1961@mail.ru"), **NAME, **CITY)
    (first, second, third), _ = place(_model(), older, younger, record)
    assert third not in (first, second)


MOSCOW = {"addresses": [{"city": "Москва"}]}


def test_on_a_review_score_only_the_one_holder_the_year_can_be() -> None:
    """Москва with the hand-set weights, fitted: the full name and the city score "review".
    The namesake born 1988 is someone else, so the one born 1961 is the only holder of the
    name the login's year can be."""
    model = replace(default_model(), trained_pairs=10_000)
    (first, second, third), _ = place(
        model,
        incoming(1, _phone(1), **NAME, **MOSCOW, birth_date="1961-07-19"),
        incoming(2, _phone(2), **NAME, **MOSCOW, birth_date="1988-03-02"),
        incoming(3, _email("fevroniya.muraveva61@mail.ru"), **NAME, **MOSCOW),
    )
    assert first != second
    assert third == first


def test_not_on_a_review_score_beside_a_namesake_of_unknown_year() -> None:
    """A third Феврония Муравьева in Москва whose records give no year may be the login's
    holder as well: the pair goes to the review queue."""
    model = replace(default_model(), trained_pairs=10_000)
    (first, second, unknown, record), resolver = place(
        model,
        incoming(1, _phone(1), **NAME, **MOSCOW, birth_date="1961-07-19"),
        incoming(2, _phone(2), **NAME, **MOSCOW, birth_date="1988-03-02"),
        incoming(3, _phone(3), **NAME, **MOSCOW),
        incoming(4, _email("fevroniya.muraveva61@mail.ru"), **NAME, **MOSCOW),
    )
    assert record not in (first, second, unknown)
    assert resolver.changes.reviews


def _person(
    key: str, emails: tuple[str, ...] = (), birth_date: dt.date | None = None
) -> PersonRecord:
    return PersonRecord(
        key, first_name="Максим", last_name="Сергеев", emails=emails, birth_date=birth_date
    )


def test_the_login_year_against_the_birth_year() -> None:
    born = _person("a", birth_date=dt.date(1960, 3, 10))
    assert login_birth_year(_person("b", emails=("maksim.sergeev60@mail.ru",)), born) is True
    assert login_birth_year(born, _person("b", emails=("maksim_sergeev1960@mail.ru",))) is True
    assert login_birth_year(_person("b", emails=("maksim.sergeev61@mail.ru",)), born) is False
    # A run of digits a provider appended, a login naming neither, a dated login's own record.
    assert login_birth_year(_person("b", emails=("msergeev360@mail.ru",)), born) is None
    assert login_birth_year(_person("b", emails=("arhip60@mail.ru",)), born) is None
    dated = _person("b", emails=("maksim.sergeev60@mail.ru",), birth_date=dt.date(1961, 1, 1))
    assert login_birth_year(dated, born) is None


def test_a_logins_year() -> None:
    years = {
        raw: address.login_year
        for raw in ("ivan1981@mail.ru", "maksim.sergeev60@bk.ru", "irina553@mail.ru", "olga@ya.ru")
        if (address := email_address(raw)) is not None
    }
    assert years == {
        "ivan1981@mail.ru": "1981",
        "maksim.sergeev60@bk.ru": "60",
        "irina553@mail.ru": "",
        "olga@ya.ru": "",
    }
