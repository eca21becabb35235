"""Re-resolution on demand at scale (issue 22): ``PreviewRules`` and ``ReresolveAll`` over a
graph of ``--records`` generated records (benchmarks/identity/generator.py, with drift).

The graph is built with identity's batch import (``bench_bulk.batch_import``, a fresh database
and identity process), then, each timed from the call until its answer (or the job's end):

1. ``PreviewRules`` with the rules in force (the whole graph through the batch engine, nothing
   written);
2. ``ReresolveAll`` with ``dry_run`` (the same as a job to poll, with its report);
3. ``ReresolveAll`` applied (the new partition written, ledger entries, announcements).

Beside each: records/s over the graph, the batch worker's peak RSS and CPU seconds (from /proc),
what would change, and the load average. The issue's bounds at a million records are
``PreviewRules`` <= 120 s and ``ReresolveAll`` <= 10 min. Results:
benchmarks/results/identity_reresolve.json.

    .venv/bin/python -m benchmarks.identity.bench_reresolve --records 100000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import uuid
from collections.abc import Sequence
from typing import Any

from benchmarks.identity import datasets
from benchmarks.identity.bench_bulk import (
    RECORDS_PER_PERSON,
    PeakRss,
    batch_import,
    batch_workers,
    identity_stub,
    load_average,
)
from benchmarks.identity.generator import generate
from svod.identity.v1 import identity_pb2, identity_pb2_grpc
from svod_cli.postgres import ensure_postgres
from svod_cli.suite import TOP

RESULTS = TOP / "benchmarks" / "results" / "identity_reresolve.json"
FINISHED = (
    identity_pb2.RESOLUTION_JOB_STATE_SUCCEEDED,
    identity_pb2.RESOLUTION_JOB_STATE_FAILED,
)


def worker_cpu_s() -> dict[str, float]:
    """CPU seconds so far of each batch worker process: identity may keep one worker for
    several jobs, so a job's own CPU is the difference across it."""
    return {pid: cpu for pid, (_, cpu) in batch_workers().items()}


def cpu_since(before: dict[str, float], rss: PeakRss) -> float:
    """The workers' CPU since ``before``, as last sampled by ``rss``: a worker serves one job
    and exits, so it is gone once the job has ended."""
    sampled = {**rss.cpu_s, **worker_cpu_s()}
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in sampled.items())


def changes(report: identity_pb2.PreviewRulesResponse) -> dict[str, int]:
    return {
        "would_merge": report.would_merge_count,
        "would_split": report.would_split_count,
    }


def preview(stub: identity_pb2_grpc.IdentityServiceStub, records: int) -> dict[str, Any]:
    rules = stub.GetRules(identity_pb2.GetRulesRequest(), timeout=30)
    cpu_before = worker_cpu_s()
    with PeakRss() as rss:
        started = time.perf_counter()
        answer = stub.PreviewRules(identity_pb2.PreviewRulesRequest(rules=rules), timeout=7200)
        seconds = time.perf_counter() - started
    cpu = cpu_since(cpu_before, rss)
    return {
        "seconds": round(seconds, 1),
        "records_per_s": round(records / seconds, 1),
        # PreviewRules runs as a job of the batch worker (issue 22); 0 when the service
        # answered it in its own process.
        "worker_peak_rss_mib": round(rss.peak_kib / 1024, 1),
        "worker_cpu_s": round(cpu, 1),
        "records_per_worker_cpu_s": round(records / max(cpu, 0.1), 1),
        **changes(answer),
        "load_average_after": load_average(),
    }


def reresolve(
    stub: identity_pb2_grpc.IdentityServiceStub, records: int, dry_run: bool
) -> dict[str, Any]:
    job_id = f"bench-reresolve-{uuid.uuid4().hex[:8]}"
    cpu_before = worker_cpu_s()
    with PeakRss() as rss:
        started = time.perf_counter()
        stub.ReresolveAll(
            identity_pb2.ReresolveAllRequest(
                job_id=job_id, dry_run=dry_run, actor="bench", reason="benchmark"
            ),
            timeout=60,
        )
        while True:
            job = stub.GetResolutionJob(
                identity_pb2.GetResolutionJobRequest(job_id=job_id), timeout=60
            )
            if job.state in FINISHED:
                break
            time.sleep(0.2)
        seconds = time.perf_counter() - started
    cpu = cpu_since(cpu_before, rss)
    if job.state != identity_pb2.RESOLUTION_JOB_STATE_SUCCEEDED:
        raise RuntimeError(f"re-resolution failed: {job.error}")
    return {
        "dry_run": dry_run,
        "seconds": round(seconds, 1),
        "records_per_s": round(records / seconds, 1),
        "job_phase_s": dict(job.phase_seconds),
        # The worker's high-water mark since it started (it may have served earlier jobs).
        "worker_peak_rss_mib": round(rss.peak_kib / 1024, 1),
        "worker_cpu_s": round(cpu, 1),
        # Depends far less on the machine's other work than the wall clock does.
        "records_per_worker_cpu_s": round(records / max(cpu, 0.1), 1),
        **changes(job.changes),
        "load_average_after": load_average(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.identity.bench_reresolve")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=2027)
    args = parser.parse_args(argv)
    admin, cluster = ensure_postgres(TOP)
    report: dict[str, Any] = {"machine": platform.platform(), "cpus": os.cpu_count()}
    try:
        messages = generate(round(args.records / RECORDS_PER_PERSON), args.seed)
        requests = [datasets.generator_request(m) for m in messages]
        report["records"] = records = len(requests)
        report["load_average_before"] = load_average()
        with identity_stub(admin) as stub:
            _, built = batch_import(stub, requests)
            report["graph_built_by_import"] = {k: built[k] for k in ("total_s", "records_per_s")}
            print(f"graph of {records:,} records built in {built['total_s']} s", flush=True)
            for name, run in (
                ("preview_rules", lambda: preview(stub, records)),
                ("reresolve_dry_run", lambda: reresolve(stub, records, dry_run=True)),
                ("reresolve_applied", lambda: reresolve(stub, records, dry_run=False)),
            ):
                report[name] = run()
                print(f"{name}: {json.dumps(report[name], ensure_ascii=False)}", flush=True)
        # Linear in the records at best (the engine places them one by one): what a million
        # would take at this run's rate, beside the bounds.
        million = 1_000_000 / records
        report["at_1m_if_linear_s"] = {
            "preview_rules": round(report["preview_rules"]["seconds"] * million),
            "reresolve_applied": round(report["reresolve_applied"]["seconds"] * million),
            # The dry run's worker CPU alone: the wall clock on a machine with a core free.
            "reresolve_dry_run_worker_cpu": round(
                report["reresolve_dry_run"]["worker_cpu_s"] * million
            ),
            "bounds": {"preview_rules": 120, "reresolve_applied": 600},
        }
        print(f"at 1M if linear: {report['at_1m_if_linear_s']}")
    finally:
        if cluster is not None:
            cluster.stop()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    print(f"written to {RESULTS.relative_to(TOP)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
