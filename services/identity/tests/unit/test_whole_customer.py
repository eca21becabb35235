"""A record links to a customer whose records together share enough with it, one the login and
another the city, when no single record does; not when a record of the customer disagrees."""

from __future__ import annotations

from dataclasses import replace

from services.identity.tests.unit.records import incoming as _record
from svod_identity.domain.engine import GraphState, Resolver
from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.matching.model import MatchModel, default_model
from svod_identity.domain.model import IncomingRecord
from svod_identity.domain.rules import default_rules

NAME = {"first_name": "Мария", "last_name": "Смирнова"}
KOSTROMA = {"addresses": [{"city": "Кострома"}]}
PHONE = IdentifierKey("phone", "+79164821937")


def _model(trained_pairs: int = 10_000) -> MatchModel:
    """A fitted model where the same login at another provider says little (1 bit) and a
    shared city much: neither the login pair nor the city pair alone reaches "link"."""
    base = default_model()
    m = {f: dict(levels) for f, levels in base.m.items()}
    u = {f: dict(levels) for f, levels in base.u.items()}
    m["location"]["city"], u["location"]["city"] = 0.7, 0.05
    m["email"]["local_part"], u["email"]["local_part"] = 0.02, 0.01
    return replace(base, m=m, u=u, trained_pairs=trained_pairs)


def _place(model: MatchModel, *records: IncomingRecord) -> list[str]:
    state = GraphState()
    # The rare-name rule off: the city pair alone would link through it.
    resolver = Resolver(
        state, default_rules(), model, new_id=iter("abcdef").__next__, rare_names=False
    )
    return [state.find(resolver.resolve(r).customer_id) for r in records]


def _customer(second_city: str = "Кострома") -> tuple[IncomingRecord, IncomingRecord]:
    """One person's web record (login at mail.ru) and till record (the city), one phone."""
    return (
        _record(1, PHONE, IdentifierKey("email", "maria.smirnova@mail.ru"), **NAME),
        _record(2, PHONE, **NAME, addresses=[{"city": second_city}]),
    )


NEW = _record(3, IdentifierKey("email", "maria.smirnova@gmail.com"), **NAME, **KOSTROMA)


def test_the_login_of_one_record_and_the_city_of_another_link_together() -> None:
    first, second, third = _place(_model(), *_customer(), NEW)
    assert first == second == third


def test_a_record_of_the_customer_in_another_city_stops_it() -> None:
    """Her records put her in Кострома and in Тверь: the new one may be a namesake."""
    elsewhere = _record(4, PHONE, **NAME, addresses=[{"city": "Тверь"}])
    web, till, moved, new = _place(_model(), *_customer(), elsewhere, NEW)
    assert web == till == moved
    assert new != web


def test_not_with_the_hand_set_model() -> None:
    first, _, third = _place(_model(trained_pairs=0), *_customer(), NEW)
    assert first != third
