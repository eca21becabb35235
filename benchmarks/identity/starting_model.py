"""Where identity's starting match model comes from: EM over the candidate pairs of a pool of
generated sets, both generators, seeds the accuracy benchmarks never use.

Until an operator refits (``RefitMatchModel``) or identity fits by itself, every record is
matched with the starting model (``model.STARTING_M``, ``STARTING_U``, ``STARTING_PRIOR``); a
bulk import on a fresh install places all its records with it. This script estimates those
values the way a refit does (EM from the hand-set values, ``em.estimate_model``, unsupervised:
no labels are read) over the pooled candidate pairs of two sets of each generator, and prints
them in the form ``model.py`` holds them, with the accuracy of the matcher with no refit on
sets left out of the pool, hand-set values against the pool's: FEBRL3 and FEBRL4 (another
country, another generator) and the accuracy benchmarks' own seeds.

    .venv/bin/python -m benchmarks.identity.starting_model
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import replace

from benchmarks.identity import datasets
from benchmarks.identity.offline import candidate_comparisons, run
from svod_identity.domain.matching.compare import Comparison
from svod_identity.domain.matching.em import estimate_model
from svod_identity.domain.matching.model import FEATURES, LEVELS, MatchModel, default_model
from svod_identity.domain.records import build_record
from svod_identity.entrypoints.grpc_servicer import raw_record

# Seeds of the pool: none of them is a seed bench_accuracy.py or the tests use.
POOL_GENERATOR_SEEDS = (1717, 2828)
POOL_HOUSEHOLD_SEEDS = (3939, 4545)
# 10,000 persons a set: see model.STARTING_M.
POOL_PERSONS = 10_000


def pooled_comparisons(persons: int) -> list:
    """The candidate pairs' comparison levels of every set of the pool, together."""
    now = dt.datetime.now(dt.UTC)
    sets = [datasets.generated(persons, s)[0] for s in POOL_GENERATOR_SEEDS]
    sets += [datasets.households(persons, s)[0] for s in POOL_HOUSEHOLD_SEEDS]
    comparisons: list[Comparison] = []
    for requests in sets:
        comparisons += candidate_comparisons([build_record(raw_record(r), now) for r in requests])
    return comparisons


def estimate_starting_model(persons: int = POOL_PERSONS) -> MatchModel:
    """EM over the pool, from the hand-set values as its anchor; provenance cleared, so the
    service still treats it as a model no data of its own gave (``trained_pairs`` 0)."""
    fitted = estimate_model(pooled_comparisons(persons), default_model())
    return replace(fitted, trained_pairs=0, em_iterations=0, converged=False)


def rounded(row: dict[str, float]) -> dict[str, float]:
    """A row of 4 significant digits that still sums to one: the most likely level takes what
    rounding the others left, so the model reads it as written (``model._checked`` divides
    only a row that does not sum to one, and dividing again moved a level below the floor)."""
    largest = max(row, key=row.__getitem__)
    out = {level: float(f"{p:.4g}") for level, p in row.items() if level != largest}
    out[largest] = round(1.0 - math.fsum(out.values()), 10)
    return {level: out[level] for level in row}


def _python(name: str, table: dict[str, dict[str, float]]) -> str:
    lines = [f"{name}: dict[str, dict[str, float]] = {{"]
    for feature in FEATURES:
        row = rounded({lv: table[feature][lv] for lv in LEVELS[feature]})
        levels = ", ".join(f'"{lv}": {p!r}' for lv, p in row.items())
        lines.append(f'    "{feature}": {{{levels}}},')
    lines.append("}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--persons", type=int, default=POOL_PERSONS)
    parser.add_argument("--skip-check", action="store_true")
    args = parser.parse_args(argv)
    model = estimate_starting_model(args.persons)
    print(_python("STARTING_M", model.m))
    print(_python("STARTING_U", model.u))
    print(f"STARTING_PRIOR = {model.prior:.4g}")
    if args.skip_check:
        return 0
    print("left out of the pool, matched with no refit: the hand-set values / the pool's")
    checks = {
        "febrl3": datasets.febrl3(),
        "febrl4": datasets.febrl4(),
        "generator 101": datasets.generated(3000, 101),
        "generator 202": datasets.generated(3000, 202),
        "households 303": datasets.households(3000, 303),
    }
    for name, (requests, truth) in checks.items():
        for label, m in (("hand-set", default_model()), ("pool", model)):
            r = run(requests, truth, m)
            print(
                f"  {name:<15} {label:<8} F1 {r['f1']:.4f} P {r['precision']:.4f} "
                f"R {r['recall']:.4f} max persons {r['max_persons_per_cluster']} "
                f"reviews {r['reviews']}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
