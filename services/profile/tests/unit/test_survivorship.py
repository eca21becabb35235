from __future__ import annotations

import datetime as dt

from svod_profile.domain.model import Provenance, TraitObservation
from svod_profile.domain.survivorship import shown_values

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
