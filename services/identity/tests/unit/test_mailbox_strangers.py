"""A mailbox alone does not tie a record from another city, under another surname, to a
customer (``engine.mailbox_stranger``): the e-mail stays unlinked and shared. The same mailbox
with the surname, a phone or a birth date in common still links, and so does the same
mailbox in the same city."""

from __future__ import annotations

import datetime as dt
from typing import Any

from services.identity.tests.unit.records import phone as _phone
from svod_identity.domain.engine import GraphState, Placement, Refusal, Resolver
from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.matching.model import default_model
from svod_identity.domain.model import IncomingRecord, RecordRef
from svod_identity.domain.rules import default_rules

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
BOX = IdentifierKey("email", "elena1988@yandex.ru")


def _record(n: int, *identifiers: IdentifierKey, **attributes: Any) -> IncomingRecord:
    return IncomingRecord(
        ref=RecordRef("web", f"m{n}"),
        channel="web",
        observed_at=T0 + dt.timedelta(minutes=n),
        identifiers=identifiers,
        attributes=attributes,
    )


def _city(name: str) -> dict[str, Any]:
    return {"addresses": [{"city": name}]}


def _place(*records: IncomingRecord) -> tuple[list[str], list[Placement]]:
    state = GraphState()
    resolver = Resolver(state, default_rules(), default_model(), new_id=iter("abcdef").__next__)
    placed = [resolver.resolve(r) for r in records]
    return [state.find(p.customer_id) for p in placed], placed


def test_a_mailbox_alone_does_not_pull_in_someone_of_another_surname_elsewhere() -> None:
    """A chain: the mailbox ties the third record to the customer, whose records (one by
    phone without the mailbox) all put it in Москва under Кузнецова."""
    (first, second, third), placed = _place(
        _record(1, _phone(1), first_name="Елена", last_name="Кузнецова", **_city("Москва")),
        _record(2, _phone(1), BOX, first_name="Лена", last_name="Кузнецова"),
        _record(3, BOX, first_name="Елена", last_name="Смирнова", **_city("Волгоград")),
    )
    assert first == second
    assert third != first
    assert (BOX, Refusal.CONFLICT) in placed[2].unlinked


def test_no_surname_and_another_city_is_no_tie_either() -> None:
    (first, second), _ = _place(
        _record(1, BOX, first_name="Елена", last_name="Кузнецова", **_city("Москва")),
        _record(2, BOX, first_name="Елена", **_city("Волгоград")),
    )
    assert first != second


def test_the_same_surname_after_a_move_still_links() -> None:
    (first, second), _ = _place(
        _record(1, BOX, first_name="Елена", last_name="Кузнецова", **_city("Москва")),
        _record(2, BOX, first_name="Елена", last_name="Кузнецова", **_city("Волгоград")),
    )
    assert first == second


def test_a_phone_in_common_ties_a_new_surname_in_another_city() -> None:
    """A marriage and a move: the phone carries over."""
    (first, second), _ = _place(
        _record(1, BOX, _phone(1), first_name="Елена", last_name="Кузнецова", **_city("Москва")),
        _record(2, BOX, _phone(1), first_name="Елена", last_name="Смирнова", **_city("Тверь")),
    )
    assert first == second


def test_a_new_surname_in_the_same_city_still_links_by_mailbox() -> None:
    (first, second), _ = _place(
        _record(1, BOX, first_name="Елена", last_name="Кузнецова", **_city("Москва")),
        _record(2, BOX, first_name="Елена", last_name="Смирнова", **_city("Москва")),
    )
    assert first == second
