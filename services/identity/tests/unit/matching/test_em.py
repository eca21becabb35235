"""EM estimation of the match model from unlabelled comparisons."""

from __future__ import annotations

import random

import pytest

from svod_identity.domain.matching import (
    FEATURES,
    LEVELS,
    MISSING,
    MatchModel,
    default_model,
    estimate_model,
)


def _sample(model: MatchModel, n: int, seed: int) -> list[dict[str, str]]:
    """Comparisons drawn from a known model (conditional independence holds by design)."""
    rng = random.Random(seed)
    vectors = []
    for _ in range(n):
        table = model.m if rng.random() < model.prior else model.u
        vector = {}
        for feature in FEATURES:
            if rng.random() < 0.2:
                vector[feature] = MISSING
                continue
            levels = list(LEVELS[feature])
            vector[feature] = rng.choices(levels, [table[feature][lv] for lv in levels])[0]
        vectors.append(vector)
    return vectors


def _truth() -> MatchModel:
    base = default_model()
    m = {f: dict(v) for f, v in base.m.items()}
    u = {f: dict(v) for f, v in base.u.items()}
    m["birth_date"] = {"exact": 0.8, "typo": 0.1, "disagree": 0.1}
    u["first_name"] = {"exact": 0.1, "equivalent": 0.05, "fuzzy": 0.05, "disagree": 0.8}
    return MatchModel(m=m, u=u, prior=0.35)


def test_em_recovers_a_known_model() -> None:
    truth = _truth()
    fitted = estimate_model(_sample(truth, 20_000, seed=3), prior_strength=10.0)
    assert fitted.converged
    assert fitted.prior == pytest.approx(truth.prior, abs=0.03)
    assert fitted.m["birth_date"]["exact"] == pytest.approx(0.8, abs=0.03)
    assert fitted.u["first_name"]["exact"] == pytest.approx(0.1, abs=0.03)
    for feature in FEATURES:
        top = LEVELS[feature][0]
        assert fitted.weight(feature, top) == pytest.approx(truth.weight(feature, top), abs=0.6)


def test_little_data_keeps_the_prior_model() -> None:
    base = default_model()
    fitted = estimate_model(_sample(base, 10, seed=1), base)
    assert (fitted.m, fitted.u, fitted.prior) == (base.m, base.u, base.prior)
    assert fitted.trained_pairs == 10 and fitted.em_iterations == 0


def test_em_on_generated_candidate_pairs_puts_agreement_on_the_match_side() -> None:
    pytest.importorskip("faker", reason="the benchmark generator needs Faker (bench.txt)")
    from benchmarks.identity.generator import generate
    from svod_identity.domain.matching.evaluation import (
        candidate_pairs,
        compare_pairs,
        record_from_message,
    )

    records = [record_from_message(m) for m in generate(600, seed=5)]
    comparisons = compare_pairs(records, candidate_pairs(records)).values()
    model = estimate_model(comparisons)
    print(f"\nEM: {model.trained_pairs} pairs, {model.em_iterations} iterations, "
          f"prior={model.prior:.3f}")  # fmt: skip
    assert model.converged and 0.0 < model.prior < 1.0
    for feature in FEATURES:
        top = LEVELS[feature][0]
        disagree = "disagree"
        print(f"  {feature:12} {top}: m={model.m[feature][top]:.3f} u={model.u[feature][top]:.3f}")
        assert model.m[feature][top] > model.u[feature][top], feature
        assert model.m[feature][disagree] < model.u[feature][disagree], feature
