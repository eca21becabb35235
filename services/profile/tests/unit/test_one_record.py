"""A customer of one record: OneRecordChoices gives what shown_values and NameIndex.of give."""

from __future__ import annotations

import datetime as dt
import itertools

from svod_profile.domain.model import Provenance, TraitObservation
from svod_profile.domain.names import NameIndex
from svod_profile.domain.one_record import OneRecordChoices
from svod_profile.domain.survivorship import (
    FieldPolicy,
    Policy,
    SurvivorshipRules,
    shown_values,
)

T0 = dt.datetime(2026, 1, 1, 9, 30, tzinfo=dt.UTC)
FIRST = ["Маша", "Мария", "Masha", "Саша", "Sasha", "Наталия", "Женя", "Zzz", ""]
LAST = ["Смирнова", "Smirnova", ""]
MIDDLE = ["Ивановна", ""]
GENDER = ["female", "male", ""]
RULES = [
    SurvivorshipRules(),
    SurvivorshipRules(
        {
            "first_name": FieldPolicy(Policy.VERIFIED_FIRST, ("crm",)),
            "last_name": FieldPolicy(Policy.SOURCE_PRIORITY, ("crm",)),
            "gender": FieldPolicy(Policy.MOST_FREQUENT),
        }
    ),
    SurvivorshipRules({"first_name": FieldPolicy(Policy.MOST_RECENT)}),
]


def record(first: str, last: str, middle: str, gender: str) -> list[TraitObservation]:
    p = Provenance("crm", "web", T0)
    values = [("first_name", first), ("last_name", last), ("middle_name", middle)]
    values += [("gender", gender), ("birth_date", "1980-02-03"), ("attributes.tier", "gold")]
    return [TraitObservation(f, v, p) for f, v in values if v]


def test_one_record_gives_the_general_choice() -> None:
    touched = [
        None,
        {"first_name", "gender"},
        {"last_name", "birth_date"},
        {"birth_date"},
        {"full_name"},
    ]
    for rules, values, fields in itertools.product(
        RULES, itertools.product(FIRST, LAST, MIDDLE, GENDER), touched
    ):
        observations = record(*values)
        if fields is not None:
            observations = [o for o in observations if o.field in fields]
        if not observations:
            continue
        wanted = fields if fields is not None else {o.field for o in observations}
        quick = OneRecordChoices(rules).of(wanted, observations)
        assert quick is not None
        names = wanted & {"first_name", "last_name", "middle_name", "full_name"}
        general = (
            shown_values(observations, rules),
            NameIndex.of(wanted, observations) if names else None,
        )
        assert quick == general, (rules, values, fields)
        assert list(quick[0]) == list(general[0])  # the same order of fields


def test_two_provenances_or_two_values_of_a_field_take_the_general_path() -> None:
    choices = OneRecordChoices(SurvivorshipRules())
    one = record("Маша", "Смирнова", "", "female")
    other = TraitObservation("first_name", "Мария", Provenance("pos", "pos", T0))
    assert choices.of({"first_name"}, [*one, other]) is None
    again = TraitObservation("first_name", "Мария", one[0].provenance)
    assert choices.of({"first_name"}, [*one, again]) is None
    assert choices.of({"first_name"}, []) is None
