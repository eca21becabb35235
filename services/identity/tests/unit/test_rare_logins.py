"""The same e-mail login at another provider, under the same given name, links a record on a
"review" score when the login is one person's across the whole base (at most two mailboxes hold
it, counted at refit); not when a surname and an initial make it for namesakes everywhere."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

from services.identity.tests.unit.records import place as _place
from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.matching.model import MatchModel, TermFrequencies, default_model
from svod_identity.domain.model import IncomingRecord, RecordRef

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
MOSCOW = {"addresses": [{"city": "Москва"}]}
# 300 mailboxes in shared logins: 148 logins at two providers, three of them these.
LOGINS = {f"login{i:03d}": 2 for i in range(146)} | {
    "mariasmirnova1987": 2,
    "popovae": 5,
    "bogdanova": 2,
    "maria1987": 2,
}


def _model(logins: dict[str, int] | None = LOGINS) -> MatchModel:
    tables = {"login": TermFrequencies.with_tail(logins)} if logins is not None else {}
    return replace(default_model(), trained_pairs=10_000, term_frequencies=tables)


def _record(n: int, email: str, **attributes: Any) -> IncomingRecord:
    return IncomingRecord(
        ref=RecordRef("src", f"m{n}"),
        channel="pos",
        observed_at=T0 + dt.timedelta(minutes=n),
        identifiers=(IdentifierKey("email", email),),
        attributes=attributes,
    )


def _pair(login: str, first: str = "Мария", **extra: Any) -> tuple[IncomingRecord, ...]:
    return (
        _record(1, f"{login}@mail.ru", first_name=first, **MOSCOW),
        _record(2, f"{login}@gmail.com", first_name=first, **MOSCOW, **extra),
    )


def test_a_login_one_person_keeps_across_providers_links() -> None:
    (first, second), resolver = _place(_model(), *_pair("maria.smirnova1987"))
    assert first == second
    assert resolver.changes.records[1].evidence.get("rare_login") is True


def test_a_login_unseen_at_refit_counts_as_held_by_two_mailboxes() -> None:
    (first, second), _ = _place(_model(), *_pair("maria.smirnova1990"))
    assert first == second


def test_a_login_many_mailboxes_hold_goes_to_review() -> None:
    """popov.a at five providers: a surname and an initial, which namesakes pick too."""
    (first, second), resolver = _place(_model(), *_pair("popov.a.e", first="Анна"))
    assert first != second
    assert resolver.changes.reviews, "the pair is left to a reviewer"


def test_a_login_made_of_the_name_alone_goes_to_review() -> None:
    """bogdanov.a at two providers: two Андрей Богдановы pick it as readily as one person."""
    (first, second), resolver = _place(_model(), *_pair("bogdanov.a", first="Андрей"))
    assert first != second
    assert resolver.changes.reviews


def test_a_login_of_the_given_name_and_a_year_goes_to_review() -> None:
    """maria1987 at two providers: every Мария born in 1987 makes it, however few of them the
    base holds so far (mariya_87 is another spelling of the same)."""
    for login in ("maria1987", "mariya_87"):
        (first, second), resolver = _place(_model(), *_pair(login))
        assert first != second
        assert resolver.changes.reviews


def test_without_login_frequencies_the_pair_goes_to_review() -> None:
    for model in (_model(None), _model({"mariasmirnova1987": 2})):  # none; too few mailboxes
        (first, second), resolver = _place(model, *_pair("maria.smirnova1987"))
        assert first != second
        assert resolver.changes.reviews


def test_a_disagreeing_birth_date_or_unlike_name_stops_it() -> None:
    records = _pair("maria.smirnova1987")
    dated = (
        _record(1, "maria.smirnova1987@mail.ru", first_name="Мария", birth_date="1987-03-01"),
        _record(2, "maria.smirnova1987@gmail.com", first_name="Мария", birth_date="1960-05-02"),
    )
    (first, second), _ = _place(_model(), *dated)
    assert first != second
    other_name = (records[0], _record(2, "maria.smirnova1987@gmail.com", first_name="Ольга"))
    (first, second), _ = _place(_model(), *other_name)
    assert first != second


def test_a_third_mailbox_of_the_login_since_the_fit_does_not_link() -> None:
    """Counted at a fit two mailboxes held it; a third arrived since: the login is no longer
    one person's. Three namesakes' logins made of a name and a birth year (households 5353,
    automatic fits) had joined one customer so."""
    login = "maria.smirnova1987"
    records = (
        *_pair(login),
        _record(3, f"{login}@bk.ru", first_name="Мария", **MOSCOW),
    )
    (first, second, third), _ = _place(_model(), *records)
    assert first == second
    assert third not in (first, second)
