"""Which of several observed values a profile shows for a trait (survivorship).

Every observed value is kept with its source and time; the shown one follows the field's
policy:

- ``most_recent`` (default): the latest observation wins.
- ``source_priority``: the value from the most trusted source wins (``sources``, most trusted
  first; unlisted sources rank below, most recent first among equals).
- ``most_frequent``: the value observed most often wins (ties: the most recent) — good for
  birth dates that a till types wrong now and then.
- ``verified_first``: values from sources listed as verifying (``sources``: e.g. a bank-card
  KYC feed, a confirmed e-mail) win; among them, and otherwise, the most recent. On a name
  field it is ``best_name`` with those sources verifying.
- ``best_name`` (default of first_name, last_name, middle_name, full_name): the person's name
  in its best full form - the most recent (verified sources first) name, shown in full
  (Маша -> Мария) and in Cyrillic over a transliteration (see ``names.py``).

Ties are broken by source name so the result never depends on arrival order.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from svod_profile.domain.model import TraitObservation
from svod_profile.domain.names import NAME_FIELDS, best_name


class Policy(StrEnum):
    """How a field's shown value is chosen (see the module's docstring)."""

    MOST_RECENT = "most_recent"
    SOURCE_PRIORITY = "source_priority"
    MOST_FREQUENT = "most_frequent"
    VERIFIED_FIRST = "verified_first"
    BEST_NAME = "best_name"


POLICIES = tuple(p.value for p in Policy)


@dataclass(frozen=True)
class FieldPolicy:
    policy: Policy = Policy.MOST_RECENT
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class SurvivorshipRules:
    by_field: Mapping[str, FieldPolicy] = field(default_factory=dict)

    def for_field(self, name: str) -> FieldPolicy:
        default = _BEST_NAME if name in NAME_FIELDS else _MOST_RECENT
        return self.by_field.get(name, default)

    @classmethod
    def from_json(cls, raw: str) -> SurvivorshipRules:
        """``{"birth_date": {"policy": "most_frequent"}, "first_name": {"policy":
        "source_priority", "sources": ["crm", "webshop"]}}``; raises ValueError if malformed."""
        if not raw.strip():
            return cls()
        data = json.loads(raw)
        rules = {}
        for name, spec in data.items():
            policy = spec.get("policy", Policy.MOST_RECENT)
            if policy not in POLICIES:
                raise ValueError(f"{name}: unknown survivorship policy {policy!r}")
            rules[name] = FieldPolicy(Policy(policy), tuple(spec.get("sources", ())))
        return cls(rules)


_MOST_RECENT = FieldPolicy()
_BEST_NAME = FieldPolicy(Policy.BEST_NAME)


def _recency(obs: TraitObservation) -> tuple[object, str]:
    return (obs.provenance.observed_at, obs.provenance.source)


def shown_value(
    observations: Iterable[TraitObservation],
    policy: FieldPolicy = _MOST_RECENT,
    gender: str | None = None,
) -> TraitObservation | None:
    """``gender``: the person's shown gender, which reads diminutives like Саша."""
    values = list(observations)
    if not values:
        return None
    name_field = values[0].field in NAME_FIELDS
    if name_field and policy.policy in (Policy.BEST_NAME, Policy.VERIFIED_FIRST):
        return best_name(values[0].field, values, policy.sources, gender)
    if policy.policy is Policy.SOURCE_PRIORITY:
        rank = {source: i for i, source in enumerate(policy.sources)}
        unlisted = len(rank)
        best_rank = min(rank.get(o.provenance.source, unlisted) for o in values)
        values = [o for o in values if rank.get(o.provenance.source, unlisted) == best_rank]
    elif policy.policy is Policy.VERIFIED_FIRST:
        verified = [o for o in values if o.provenance.source in policy.sources]
        values = verified or values
    elif policy.policy is Policy.MOST_FREQUENT:
        counts = Counter(o.value for o in values)
        top = max(counts.values())
        values = [o for o in values if counts[o.value] == top]
    return max(values, key=_recency)


def shown_values(
    observations: Iterable[TraitObservation], rules: SurvivorshipRules | None = None
) -> dict[str, TraitObservation]:
    rules = rules or SurvivorshipRules()
    by_field: dict[str, list[TraitObservation]] = {}
    for obs in observations:
        by_field.setdefault(obs.field, []).append(obs)
    result = {}
    gender = None
    if "gender" in by_field:  # first: it reads the first name
        chosen_gender = shown_value(by_field["gender"], rules.for_field("gender"))
        gender = chosen_gender.value if chosen_gender is not None else None
    for name, values in by_field.items():
        chosen = shown_value(values, rules.for_field(name), gender)
        if chosen is not None:
            result[name] = chosen
    return result
