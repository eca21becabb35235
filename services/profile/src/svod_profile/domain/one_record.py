"""Shown values and name index of a customer whose values all came with one provenance.

Most customers a customer import's fold makes hold one record's values: one observation per
field, all with the record's provenance. Every choice (``shown_values``, ``NameIndex.of``)
then depends on the values alone: survivorship and ``best_name`` compare observations of one
field by provenance (verified source, time, source) and, all else equal, by value, and with
one provenance every such comparison is a tie. So

- a field's shown value is its observation, but for a name field chosen by ``best_name``,
  whose value may change (Маша -> Мария, read with the shown gender), cached by (field,
  value, gender) - first names repeat across people;
- the name index lists one variant per name field (count 1, first and latest seen at the
  provenance's time) in field order, with each value's search keys, cached by value.

``OneRecordChoices.of`` gives what ``shown_values`` and ``NameIndex.of`` give for such a
customer, the cached parts computed by those functions themselves; any other customer (two
provenances, or two values of a field) gets None and the general path. Why: for a fold's
new customers the two general calls were 41 us a customer (timeit, load 11), 17% of
profile's CPU in the fold (py-spy, probe).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from functools import lru_cache

from svod_profile.domain.model import NameVariant, Provenance, TraitObservation
from svod_profile.domain.names import NAME_FIELDS, NameIndex, search_keys
from svod_profile.domain.survivorship import Policy, SurvivorshipRules, shown_value

# Any provenance: with one observation of a field the choice does not read it.
_ANY = Provenance("", "", dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
_NAME_ORDER = {name: i for i, name in enumerate(NAME_FIELDS)}
_CACHED = 65536


@lru_cache(maxsize=_CACHED)
def _keys(field: str, value: str) -> frozenset[str]:
    return frozenset(search_keys(field, value))


class OneRecordChoices:
    """``shown_values`` and ``NameIndex.of`` under ``rules`` for customers whose observations
    share one provenance (see the module docstring)."""

    def __init__(self, rules: SurvivorshipRules) -> None:
        self.rules = rules
        # Name fields whose shown value best_name chooses (it may change the value).
        self._named = frozenset(
            f
            for f in NAME_FIELDS
            if rules.for_field(f).policy in (Policy.BEST_NAME, Policy.VERIFIED_FIRST)
        )
        self._name_value = lru_cache(maxsize=_CACHED)(self._chosen_name)

    def _chosen_name(self, field: str, value: str, gender: str | None) -> str:
        chosen = shown_value(
            [TraitObservation(field, value, _ANY)], self.rules.for_field(field), gender
        )
        assert chosen is not None
        return chosen.value

    def of(
        self, fields: Iterable[str], observations: Sequence[TraitObservation]
    ) -> tuple[dict[str, TraitObservation], NameIndex | None] | None:
        """(shown values, name index or None) as ``shown_values(observations, rules)`` and
        ``NameIndex.of(fields, observations)`` (None unless ``fields`` holds a name field)
        give them; None when the observations do not share one provenance or a field has
        two."""
        if not observations:
            return None
        provenance = observations[0].provenance
        shown: dict[str, TraitObservation] = {}
        for obs in observations:
            if obs.provenance is not provenance or obs.field in shown:
                return None
            shown[obs.field] = obs
        gender_obs = shown.get("gender")
        gender = gender_obs.value if gender_obs is not None else None
        for field in self._named.intersection(shown):
            obs = shown[field]
            value = self._name_value(field, obs.value, gender)
            if value != obs.value:
                shown[field] = TraitObservation(field, value, provenance)
        names = tuple(f for f in NAME_FIELDS if f in fields)
        if not names:
            return shown, None
        mine = sorted(
            (o for o in observations if o.field in names), key=lambda o: _NAME_ORDER[o.field]
        )
        keys: frozenset[str] = frozenset()
        for obs in mine:
            keys |= _keys(obs.field, obs.value)
        at = provenance.observed_at
        variants = tuple(NameVariant(o.field, o.value, o, at, 1) for o in mine)
        return shown, NameIndex(names, variants, keys)
