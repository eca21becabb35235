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


# -- the rare-name rule over the customer as a whole ---------------------------------------------

IVAN = {"first_name": "Иван", "last_name": "Петров"}
MIDDLE = {"middle_name": "Сергеевич"}
PERSONAL_PHONE = IdentifierKey("phone", "+79165550143")


def _sole_holder_customer() -> tuple[IncomingRecord, IncomingRecord]:
    """One person's till record (the city) and call-centre record (the patronymic), one phone.
    With the hand-set weights the full name and the city score under the link threshold, the
    full name and the patronymic over it, the three together over it as well."""
    return (
        _record(11, PERSONAL_PHONE, **IVAN, **KOSTROMA),
        _record(12, PERSONAL_PHONE, **IVAN, **MIDDLE),
    )


# No contact: only names and the place tie it to anyone.
NAME_ONLY = _record(13, **IVAN, **MIDDLE, **KOSTROMA)


def test_a_full_names_sole_holder_links_on_one_records_city_and_anothers_patronymic() -> None:
    """Neither record alone carries the rare-name rule (one lacks the place, the other scores
    short), the customer as a whole does."""
    till, call, new = _place_rare(*_sole_holder_customer(), NAME_ONLY)
    assert till == call == new


def test_not_when_a_namesake_holds_the_full_name_at_the_place() -> None:
    namesake = _record(10, IdentifierKey("phone", "+79035550177"), **IVAN, **KOSTROMA)
    other, till, call, new = _place_rare(namesake, *_sole_holder_customer(), NAME_ONLY)
    assert till == call
    assert new not in (till, other)


def _place_rare(*records: IncomingRecord) -> list[str]:
    """Placed with the hand-set weights marked as fitted (the rare-name rule wants EM's)."""
    state = GraphState()
    model = replace(default_model(), trained_pairs=10_000)
    resolver = Resolver(state, default_rules(), model, new_id=iter("abcdef").__next__)
    return [state.find(resolver.resolve(r).customer_id) for r in records]
