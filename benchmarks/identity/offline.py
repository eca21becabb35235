"""The service's resolution engine run in memory over a labelled set (no database, no gRPC).

A fast loop for checking matching changes before the real benchmark (bench_accuracy.py), which
goes through the public API:

    .venv/bin/python -m benchmarks.identity.offline febrl3
    .venv/bin/python -m benchmarks.identity.offline gen --persons 2000 --seed 11
    .venv/bin/python -m benchmarks.identity.offline households --persons 3000 --seed 303 --em
    .venv/bin/python -m benchmarks.identity.offline households --persons 20000 --seed 6464 \
        --autofit 2000

``--autofit`` places the records as a service that nobody refits does: with the starting model,
fitting it by itself at 2,000 records and at every doubling (``AutoFitPolicy``); the
re-resolution the service runs after a fit of a small graph is not simulated (the graph it
leaves is the whole set placed with the last fit's model).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import replace

from benchmarks.identity import datasets
from benchmarks.identity.categories import breakdown, print_breakdown
from svod_identity.domain.engine import GraphState, Placement, Resolver, person_from
from svod_identity.domain.matching.autofit import (
    SUGGESTED_FIRST_FIT_RECORDS,
    AutoFitPolicy,
    looked_at,
)
from svod_identity.domain.matching.compare import Comparison
from svod_identity.domain.matching.em import estimate_model
from svod_identity.domain.matching.evaluation import candidate_pairs, compare_pairs
from svod_identity.domain.matching.frequencies import attribute_term_frequencies
from svod_identity.domain.matching.model import MatchModel, default_model, starting_model
from svod_identity.domain.model import IncomingRecord
from svod_identity.domain.records import build_record
from svod_identity.domain.rules import default_rules
from svod_identity.entrypoints.grpc_servicer import raw_record


def pairwise(clusters: dict[str, list[tuple[str, str]]], truth: datasets.Truth) -> dict:
    """Pairwise precision/recall/F1 and the most true persons in one cluster."""
    per_person = Counter(truth.values())
    true_pairs = sum(n * (n - 1) // 2 for n in per_person.values())
    predicted = correct = worst = 0
    for members in clusters.values():
        predicted += len(members) * (len(members) - 1) // 2
        counts = Counter(truth[m] for m in members)
        correct += sum(n * (n - 1) // 2 for n in counts.values())
        worst = max(worst, len(counts))
    precision = correct / predicted if predicted else 1.0
    recall = correct / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "records": len(truth),
        "persons": len(per_person),
        "customers": len(clusters),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "max_persons_per_cluster": worst,
    }


def resolve_in_order(
    resolver: Resolver, incoming: Sequence[IncomingRecord], autofit: AutoFitPolicy | None
) -> list[Placement]:
    """Places ``incoming`` in order; with ``autofit``, refitting the model as the service does
    by itself (``AutoFitPolicy``) each time the records placed reach the next fit's size: EM
    over all candidate pairs of the records placed so far (the service samples up to
    ``use_cases.AUTOFIT_PAIRS`` of them) and their term frequencies; the new model only where
    it stands."""
    placed: list[Placement] = []
    for record in incoming:
        if autofit is not None and len(placed) >= autofit.next_fit_at(resolver.model):
            resolver.model = autofitted(incoming[: len(placed)], resolver.model, autofit)
        placed.append(resolver.resolve(record))
    return placed


def autofitted(
    records: Sequence[IncomingRecord], current: MatchModel, policy: AutoFitPolicy
) -> MatchModel:
    """The service's automatic fit over ``records`` (``use_cases.auto_fitted``)."""
    fitted = replace(fitted_over(records), fitted_records=len(records)).with_thresholds(
        current.link_threshold, current.review_threshold
    )
    stands = policy.stands(fitted)
    print(
        f"auto fit at {len(records)} records: {fitted.trained_pairs} pairs, "
        f"p={fitted.prior:.3f}, {'stands' if stands else 'kept the model'}"
    )
    return fitted if stands else looked_at(current, len(records))


def run(
    requests: Sequence,
    truth: datasets.Truth,
    model: MatchModel | None = None,
    by_evidence: bool = False,
    autofit: AutoFitPolicy | None = None,
) -> dict:
    now = dt.datetime.now(dt.UTC)
    state = GraphState()
    # Without a model, the service's own before any refit.
    resolver = Resolver(state, default_rules(), model or starting_model())
    clusters: dict[str, list[tuple[str, str]]] = defaultdict(list)
    rules: dict[tuple[str, str], str] = {}
    # Built before the clock starts: ``seconds`` and ``cpu_seconds`` are the engine's alone
    # (in the service records arrive validated and normalised).
    incoming = [build_record(raw_record(request), now) for request in requests]
    started, cpu = time.perf_counter(), time.process_time()
    placed = resolve_in_order(resolver, incoming, autofit)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    for placement in placed:
        key = (placement.ref.source, placement.ref.message_id)
        clusters[state.find(placement.customer_id)].append(key)
        rules[key] = placement.rule
    result = pairwise(clusters, truth)
    if by_evidence:
        result["by_evidence"] = breakdown(requests, truth, clusters, rules)
    result["reviews"] = len(resolver.changes.reviews)
    result["digest"] = digest(placed, state, resolver)
    result["seconds"] = round(elapsed, 2)
    # The engine's CPU (one thread): on a shared machine steadier than the wall time.
    result["cpu_seconds"] = round(cpu, 2)
    return result


def digest(placed: Sequence[Placement], state: GraphState, resolver: Resolver) -> str:
    """A hash of everything the engine decided, without its random ids: the partition, each
    record's outcome, rule, score, evidence and unlinked identifiers, the merges and each review
    item's pair, score and explanation. Equal digests before and after a change to the engine
    show it changed no result (any order-dependent difference shows too)."""
    refs = {p.record_pk: (p.ref.source, p.ref.message_id) for p in placed}
    members: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for placement in placed:
        members[state.find(placement.customer_id)].append(refs[placement.record_pk])
    label = {c: min(m) for c, m in members.items()}
    h = hashlib.sha256()
    for placement in placed:
        h.update(
            repr(
                (
                    refs[placement.record_pk],
                    label[state.find(placement.customer_id)],
                    placement.outcome,
                    placement.rule,
                    placement.score,
                    placement.unlinked,
                    len(placement.merged),
                    len(placement.review_item_ids),
                )
            ).encode()
        )
    for new in resolver.changes.records:
        h.update(repr((refs[new.pk], sorted(new.evidence.items()), new.blocking_keys)).encode())
    for review in resolver.changes.reviews:
        candidate = refs.get(review.candidate_record_pk, review.candidate_record_pk)
        h.update(
            repr(
                (
                    refs[review.record_pk],
                    candidate,
                    label.get(state.find(review.candidate_customer_id)),
                    review.score,
                    review.probability,
                    review.explanation,
                )
            ).encode()
        )
    for merge in resolver.changes.merges:
        h.update(repr((merge.ref, merge.rule, len(merge.merged))).encode())
    return h.hexdigest()[:16]


def candidate_comparisons(records: Sequence[IncomingRecord]) -> list[Comparison]:
    """The comparison levels of a set's candidate pairs (records sharing a blocking key)."""
    persons = [
        person_from(str(i), r.attributes, r.identifiers, r.ref.source)
        for i, r in enumerate(records)
    ]
    return list(compare_pairs(persons, candidate_pairs(persons)).values())


def fitted_model(requests: Sequence) -> MatchModel:
    """EM over the candidate pairs of the whole set (RefitMatchModel's sample, unbounded)."""
    now = dt.datetime.now(dt.UTC)
    model = fitted_over([build_record(raw_record(r), now) for r in requests])
    print(f"EM: {model.trained_pairs} pairs, {model.em_iterations} iterations, p={model.prior:.3f}")
    return model


def fitted_over(records: Sequence[IncomingRecord]) -> MatchModel:
    """EM over the candidate pairs of ``records`` and their term frequencies."""
    model = estimate_model(candidate_comparisons(records), default_model())
    # As RefitMatchModel counts them from the store (``Export.value_counts``): names and city
    # from the attributes, logins from the e-mail identifiers.
    emails = ([k.value for k in r.identifiers if k.type == "email"] for r in records)
    return replace(
        model,
        term_frequencies=attribute_term_frequencies((r.attributes for r in records), emails=emails),
    )


def autofit_policy(records: int) -> AutoFitPolicy | None:
    """The service's automatic fits from ``records`` (its default with
    ``SUGGESTED_FIRST_FIT_RECORDS``; 0: none)."""
    return AutoFitPolicy(records) if records > 0 else None


def add_autofit_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--autofit",
        type=int,
        default=0,
        metavar="RECORDS",
        help="fit the model as the service does by itself, first at RECORDS records "
        f"(the service's default: {SUGGESTED_FIRST_FIT_RECORDS}) and at every doubling",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset", choices=("febrl3", "febrl4", "gen", "households"))
    parser.add_argument("--persons", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--em", action="store_true", help="first fit the model by EM, as RefitMatchModel does"
    )
    parser.add_argument(
        "--by-evidence", action="store_true", help="recall and false merges per evidence kind"
    )
    add_autofit_argument(parser)
    args = parser.parse_args(argv)
    if args.dataset == "febrl3":
        requests, truth = datasets.febrl3()
    elif args.dataset == "febrl4":
        requests, truth = datasets.febrl4()
    elif args.dataset == "households":
        requests, truth = datasets.households(args.persons, args.seed)
    else:
        requests, truth = datasets.generated(args.persons, args.seed)
    model = fitted_model(requests) if args.em else None
    result = run(requests, truth, model, args.by_evidence, autofit_policy(args.autofit))
    table = result.pop("by_evidence", None)
    print(result)
    if table is not None:
        print_breakdown(args.dataset, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
