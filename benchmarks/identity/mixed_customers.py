"""Customers mixing three or more persons, and how each of their records joined (issue #21).

Runs the in-memory engine as ``offline.py`` does and prints its figures and digest (the same
for the same model) with ``mixed_3plus``, how many customers mix three or more true persons;
then lists each of them record by record in the order they were placed: the true person, the
rule that placed it, the record it was linked to (fuzzy) and the customers it merged, with what
the record holds:

    .venv/bin/python -m benchmarks.identity.mixed_customers households --persons 20000 \
        --seed 4646 --em [--model-cache /tmp/m.pkl] [--quiet]

``--model-cache`` keeps the fitted model in a pickle (EM is most of a run's time), to trace a
set again after a change to the engine only. The output holds personal data of the
generated (synthetic) sets only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import pickle
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from benchmarks.identity import datasets
from benchmarks.identity.offline import (
    add_autofit_argument,
    autofit_policy,
    digest,
    fitted_model,
    pairwise,
    resolve_in_order,
)
from svod_identity.domain.engine import GraphState, Resolver
from svod_identity.domain.matching.model import MatchModel, starting_model
from svod_identity.domain.model import IncomingRecord
from svod_identity.domain.records import build_record
from svod_identity.domain.rules import default_rules
from svod_identity.entrypoints.grpc_servicer import raw_record


def load(dataset: str, persons: int, seed: int) -> tuple[list[Any], datasets.Truth]:
    if dataset == "febrl3":
        return datasets.febrl3()
    if dataset == "febrl4":
        return datasets.febrl4()
    if dataset == "households":
        return datasets.households(persons, seed)
    return datasets.generated(persons, seed)


def model_for(requests: Sequence[Any], em: bool, cache: str | None) -> MatchModel:
    if not em:
        return starting_model()
    if cache and os.path.exists(cache):
        with open(cache, "rb") as stream:
            # Our own scratch file, written below.
            model: MatchModel = pickle.load(stream)
            return model
    model = fitted_model(requests)
    if cache:
        with open(cache, "wb") as stream:
            pickle.dump(model, stream)
    return model


def describe(record: IncomingRecord) -> str:
    """Names, birth date, city and contacts of a record (synthetic data only)."""
    attrs = record.attributes
    address = (attrs.get("addresses") or [{}])[0]
    parts = [
        " ".join(str(attrs.get(k) or "-") for k in ("last_name", "first_name", "middle_name")),
        str(attrs.get("birth_date") or "-"),
        str(address.get("city") or "-"),
        ",".join(f"{k.type}:{k.value}" for k in record.identifiers if k.type != "external_id"),
    ]
    return " | ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset", choices=("febrl3", "febrl4", "gen", "households"))
    parser.add_argument("--persons", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--em", action="store_true")
    parser.add_argument("--model-cache")
    parser.add_argument("--quiet", action="store_true", help="figures only")
    add_autofit_argument(parser)
    args = parser.parse_args(argv)
    requests, truth = load(args.dataset, args.persons, args.seed)
    model = model_for(requests, args.em, args.model_cache)
    now = dt.datetime.now(dt.UTC)
    state = GraphState()
    resolver = Resolver(state, default_rules(), model)
    incoming = [build_record(raw_record(r), now) for r in requests]
    placed = resolve_in_order(resolver, incoming, autofit_policy(args.autofit))
    clusters: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for placement in placed:
        clusters[state.find(placement.customer_id)].append(
            (placement.ref.source, placement.ref.message_id)
        )
    result = pairwise(clusters, truth)
    result["digest"] = digest(placed, state, resolver)
    mixed = {c: members for c, members in clusters.items() if len({truth[m] for m in members}) >= 3}
    result["mixed_3plus"] = len(mixed)
    print(result)
    if args.quiet:
        return 0
    evidence = {new.pk: new.evidence for new in resolver.changes.records}
    by_pk = {p.record_pk: (p, r) for p, r in zip(placed, incoming, strict=True)}
    ref_of = {p.record_pk: (p.ref.source, p.ref.message_id) for p in placed}
    for members in mixed.values():
        persons = Counter(truth[m] for m in members)
        print(f"\n== customer of {len(persons)} persons, {len(members)} records: {dict(persons)}")
        wanted = set(members)
        for pk, (placement, record) in sorted(by_pk.items(), key=lambda i: -i[0]):
            key = (placement.ref.source, placement.ref.message_id)
            if key not in wanted:
                continue
            ev = evidence.get(pk, {})
            via = ev.get("record_pk")
            via_text = ""
            if via is not None:
                vkey = ref_of.get(via)
                via_text = f" via {vkey} [{truth.get(vkey)}]" if vkey else f" via pk {via}"
            flags = ",".join(k for k in ("rare_full_name", "rare_login", "married_name") if k in ev)
            if "identifier" in ev:
                flags += " by " + ":".join(ev["identifier"][::2])
            print(
                f"  {key} [{truth[key]}] {placement.rule} score={placement.score:.4f}"
                f"{via_text} merged={len(placement.merged)} {flags}\n      {describe(record)}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
