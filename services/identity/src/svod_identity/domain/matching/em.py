"""Expectation–maximisation for the Fellegi–Sunter model on unlabelled candidate pairs.

Weights come from the data the service holds, not from hand tuning: the candidate pairs that
blocking produces are a mixture of matches and non-matches, and EM (under the usual
conditional-independence assumption) separates the two and estimates m, u and the match share.

The hand-set model acts as a Dirichlet prior worth ``prior_strength`` pairs per feature: with
little data the estimate stays close to it, with thousands of pairs the data decides. Missing
values carry no information and are left out of each feature's counts.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import replace

from svod_identity.domain.matching.model import (
    FEATURES,
    LEVELS,
    MISSING,
    PROBABILITY_FLOOR,
    MatchModel,
    default_model,
)

Pattern = tuple[str, ...]
# Below this many pairs EM is not worth running: the prior would dominate anyway.
MIN_PAIRS = 30


def comparison_patterns(comparisons: Iterable[Mapping[str, str]]) -> Counter[Pattern]:
    """Identical comparison vectors collapsed with their counts (EM works per pattern)."""
    return Counter(tuple(c.get(f, MISSING) for f in FEATURES) for c in comparisons)


def _log_likelihoods(
    patterns: list[tuple[Pattern, int]],
    m: dict[str, dict[str, float]],
    u: dict[str, dict[str, float]],
    prior: float,
) -> list[float]:
    """Posterior match probability of every pattern."""
    log_m = {f: {lvl: math.log(p) for lvl, p in row.items()} for f, row in m.items()}
    log_u = {f: {lvl: math.log(p) for lvl, p in row.items()} for f, row in u.items()}
    base = math.log(prior) - math.log(1.0 - prior)
    posteriors = []
    for pattern, _ in patterns:
        odds = base
        for feature, level in zip(FEATURES, pattern, strict=True):
            if level != MISSING:
                odds += log_m[feature][level] - log_u[feature][level]
        odds = max(min(odds, 50.0), -50.0)
        posteriors.append(1.0 / (1.0 + math.exp(-odds)))
    return posteriors


def _maximise(
    patterns: list[tuple[Pattern, int]],
    weights: list[float],
    anchor: dict[str, dict[str, float]],
    strength: float,
) -> dict[str, dict[str, float]]:
    """Level shares among pairs weighted by ``weights``, shrunk towards ``anchor``."""
    counts = {f: dict.fromkeys(LEVELS[f], 0.0) for f in FEATURES}
    for (pattern, count), weight in zip(patterns, weights, strict=True):
        for feature, level in zip(FEATURES, pattern, strict=True):
            if level != MISSING:
                counts[feature][level] += count * weight
    out = {}
    for feature, row in counts.items():
        total = sum(row.values()) + strength
        out[feature] = {
            level: max((n + strength * anchor[feature][level]) / total, PROBABILITY_FLOOR)
            for level, n in row.items()
        }
    return out


def _largest_change(old: dict[str, dict[str, float]], new: dict[str, dict[str, float]]) -> float:
    return max(abs(old[f][lvl] - new[f][lvl]) for f in FEATURES for lvl in LEVELS[f])


def _agreement_margin(m: dict[str, dict[str, float]], u: dict[str, dict[str, float]]) -> float:
    """How much more the strongest agreement levels belong to the match class than the other."""
    return sum(m[f][LEVELS[f][0]] - u[f][LEVELS[f][0]] for f in FEATURES)


def estimate_model(
    comparisons: Iterable[Mapping[str, str]],
    base: MatchModel | None = None,
    *,
    max_iterations: int = 200,
    tolerance: float = 1e-5,
    prior_strength: float = 50.0,
) -> MatchModel:
    """A model with m, u and the match share estimated by EM from unlabelled comparisons.

    ``comparisons`` are ``compare_records`` results for candidate pairs (pairs that share a
    blocking key); ``base`` supplies the starting point, the prior and the thresholds (the
    default model if omitted).
    """
    base = base or default_model()
    patterns = list(comparison_patterns(comparisons).items())
    total = sum(count for _, count in patterns)
    if total < MIN_PAIRS:
        return replace(base, trained_pairs=total, em_iterations=0, converged=False)
    m, u, prior = base.m, base.u, base.prior
    converged = False
    iterations = 0
    while iterations < max_iterations:
        iterations += 1
        posteriors = _log_likelihoods(patterns, m, u, prior)
        new_m = _maximise(patterns, posteriors, base.m, prior_strength)
        new_u = _maximise(patterns, [1.0 - p for p in posteriors], base.u, prior_strength)
        matches = sum(p * count for p, (_, count) in zip(posteriors, patterns, strict=True))
        new_prior = (matches + prior_strength * base.prior) / (total + prior_strength)
        new_prior = min(max(new_prior, 1e-4), 1 - 1e-4)
        change = max(_largest_change(m, new_m), _largest_change(u, new_u), abs(prior - new_prior))
        m, u, prior = new_m, new_u, new_prior
        if change < tolerance:
            converged = True
            break
    if _agreement_margin(m, u) < 0:
        # EM's classes are unlabelled: make sure "match" is the class where records agree.
        m, u, prior = u, m, 1.0 - prior
    return replace(
        base,
        m=m,
        u=u,
        prior=prior,
        trained_pairs=total,
        em_iterations=iterations,
        converged=converged,
    )
