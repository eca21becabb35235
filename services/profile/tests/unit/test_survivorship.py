from __future__ import annotations

import datetime as dt

from svod_profile.domain.model import Provenance, TraitObservation
from svod_profile.domain.survivorship import SurvivorshipRules, shown_values

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def obs(field: str, value: str, source: str, days: int) -> TraitObservation:
    return TraitObservation(field, value, Provenance(source, "web", T0 + dt.timedelta(days=days)))


def test_most_recent_observation_is_shown_per_field() -> None:
    shown = shown_values(
        [
            obs("first_name", "Маша", "pos", 0),
            obs("first_name", "Мария", "web", 3),
            obs("last_name", "Смирнова", "pos", 1),
        ]
    )
    assert shown["first_name"].value == "Мария"
    assert shown["last_name"].provenance.source == "pos"


def test_result_does_not_depend_on_arrival_order() -> None:
    values = [obs("first_name", "A", "b-src", 1), obs("first_name", "B", "a-src", 1)]
    assert shown_values(values) == shown_values(list(reversed(values)))


def test_source_priority_prefers_the_trusted_source_even_if_older() -> None:
    rules = SurvivorshipRules.from_json(
        '{"last_name": {"policy": "source_priority", "sources": ["crm", "webshop"]}}'
    )
    shown = shown_values(
        [
            obs("last_name", "Иванова", "crm", 0),
            obs("last_name", "Петрова", "pos", 9),
            obs("last_name", "Сидорова", "webshop", 5),
        ],
        rules,
    )
    assert shown["last_name"].value == "Иванова"


def test_most_frequent_outvotes_a_single_typo() -> None:
    rules = SurvivorshipRules.from_json('{"birth_date": {"policy": "most_frequent"}}')
    shown = shown_values(
        [
            obs("birth_date", "1990-04-12", "pos", 0),
            obs("birth_date", "1990-04-12", "web", 1),
            obs("birth_date", "1990-12-04", "app", 9),
        ],
        rules,
    )
    assert shown["birth_date"].value == "1990-04-12"


def test_verified_sources_win_then_recency() -> None:
    rules = SurvivorshipRules.from_json(
        '{"birth_date": {"policy": "verified_first", "sources": ["bank-kyc"]}}'
    )
    values = [
        obs("birth_date", "1990-04-21", "pos", 9),
        obs("birth_date", "1990-04-12", "bank-kyc", 1),
    ]
    assert shown_values(values, rules)["birth_date"].value == "1990-04-12"
    assert shown_values(values)["birth_date"].value == "1990-04-21"  # default: most recent


def test_names_show_the_best_full_form_unless_a_policy_says_otherwise() -> None:
    values = [obs("first_name", "Мария", "web", 1), obs("first_name", "Masha", "app", 9)]
    assert shown_values(values)["first_name"].value == "Мария"
    rules = SurvivorshipRules.from_json('{"first_name": {"policy": "most_recent"}}')
    assert shown_values(values, rules)["first_name"].value == "Masha"


def test_unknown_policy_is_refused() -> None:
    import pytest

    with pytest.raises(ValueError, match="unknown survivorship policy"):
        SurvivorshipRules.from_json('{"first_name": {"policy": "loudest"}}')
