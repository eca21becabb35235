"""Scores are remembered by (model, comparison vector, adjustments): a remembered score is the
one working it out again gives, and never another model's."""

from __future__ import annotations

import itertools
from dataclasses import replace

from svod_identity.domain.matching import FEATURES, LEVELS, default_model
from svod_identity.domain.matching.scoring import _score_comparison, score_comparison


def _vectors() -> list[dict[str, str]]:
    """Every level of each feature against a base vector, and pairs of features varied."""
    base = {f: LEVELS[f][0] for f in FEATURES}
    out = [dict(base)]
    for feature in FEATURES:
        out += [{**base, feature: level} for level in LEVELS[feature]]
    for a, b in itertools.combinations(FEATURES, 2):
        out.append({**base, a: LEVELS[a][-1], b: LEVELS[b][-1]})
    return out


def test_a_remembered_score_is_the_score() -> None:
    model = default_model()
    for levels in _vectors():
        for adjustments in (None, {"last_name": 1.5}):
            fresh = _score_comparison(levels, model, adjustments)
            assert score_comparison(levels, model, adjustments) == fresh
            assert score_comparison(dict(levels), model, adjustments) == fresh


def test_another_model_gets_its_own_scores() -> None:
    strict = default_model()
    lenient = replace(strict, link_threshold=0.01, review_threshold=0.005)
    levels = {f: LEVELS[f][0] for f in FEATURES} | {"phone": LEVELS["phone"][-1]}
    levels |= {"email": LEVELS["email"][-1], "birth_date": LEVELS["birth_date"][-1]}
    first = score_comparison(levels, strict)
    second = score_comparison(levels, lenient)
    assert first == _score_comparison(levels, strict, None)
    assert second == _score_comparison(levels, lenient, None)
    assert score_comparison(levels, strict) == first
    assert (first.decision, second.decision) == ("new", "review")
