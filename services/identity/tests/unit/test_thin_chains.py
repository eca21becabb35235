"""A thin link (a given name, a birth date, no contact or place in common) to a record of a
customer that holds another record by a thin link alone does not join where the incoming record
and that other record are two people by the model: a contact of each disagrees and their pair
scores "new" (``Resolver._thin_chain_apart``). Households at 20,000 persons (EM) made customers
of three persons that way (seeds 7171 and 6262: «Алекандр Александрович» without a surname,
then Ivanov Aleksandr born the same day, then Иванов Александр Александрович with another
mobile and mailbox)."""

from __future__ import annotations

from dataclasses import replace

from services.identity.tests.unit.records import incoming as _record
from services.identity.tests.unit.records import place as _place
from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.matching.model import MatchModel, default_model

BORN = {"birth_date": "2008-05-23", "gender": "male"}
CARD = IdentifierKey("loyalty_card", "774750247143")
FIRST_BOX = IdentifierKey("email", "vpypgvf38@yandex.ru")
FIRST_MOBILE = IdentifierKey("phone", "+79261570250")
THIRD_BOX = IdentifierKey("email", "aleksandr2008@inbox.ru")
THIRD_MOBILE = IdentifierKey("phone", "+79158082669")
TILL = {"first_name": "Александр", "middle_name": "Александрович", **BORN}
IVANOV = {"first_name": "Александр", "last_name": "Иванов", **BORN}


def _households() -> MatchModel:
    """The weights EM gives on households seed 7171 at 20,000 persons (rounded m and u): a
    given name and a birth date link on their own, a mobile or a mailbox that differs weighs
    about -3 bits, names little."""
    base = default_model()
    m = {f: dict(levels) for f, levels in base.m.items()}
    u = {f: dict(levels) for f, levels in base.u.items()}
    for feature, level, m_level, u_level in (
        ("first_name", "exact", 0.72, 0.488),
        ("last_name", "exact", 0.896, 0.777),
        ("middle_name", "exact", 0.9995, 0.0734),
        ("birth_date", "exact", 0.97, 0.0186),
        ("email", "disagree", 0.076, 0.929),
        ("phone", "disagree", 0.117, 0.9995),
    ):
        m[feature][level], u[feature][level] = m_level, u_level
    return replace(base, m=m, u=u, prior=0.188, trained_pairs=10_000)


def test_a_third_record_apart_from_the_customers_other_end_stays_out() -> None:
    """The till record (a card) and Иванов's web record (his mailbox and mobile) are one
    customer on a given name and a birth date alone; a record that links to the till record
    the same way but whose mobile and mailbox both differ from Иванов's, scoring "new" against
    his record, is not joined to the chain: it may be either end's namesake."""
    (till, first, third), resolver = _place(
        _households(),
        _record(1, CARD, **TILL),
        _record(2, FIRST_BOX, FIRST_MOBILE, **IVANOV),
        _record(3, THIRD_BOX, THIRD_MOBILE, **IVANOV, middle_name="Александрович"),
    )
    assert first == till
    assert third != till
    assert resolver.changes.records[2].rule == "new_customer"
    assert resolver.changes.reviews  # left to a human


def test_the_same_record_joins_where_the_chain_is_tied_by_a_contact() -> None:
    """Иванов's record shares the till record's card: the customer is one person by a contact,
    and the third record's thin link to it holds as before."""
    (till, first, third), _ = _place(
        _households(),
        _record(1, CARD, **TILL),
        _record(2, FIRST_BOX, FIRST_MOBILE, CARD, **IVANOV),
        _record(3, THIRD_BOX, THIRD_MOBILE, **IVANOV, middle_name="Александрович"),
    )
    assert first == till
    assert third == till


def test_a_new_mailbox_alone_still_joins() -> None:
    """Only the mailbox differs from Иванов's (he kept his mobile off the record): the pair
    does not score "new", the person has two mailboxes."""
    (till, first, third), _ = _place(
        _households(),
        _record(1, CARD, **TILL),
        _record(2, FIRST_BOX, **IVANOV),
        _record(3, THIRD_BOX, THIRD_MOBILE, **IVANOV, middle_name="Александрович"),
    )
    assert first == till
    assert third == till
