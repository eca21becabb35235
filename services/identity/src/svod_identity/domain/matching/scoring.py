"""Scoring candidate pairs: Fellegi–Sunter weights, thresholds and the safety vetoes.

The score of a pair is its log2 posterior odds of being one person: the prior log-odds plus
the match weight log2(m/u) of every feature's agreement level. Thresholds on the posterior
probability give three outcomes: link automatically, send to review, or treat as someone new.

Weights alone cannot protect households and namesakes, because their evidence is correlated:
a family shares surname, address, landline and sometimes an e-mail or a card, and all of that
adds up. So two rules cap the decision whatever the score says:

* A disagreement on first name (after nickname canonicalisation), birth date or patronymic
  blocks automatic linking: the pair goes to review at best; with both first name and birth
  date disagreeing it is a different person outright (a family member).
* Names and places are not enough: without agreement on something personal - birth date, a
  mobile phone, an e-mail or a card - a pair is at best a review case. Two Ivan Ivanovs in one
  city are two people until something personal says otherwise.
* A different surname (a marriage, or someone else) needs a contact in common - phone,
  e-mail or card - the same patronymic, or the same street address: first name and birth date
  alone are shared by strangers often enough across a customer base, but not at one address.
* A birth date with a slip counts as personal evidence only together with the same given
  name, surname and street address.
* Unlike first names where one is not a known name (``other``) conflict only when birth date
  or surname do not agree exactly: that is a garbled entry as often as a relative.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from svod_identity.domain.matching.compare import Comparison, compare_records
from svod_identity.domain.matching.model import FEATURES, MISSING, MatchModel
from svod_identity.domain.matching.record import PersonRecord

Decision = Literal["link", "review", "new"]
_DECISION_RANK: dict[str, int] = {"new": 0, "review": 1, "link": 2}

# Levels that tie a record to one individual rather than to a name, place or household.
# Near misses are left out on purpose: a birth date one digit off and the same mailbox name at
# another provider ("ivanov.a@...") are common among namesakes too.
PERSONAL_EVIDENCE: dict[str, frozenset[str]] = {
    "birth_date": frozenset({"exact"}),
    "phone": frozenset({"agree"}),
    "email": frozenset({"exact", "fuzzy"}),
    "card": frozenset({"agree"}),
}

# Contacts: what carries over a surname change and ties the new name to the old one.
CONTACT_EVIDENCE: dict[str, frozenset[str]] = {
    f: PERSONAL_EVIDENCE[f] for f in ("phone", "email", "card")
}


def _any(levels: Mapping[str, str], evidence: Mapping[str, frozenset[str]]) -> bool:
    return any(levels.get(f, MISSING) in ok for f, ok in evidence.items())


@dataclass(frozen=True)
class PairScore:
    """A scored comparison with everything needed to explain it."""

    levels: Mapping[str, str]
    weights: Mapping[str, float]
    prior_weight: float
    score: float  # log2 posterior odds
    probability: float
    decision: Decision
    vetoes: tuple[str, ...]  # safety rules that cap this pair (see ``safety_vetoes``)

    def explain(self) -> dict[str, Any]:
        """A JSON-ready breakdown: per-feature level and weight, prior, vetoes, outcome."""
        return {
            "decision": self.decision,
            "score": round(self.score, 3),
            "probability": round(self.probability, 6),
            "prior_weight": round(self.prior_weight, 3),
            "features": [
                {"feature": f, "level": self.levels[f], "weight": round(self.weights[f], 3)}
                for f in FEATURES
            ],
            "vetoes": list(self.vetoes),
        }


@dataclass(frozen=True)
class CandidateScore:
    """One candidate for a record, as ``score_candidates`` ranks them."""

    candidate_id: str
    score: float
    decision: Decision
    weights: Mapping[str, float]
    probability: float
    pair: PairScore

    def explain(self) -> dict[str, Any]:
        return {"candidate_id": self.candidate_id, **self.pair.explain()}


_NAME_AGREES = frozenset({"exact", "equivalent", "fuzzy"})
_SURNAME_AGREES = frozenset({"exact", "fuzzy"})


def first_name_conflict(levels: Mapping[str, str]) -> bool:
    """Two different known names; or unlike names where the birth dates do not confirm.

    A name the tables do not know ("pwige", a garbled or replaced entry) next to another is no
    proof of a different person when birth date and surname agree exactly as written; two known
    names (Анна/Мария, twins included) always are.
    """
    first = levels.get("first_name")
    if first == "disagree":
        return True
    if first == "other":
        return not (
            levels.get("birth_date") == "exact" and levels.get("last_name") in _SURNAME_AGREES
        )
    return False


def conflicts(levels: Mapping[str, str]) -> bool:
    """A first-name, birth-date or patronymic conflict: never one person without a human."""
    return (
        first_name_conflict(levels)
        or levels.get("birth_date") == "disagree"
        or levels.get("middle_name") == "disagree"
    )


def _same_home(levels: Mapping[str, str]) -> bool:
    """Same street address and the same given name: a person, not a household or namesake."""
    return levels.get("location") == "address" and levels.get("first_name") in _NAME_AGREES


def safety_vetoes(levels: Mapping[str, str]) -> tuple[Decision, tuple[str, ...]]:
    """The best decision the household/namesake rules allow, and why (see module docstring)."""
    first_conflict = first_name_conflict(levels)
    birth_conflict = levels.get("birth_date") == "disagree"
    reasons: list[str] = []
    cap: Decision = "link"
    if first_conflict and birth_conflict:
        return "new", ("first_name_and_birth_date_disagree",)
    if first_conflict:
        reasons.append("first_name_disagrees")
    if birth_conflict:
        reasons.append("birth_date_disagrees")
    if levels.get("middle_name") == "disagree":
        reasons.append("middle_name_disagrees")
    personal = _any(levels, PERSONAL_EVIDENCE) or (
        # A slipped birth date still ties a record to a person at one address under one name.
        levels.get("birth_date") == "typo"
        and _same_home(levels)
        and levels.get("last_name") in _SURNAME_AGREES
    )
    if not personal:
        reasons.append("no_personal_evidence")
    elif (
        levels.get("last_name") in ("changed", "disagree")
        and levels.get("middle_name") != "exact"
        and not _any(levels, CONTACT_EVIDENCE)
        and not (levels.get("birth_date") == "exact" and _same_home(levels))
    ):
        reasons.append("surname_change_uncorroborated")
    if reasons:
        cap = "review"
    return cap, tuple(reasons)


def _probability(score: float) -> float:
    return 1.0 / (1.0 + math.pow(2.0, -max(min(score, 200.0), -200.0)))


def score_comparison(levels: Comparison | Mapping[str, str], model: MatchModel) -> PairScore:
    """Scores a comparison vector from ``compare_records``."""
    weights = {f: model.weight(f, levels.get(f, MISSING)) for f in FEATURES}
    score = model.prior_weight + sum(weights.values())
    probability = _probability(score)
    decision: Decision = "new"
    if probability >= model.link_threshold:
        decision = "link"
    elif probability >= model.review_threshold:
        decision = "review"
    # Vetoes are reported whether or not they changed the outcome: "why not linked" is the
    # question the review screen and the API have to answer.
    cap, vetoes = safety_vetoes(levels)
    if _DECISION_RANK[cap] < _DECISION_RANK[decision]:
        decision = cap
    return PairScore(
        levels={f: levels.get(f, MISSING) for f in FEATURES},
        weights=weights,
        prior_weight=model.prior_weight,
        score=score,
        probability=probability,
        decision=decision,
        vetoes=vetoes,
    )


def score_pair(a: PersonRecord, b: PersonRecord, model: MatchModel) -> PairScore:
    return score_comparison(compare_records(a, b), model)


def score_candidates(
    record: PersonRecord, candidates: Iterable[PersonRecord], model: MatchModel
) -> list[CandidateScore]:
    """Candidates scored against ``record``, best first (ties by candidate id).

    The record itself (same ``record_key``) is skipped if it appears among the candidates.
    """
    scored = []
    for candidate in candidates:
        if candidate.record_key == record.record_key:
            continue
        pair = score_pair(record, candidate, model)
        scored.append(
            CandidateScore(
                candidate_id=candidate.record_key,
                score=pair.score,
                decision=pair.decision,
                weights=pair.weights,
                probability=pair.probability,
                pair=pair,
            )
        )
    scored.sort(key=lambda c: (-c.score, c.candidate_id))
    return scored
