"""What a reviewer sees of both sides (domain/review.py) and why records are kept apart
(domain/explain.py)."""

from __future__ import annotations

import datetime as dt

from svod_identity.domain.engine import person_from
from svod_identity.domain.explain import Decision, SharedIdentifier, explain_apart
from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.matching.model import default_model
from svod_identity.domain.matching.scoring import score_pair
from svod_identity.domain.model import RecordRef
from svod_identity.domain.review import SideRecord, field_comparison, side

PHONE = IdentifierKey("phone", "+79161234567")


def record(n: int, **attributes: object) -> SideRecord:
    keys = (PHONE,)
    return SideRecord(
        RecordRef("crm", f"m{n}"), attributes, keys, person_from(str(n), attributes, keys)
    )


def test_a_birth_date_on_another_record_counts_for_the_side() -> None:
    compared = record(1, first_name="Светлана", last_name="Белозерова")
    dated = record(2, birth_date="1980-02-03")
    newcomer = record(3, first_name="Света", last_name="Белозерова", birth_date="1985-09-10")
    fields = field_comparison([newcomer], [compared, dated])
    assert fields["birth_date"] == "disagree"  # not "missing": the side has a birth date
    assert fields["first_name"] == "equivalent" and fields["last_name"] == "exact"
    assert fields["middle_name"] == "missing"
    shown = side("c", compared.ref, [dated, compared], 2)
    assert shown.birth_dates == (dt.date(1980, 2, 3),)
    assert shown.first_names == ("Светлана",) and shown.identifiers == (PHONE,)


def test_records_kept_apart_are_explained_step_by_step() -> None:
    mother = person_from("1", {"first_name": "Мария", "birth_date": "1968-03-02"}, (PHONE,))
    daughter = person_from("2", {"first_name": "Анна", "birth_date": "1997-07-09"}, (PHONE,))
    pair = score_pair(mother, daughter, default_model())
    at = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    steps = explain_apart(
        1,
        2,
        [Decision("customer_split", "agent", "two people", at)],
        [],
        [SharedIdentifier(PHONE, "")],
        (1, 2, dict(pair.levels)),
        pair,
    )
    assert [s.kind for s in steps] == [
        "kept_apart",
        "identifier_refused",
        "conflict",
        "match_score",
    ]
    assert steps[0].reason == "a split: two people" and steps[0].at == at
    assert steps[2].disagreements == ("first_name", "birth_date")
    assert steps[3].decision == "new" and steps[3].at is None
