"""A family's mailbox does not join a man's record to a woman's customer, nor a woman's to a
man's (``engine.family_member``): a record tied to the customer only by the mailbox - no
mobile, card or birth date in common with any of its records - whose names say another sex
than a record of the customer is someone else of the household who uses the box (a son on his
mother's box), not a holder. The box stays the holder's, refused to the other and shared.
Households seed 1717 at 20,000 persons (EM): «Смирнова Елена» of Омск, then «Смирнов» born
1992-09-02 on her box ``drpswtk35@bk.ru`` by the exact e-mail, then another «Смирнова Елена»:
one customer of three persons."""

from __future__ import annotations

from services.identity.tests.unit.records import incoming as _record
from services.identity.tests.unit.records import phone as _phone
from services.identity.tests.unit.records import place as _place
from svod_identity.domain.engine import GraphState, Refusal, Resolver
from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.matching.model import default_model
from svod_identity.domain.rules import default_rules

BOX = IdentifierKey("email", "drpswtk35@bk.ru")
OMSK = {"addresses": [{"city": "Омск"}]}


def test_a_mans_record_does_not_join_a_womans_customer_by_her_mailbox() -> None:
    (elena, smirnov, lena), resolver = _place(
        default_model(),
        _record(1, BOX, first_name="Елена", last_name="Смирнова", **OMSK),
        _record(2, BOX, last_name="Смирнов", birth_date="1992-09-02", **OMSK),
        _record(3, BOX, first_name="Лена", last_name="Смирнова", **OMSK),
    )
    assert smirnov != elena
    assert lena == elena  # the box stays hers
    assert resolver.changes.records[1].rule == "new_customer"
    assert resolver.changes.sharers.get(BOX), "the box is refused as another's and shared"


def test_the_box_stays_unlinked_for_the_other_as_a_conflict() -> None:
    resolver = Resolver(GraphState(), default_rules(), default_model())
    resolver.resolve(_record(1, BOX, first_name="Елена", last_name="Смирнова", **OMSK))
    placed = resolver.resolve(_record(2, BOX, last_name="Смирнов", **OMSK))
    assert (BOX, Refusal.CONFLICT) in placed.unlinked


def test_a_womans_record_on_her_own_box_still_joins() -> None:
    (elena, lena), _ = _place(
        default_model(),
        _record(1, BOX, first_name="Елена", last_name="Смирнова", **OMSK),
        _record(2, BOX, first_name="Лена", birth_date="1992-09-02", **OMSK),
    )
    assert lena == elena


def test_a_name_of_either_sex_says_nothing() -> None:
    """Саша, no surname: Александр or Александра."""
    (elena, sasha), _ = _place(
        default_model(),
        _record(1, BOX, first_name="Александра", last_name="Смирнова", **OMSK),
        _record(2, BOX, first_name="Саша", **OMSK),
    )
    assert sasha == elena


def test_a_birth_date_in_common_ties_a_slip_of_the_ending() -> None:
    """«Смирнов» for «Смирнова», with her birth date on the record: one person, a slip."""
    (smirnova, slip), _ = _place(
        default_model(),
        _record(1, BOX, last_name="Смирнова", birth_date="1990-03-01", **OMSK),
        _record(2, BOX, last_name="Смирнов", birth_date="1990-03-01", **OMSK),
    )
    assert slip == smirnova


def test_refused_on_the_box_a_record_does_not_link_by_the_box_alone() -> None:
    """The father holds the box, the mother's record on it is refused as his (and stays
    apart: its mobile is hers); a record with the surname alone on the box, refused as his,
    would link to the mother's customer on the box and the surname: it goes to review
    (``Resolver._on_the_family_box``). Households seed 5151: «Ефимова», a third person."""
    chelyabinsk = {"addresses": [{"city": "Челябинск"}]}
    (father, mother, third), resolver = _place(
        default_model(),
        _record(1, BOX, _phone(1), first_name="Владимир", last_name="Ефимов", **chelyabinsk),
        _record(2, BOX, _phone(2), first_name="Катя", last_name="Ефимова", **chelyabinsk),
        _record(3, BOX, last_name="Ефимова"),
    )
    assert len({father, mother, third}) == 3
    assert resolver.changes.records[-1].rule == "new_customer"
    assert resolver.changes.reviews  # left to a human
