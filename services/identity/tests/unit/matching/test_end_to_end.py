"""End to end on the benchmark generator: block, compare, EM, score, link, measure."""

from __future__ import annotations

import pytest

pytest.importorskip("faker", reason="the benchmark generator needs Faker (bench.txt)")

from benchmarks.identity.generator import generate
from svod_identity.domain.matching.evaluation import evaluate

PERSONS = 1000


@pytest.mark.parametrize("seed", [7, 11])
def test_pairwise_f1_on_generated_customers(seed: int) -> None:
    metrics = evaluate(generate(PERSONS, seed))
    print(f"\nseed={seed} persons={PERSONS}: {metrics.summary()}")
    assert metrics.f1 >= 0.95, metrics.summary()
    assert metrics.max_persons_per_cluster <= 2, metrics.summary()
