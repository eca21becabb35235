"""Throughput of the StandardizeBatch RPC end to end, beside the raw domain loop in the same run.

Run: ``python -m benchmarks.quality.rpc_bench [--records 50000] [--repeat 3]``.
Writes ``benchmarks/results/quality_rpc.json``.

The quality service runs as its own process (``python -m svod_quality serve``, as deployed, with
its default worker processes) against a fresh database on the Postgres ``svod run`` finds; the
client sends the seeded messy records of ``standardize_bench`` as protobuf over loopback gRPC,
batches of one source each, and waits for every answer. The time includes the client's
serialisation, the server's checks, rule loading, the per-record work, the one upsert of finding
counts per batch, and the client's parsing of the answers. The client shares the machine's cores
with the server.

Every timed run sends records the server has not seen (a new seed), so its per-value caches only
help with what repeats in real data (common domains, names, re-sent customers). The baseline,
``domain_loop``, is ``standardize_and_validate`` over the same records in this process with the
caches cleared before each run, as ``standardize_bench`` measures it; RPC runs and baseline runs
alternate, and the load average is recorded, since the machine may be shared.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from benchmarks.quality.standardize_bench import (
    SOURCES,
    _standardize,
    benchmark_rules,
    clear_caches,
    make_records,
)
from svod.common.v1 import common_pb2
from svod.quality.v1 import quality_pb2, quality_pb2_grpc
from svod_cli.postgres import ensure_postgres
from svod_cli.suite import (
    TOP,
    create_database,
    drop_database,
    free_ports,
    prepare_database,
    suite_env,
    wait_healthy,
)
from svod_quality.domain import RawRecord
from svod_runtime.retries import retry_options

RESULTS = Path(__file__).resolve().parents[1] / "results" / "quality_rpc.json"
FLOOR = 20_000  # records/s, the requirement
_ID_TYPES = {
    name: common_pb2.IdentifierType.Value(f"IDENTIFIER_TYPE_{name.upper()}")
    for name in ("email", "phone", "loyalty_card")
}


def to_proto(record: RawRecord) -> common_pb2.CustomerRecord:
    out = common_pb2.CustomerRecord(
        identifiers=[
            common_pb2.Identifier(type=_ID_TYPES[i.type], value=i.value, namespace=i.namespace)
            for i in record.identifiers
        ],
        name=common_pb2.PersonName(
            first_name=record.first_name,
            last_name=record.last_name,
            middle_name=record.middle_name,
            full_name=record.full_name,
        ),
        addresses=[
            common_pb2.PostalAddress(
                country_code=a.country_code,
                postal_code=a.postal_code,
                region=a.region,
                city=a.city,
                address_line=a.address_line,
            )
            for a in record.addresses
        ],
        attributes=record.attributes,
    )
    if record.birth_date is not None:
        born = record.birth_date
        out.birth_date.year, out.birth_date.month, out.birth_date.day = (
            born.year,
            born.month,
            born.day,
        )
    return out


def make_batches(
    records: Sequence[tuple[str, RawRecord]], batch_size: int
) -> list[quality_pb2.StandardizeBatchRequest]:
    """Batches of ``batch_size`` records, one source each (sources in turn)."""
    protos = [to_proto(r) for _, r in records]
    return [
        quality_pb2.StandardizeBatchRequest(
            source=SOURCES[n % len(SOURCES)], records=protos[start : start + batch_size]
        )
        for n, start in enumerate(range(0, len(protos), batch_size))
    ]


def send_all(
    stub: quality_pb2_grpc.QualityServiceStub,
    batches: Sequence[quality_pb2.StandardizeBatchRequest],
    in_flight: int,
) -> tuple[float, int]:
    """(seconds, rejected records) to get every batch answered, ``in_flight`` at a time."""
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(in_flight) as pool:
        replies = list(pool.map(lambda b: stub.StandardizeBatch(b, timeout=120), batches))
    elapsed = time.perf_counter() - start
    for batch, reply in zip(batches, replies, strict=True):
        assert len(reply.results) == len(batch.records)
    return elapsed, sum(r.rejected_count for r in replies)


def start_server(admin_url: str, database: str) -> tuple[subprocess.Popen[bytes], str, str]:
    db_url = create_database(admin_url, database)
    prepare_database(db_url)
    port = free_ports(1)[0]
    env = {
        **os.environ,
        **suite_env(db_url, {"quality": port}),
        "SVOD_LOG_LEVEL": "WARNING",
        "SVOD_QUALITY_REFRESH_INTERVAL_S": "0",
    }
    server = subprocess.Popen([sys.executable, "-m", "svod_quality", "serve"], env=env)
    wait_healthy({"quality": port})
    return server, f"127.0.0.1:{port}", db_url


def _rate(count: int, seconds: list[float]) -> dict[str, Any]:
    return {
        "best_s": round(min(seconds), 4),
        "median_s": round(statistics.median(seconds), 4),
        "records_per_s": round(count / min(seconds)),
        "records_per_s_median": round(count / statistics.median(seconds)),
    }


def run(
    count: int, seed: int, repeat: int, batch_sizes: Sequence[int], in_flight: int
) -> dict[str, Any]:
    admin_url, cluster = ensure_postgres(TOP)
    database = f"svod_bench_quality_{os.getpid()}"
    server, target, _ = start_server(admin_url, database)
    rules = benchmark_rules()
    try:
        channel = grpc.insecure_channel(
            target,
            options=[*retry_options(), ("grpc.max_receive_message_length", 64 * 1024 * 1024)],
        )
        stub = quality_pb2_grpc.QualityServiceStub(channel)
        for rule in rules[len(rules) - 5 :]:  # the benchmark's rules beyond the default ones
            definition = rule.to_dict()
            stub.CreateValidationRule(
                quality_pb2.CreateValidationRuleRequest(
                    rule=quality_pb2.ValidationRule(**definition)
                ),
                timeout=10,
            )
        # One record set per timed run (new values for the server), plus one to warm up.
        sets = [make_records(count, seed + n) for n in range(repeat + 1)]
        for size in batch_sizes:
            send_all(stub, make_batches(sets[0], size), in_flight)
        times: dict[str, list[float]] = {f"rpc_batch_{s}": [] for s in batch_sizes}
        times["domain_loop"] = []
        rejected: dict[str, int] = {}
        load: list[float] = [os.getloadavg()[0]]
        # Interleaved, so that load from elsewhere on the machine hits both alike.
        for records in sets[1:]:
            for size in batch_sizes:
                batches = make_batches(records, size)
                elapsed, rejected[f"rpc_batch_{size}"] = send_all(stub, batches, in_flight)
                times[f"rpc_batch_{size}"].append(elapsed)
            clear_caches()
            start = time.perf_counter()
            rejected["domain_loop"] = _standardize(records, rules)
            times["domain_loop"].append(time.perf_counter() - start)
            load.append(os.getloadavg()[0])
        results = {name: _rate(count, t) for name, t in times.items()}
        channel.close()
    finally:
        server.terminate()
        server.wait(30)
        drop_database(admin_url, database)
        if cluster is not None:
            cluster.stop()
    return {
        "benchmark": "quality.standardize_rpc",
        "records": count,
        "seed": seed,
        "repeat": repeat,
        "rules": len(rules),
        "in_flight": in_flight,
        "server_workers": int(os.environ.get("SVOD_QUALITY_WORKERS", os.cpu_count() or 1)),
        "rejected_records_last_run": rejected,
        # 1-minute load average before and after each round (2 cores: above 2 means contention).
        "load_average_1m": [round(x, 2) for x in load],
        "floor_records_per_s": FLOOR,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "results": results,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, action="append", dest="batch_sizes")
    parser.add_argument("--in-flight", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    figures = run(
        args.records, args.seed, args.repeat, args.batch_sizes or [10_000, 1_000], args.in_flight
    )
    print(
        f"quality StandardizeBatch RPC: {figures['records']} records per run, "
        f"{figures['rules']} rules, {figures['in_flight']} batches in flight, "
        f"{figures['server_workers']} server workers, python {figures['python']}"
    )
    print(f"  load average (1 min) per round: {figures['load_average_1m']}")
    for name, row in figures["results"].items():
        verdict = (
            ""
            if name == "domain_loop"
            else ("  >= floor" if row["records_per_s"] >= FLOOR else "  BELOW the 20,000/s floor")
        )
        print(
            f"  {name:<18} {row['records_per_s']:>8,} records/s (best of {args.repeat}; "
            f"median {row['records_per_s_median']:,}){verdict}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"  written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
