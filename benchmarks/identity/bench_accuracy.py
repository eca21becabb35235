"""Identity accuracy through the public gRPC API: pairwise precision/recall/F1 and the most true
persons in one cluster, on FEBRL3 (dedupe), FEBRL4 (A vs B), the Russian generator and a second
one written apart from it (``households.py``); and per kind of evidence (``categories.py``):
recall of the true pairs sharing it, and the wrongly merged pairs sharing it, with the rules
that placed the records of clusters mixing people.

Each data set gets a fresh database and the five services as separate processes. Records go in
through ``ResolveBatch``; the resulting clusters come back through ``ExportRecordMapping`` (the
audit export), so what is measured is what a user of the API sees. FEBRL's ``soc_sec_id`` is
not used. Results: benchmarks/results/identity_accuracy.json.

The match model is fitted the way an operator would (unless ``--no-em``): a first pass loads the
set into a scratch database with the default model and calls ``RefitMatchModel`` (EM over the
service's own candidate pairs - unsupervised, no labels); the measured pass loads the set into a
fresh database whose model is that one (``RefitMatchModel`` with ``model_json``).

    .venv/bin/python -m benchmarks.identity.bench_accuracy --seeds 101 202 --persons 3000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence

import grpc

from benchmarks.harness import settled_identity
from benchmarks.identity import datasets
from benchmarks.identity.categories import breakdown, print_breakdown
from benchmarks.identity.offline import pairwise
from svod.identity.v1 import identity_pb2, identity_pb2_grpc
from svod_cli.postgres import ensure_postgres
from svod_cli.suite import (
    TOP,
    ProcessSuite,
    create_database,
    drop_database,
    free_ports,
    prepare_database,
)
from svod_identity.domain.matching.autofit import AUTOFIT_ENV, RERESOLVE_ENV, reresolution_job_id
from svod_runtime.config import SERVICES
from svod_runtime.retries import retry_options

RESULTS = TOP / "benchmarks" / "results" / "identity_accuracy.json"
CHUNK = 2000


@contextlib.contextmanager
def identity_stub(
    admin: str, env: Mapping[str, str] | None = None
) -> Iterator[identity_pb2_grpc.IdentityServiceStub]:
    """The identity API of a fresh suite on a fresh database (dropped afterwards); ``env``: the
    services' settings beside the defaults."""
    db = f"svod_bench_identity_{uuid.uuid4().hex[:6]}"
    db_url = create_database(admin, db)
    suite = None
    try:
        prepare_database(db_url)
        suite = ProcessSuite(
            db_url,
            ports=dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True)),
            extra_env={"SVOD_LOG_LEVEL": "WARNING", **(env or {})},
        ).start()
        with grpc.insecure_channel(suite.target("identity"), options=retry_options()) as channel:
            yield identity_pb2_grpc.IdentityServiceStub(channel)
    finally:
        if suite is not None:
            suite.stop()
        drop_database(admin, db)


def load(stub: identity_pb2_grpc.IdentityServiceStub, requests: Sequence) -> float:
    started = time.perf_counter()
    for start in range(0, len(requests), CHUNK):
        stub.ResolveBatch(iter(requests[start : start + CHUNK]), timeout=600)
    return time.perf_counter() - started


def fit_model(admin: str, requests: Sequence) -> str:
    """EM through the API on a scratch load of the set: the fitted model's JSON."""
    with identity_stub(admin) as stub:
        load(stub, requests)
        fitted = stub.RefitMatchModel(
            identity_pb2.RefitMatchModelRequest(max_pairs=200_000, actor="bench"), timeout=600
        )
    return fitted.model_json


def measure(
    admin: str,
    name: str,
    requests: Sequence,
    truth: datasets.Truth,
    em: bool = True,
    env: Mapping[str, str] | None = None,
) -> dict:
    model_json = fit_model(admin, requests) if em else ""
    with identity_stub(admin, env) as stub:
        if model_json:
            stub.RefitMatchModel(
                identity_pb2.RefitMatchModelRequest(model_json=model_json, actor="bench"),
                timeout=60,
            )
        elapsed = load(stub, requests)
        as_loaded = pairwise(mapping(stub)[0], truth)
        settling, _ = settled_identity(stub, len(requests), **first_fit_at(env))
        reresolutions = automatic_reresolutions(stub)
        clusters, rules = mapping(stub)
        reviews = stub.ListReviewItems(
            identity_pb2.ListReviewItemsRequest(page_size=1000), timeout=60
        )
    result = pairwise(clusters, truth)
    result["review_items_first_page"] = len(reviews.items)
    result["resolve_seconds"] = round(elapsed, 1)
    result["model"] = model_name(model_json, env)
    # Identity may still fit its model and re-resolve the graph after the last record: the
    # figures are those of the graph once it is done (``settled_identity``), beside those
    # read as the last record was placed.
    result["as_loaded"] = {k: as_loaded[k] for k in ("precision", "recall", "f1")}
    result["settled_seconds"] = round(settling, 1)
    result["reresolutions"] = reresolutions
    for job in reresolutions:
        print(
            f"  identity re-resolved {job['records']:,} records after its fit "
            f"({job['job_id']}) in {job['seconds']:.1f}s",
            flush=True,
        )
    print(
        f"{name:<22} precision {result['precision']:.4f}  recall {result['recall']:.4f}  "
        f"F1 {result['f1']:.4f}  max persons/cluster {result['max_persons_per_cluster']}  "
        f"({result['records']} records, {result['persons']} persons, "
        f"{result['customers']} customers, {elapsed:.1f}s, model {result['model']}; "
        f"as loaded F1 {as_loaded['f1']:.4f}, settled {settling:.1f}s later)",
        flush=True,
    )
    result["by_evidence"] = breakdown(requests, truth, clusters, rules)
    print_breakdown(name, result["by_evidence"])
    return result


def mapping(
    stub: identity_pb2_grpc.IdentityServiceStub,
) -> tuple[dict[str, list[tuple[str, str]]], dict[tuple[str, str], str]]:
    """Customers' records and each record's rule, as ExportRecordMapping gives them."""
    clusters: dict[str, list[tuple[str, str]]] = defaultdict(list)
    rules: dict[tuple[str, str], str] = {}
    for row in stub.ExportRecordMapping(identity_pb2.ExportRecordMappingRequest(), timeout=600):
        key = (row.record_ref.source, row.record_ref.message_id)
        clusters[row.customer_id].append(key)
        rules[key] = row.rule
    return clusters, rules


def automatic_reresolutions(stub: identity_pb2_grpc.IdentityServiceStub) -> list[dict]:
    """Identity's own re-resolution jobs so far (one per automatic fit that changed the model,
    named after the model's version: ``MatchModel.reresolution_job_id``): the records each
    placed again and its seconds from start to finish."""
    model = stub.GetMatchModel(identity_pb2.GetMatchModelRequest(), timeout=30)
    jobs = []
    for version in range(1, model.version + 1):
        job_id = reresolution_job_id(version)
        try:
            job = stub.GetResolutionJob(
                identity_pb2.GetResolutionJobRequest(job_id=job_id), timeout=30
            )
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                continue
            raise
        seconds = (job.finish_time.ToDatetime() - job.start_time.ToDatetime()).total_seconds()
        jobs.append({"job_id": job_id, "records": job.records_total, "seconds": seconds})
    return jobs


def model_name(model_json: str, env: Mapping[str, str] | None) -> str:
    if model_json:
        return "em"
    if env and env.get(AUTOFIT_ENV) == "0":
        return "starting"
    if env and env.get(RERESOLVE_ENV) == "0":
        return "starting, auto-fitted, not re-resolved"
    return "starting, auto-fitted"


def first_fit_at(env: Mapping[str, str] | None) -> dict[str, int]:
    """``settled_identity``'s first fit as ``env`` sets identity's (its default otherwise)."""
    return {"first_fit_at": int(env[AUTOFIT_ENV])} if env and AUTOFIT_ENV in env else {}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="*", default=[101, 202])
    parser.add_argument(
        "--household-seeds",
        type=int,
        nargs="*",
        default=[303],
        help="seeds of the second generator (households.py), written apart from the first",
    )
    parser.add_argument("--persons", type=int, default=3000)
    parser.add_argument("--skip-febrl", action="store_true")
    parser.add_argument(
        "--no-em",
        action="store_true",
        help="no RefitMatchModel: the starting model, and identity's own automatic fits",
    )
    parser.add_argument(
        "--no-autofit",
        action="store_true",
        help=f"with --no-em: the starting model throughout ({AUTOFIT_ENV}=0)",
    )
    parser.add_argument(
        "--no-reresolve",
        action="store_true",
        help=f"with --no-em: automatic fits, but no re-resolution after them ({RERESOLVE_ENV}=0)",
    )
    args = parser.parse_args(argv)
    em = not args.no_em
    env = {AUTOFIT_ENV: "0"} if args.no_autofit else {}
    if args.no_reresolve:
        env[RERESOLVE_ENV] = "0"
    admin, cluster = ensure_postgres(TOP)
    results: dict[str, dict] = {}
    try:
        if not args.skip_febrl:
            results["febrl3"] = measure(admin, "FEBRL3 (dedupe)", *datasets.febrl3(), em, env)
            results["febrl4"] = measure(admin, "FEBRL4 (A vs B)", *datasets.febrl4(), em, env)
        for seed in args.seeds:
            results[f"generator_seed_{seed}"] = measure(
                admin, f"generator seed {seed}", *datasets.generated(args.persons, seed), em, env
            )
        for seed in args.household_seeds:
            results[f"households_seed_{seed}"] = measure(
                admin,
                f"households seed {seed}",
                *datasets.households(args.persons, seed),
                em,
                env,
            )
    finally:
        if cluster is not None:
            cluster.stop()
    # Sets not run this time keep their last figures (each says when it ran).
    for figures in results.values():
        figures["persons_per_generated_set"] = args.persons
        figures["run_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    earlier = json.loads(RESULTS.read_text()).get("results", {}) if RESULTS.exists() else {}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "machine": f"{platform.machine()} {platform.python_version()}",
                "results": earlier | results,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"written to {RESULTS.relative_to(TOP)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
