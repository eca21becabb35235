"""Which of several observed values a profile shows for a trait.

The default policy is "most recent observation wins" (ties broken by source name so the result
does not depend on arrival order). Per-field policies (source priority, verified first, most
frequent) belong to the profile issue and plug in here.
"""

from __future__ import annotations

from collections.abc import Iterable

from svod_profile.domain.model import TraitObservation


def shown_value(observations: Iterable[TraitObservation]) -> TraitObservation | None:
    best: TraitObservation | None = None
    for obs in observations:
        if best is None or (obs.provenance.observed_at, obs.provenance.source) > (
            best.provenance.observed_at,
            best.provenance.source,
        ):
            best = obs
    return best


def shown_values(observations: Iterable[TraitObservation]) -> dict[str, TraitObservation]:
    by_field: dict[str, list[TraitObservation]] = {}
    for obs in observations:
        by_field.setdefault(obs.field, []).append(obs)
    result = {}
    for name, values in by_field.items():
        chosen = shown_value(values)
        if chosen is not None:
            result[name] = chosen
    return result
