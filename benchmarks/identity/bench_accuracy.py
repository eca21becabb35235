"""Identity accuracy through the public gRPC API: pairwise precision/recall/F1 and the most true
persons in one cluster, on FEBRL3 (dedupe), FEBRL4 (A vs B) and the Russian generator.

Each data set gets a fresh database and the five services as separate processes. Records go in
through ``ResolveBatch``; the resulting clusters come back through ``ExportRecordMapping`` (the
audit export), so what is measured is what a user of the API sees. FEBRL's ``soc_sec_id`` is
not used. Results: benchmarks/results/identity_accuracy.json.

    .venv/bin/python -m benchmarks.identity.bench_accuracy --seeds 101 202 --persons 3000
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence

import grpc

from benchmarks.identity import datasets
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
from svod_runtime.config import SERVICES

RESULTS = TOP / "benchmarks" / "results" / "identity_accuracy.json"
CHUNK = 2000


def measure(admin: str, name: str, requests: Sequence, truth: datasets.Truth) -> dict:
    db = f"svod_bench_identity_{uuid.uuid4().hex[:6]}"
    db_url = create_database(admin, db)
    suite = None
    try:
        prepare_database(db_url)
        suite = ProcessSuite(
            db_url,
            ports=dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True)),
            extra_env={"SVOD_LOG_LEVEL": "WARNING"},
        ).start()
        with grpc.insecure_channel(suite.target("identity")) as channel:
            stub = identity_pb2_grpc.IdentityServiceStub(channel)
            started = time.perf_counter()
            for start in range(0, len(requests), CHUNK):
                stub.ResolveBatch(iter(requests[start : start + CHUNK]), timeout=600)
            elapsed = time.perf_counter() - started
            clusters: dict[str, list[tuple[str, str]]] = defaultdict(list)
            for row in stub.ExportRecordMapping(
                identity_pb2.ExportRecordMappingRequest(), timeout=600
            ):
                clusters[row.customer_id].append((row.record_ref.source, row.record_ref.message_id))
            reviews = stub.ListReviewItems(
                identity_pb2.ListReviewItemsRequest(page_size=1000), timeout=60
            )
        result = pairwise(clusters, truth)
        result["review_items_first_page"] = len(reviews.items)
        result["resolve_seconds"] = round(elapsed, 1)
        print(
            f"{name:<22} precision {result['precision']:.4f}  recall {result['recall']:.4f}  "
            f"F1 {result['f1']:.4f}  max persons/cluster {result['max_persons_per_cluster']}  "
            f"({result['records']} records, {result['persons']} persons, "
            f"{result['customers']} customers, {elapsed:.1f}s)",
            flush=True,
        )
        return result
    finally:
        if suite is not None:
            suite.stop()
        drop_database(admin, db)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="*", default=[101, 202])
    parser.add_argument("--persons", type=int, default=3000)
    parser.add_argument("--skip-febrl", action="store_true")
    args = parser.parse_args(argv)
    admin, cluster = ensure_postgres(TOP)
    results: dict[str, dict] = {}
    try:
        if not args.skip_febrl:
            results["febrl3"] = measure(admin, "FEBRL3 (dedupe)", *datasets.febrl3())
            results["febrl4"] = measure(admin, "FEBRL4 (A vs B)", *datasets.febrl4())
        for seed in args.seeds:
            results[f"generator_seed_{seed}"] = measure(
                admin, f"generator seed {seed}", *datasets.generated(args.persons, seed)
            )
    finally:
        if cluster is not None:
            cluster.stop()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "machine": f"{platform.machine()} {platform.python_version()}",
                "persons_per_generated_set": args.persons,
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"written to {RESULTS.relative_to(TOP)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
