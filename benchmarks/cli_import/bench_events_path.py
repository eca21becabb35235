"""`svod import events FILE` end to end through the batch path beside the stream path, on the
same file in the same run: from the command's start until every event is delivered (attributed
and counted in its customer's profile), and until segmentation's read model holds every event
too (``segmentation_caught_up_s``; the CPU figures are read then, so they cover both).

Each path gets the five services as processes on a scratch database of its own, with the same
``--customers`` customers (one phone each) imported first through `svod import customers` (not
timed). The events file holds ``--events`` order events for those customers (random customer,
time and total, its own message id).

- **batch**: ``svod import events FILE --path batch`` (StageEventImport: stored, attributed in
  bulk with BatchLookupCustomers, staged with profile; then CommitEventImport), then
  GetEventImport every 0.2 s until the job has succeeded (profile's set-based fold);
- **stream**: ``svod import events FILE --path stream``, then the time until ingestion has no
  event of the file pending (TrackStream; ingestion's relay attributes a pass at a time and
  applies it with ApplyEventBatch).

Both must end with every event delivered and in profile's event store (the same count).
Rounds alternate the order (batch, stream, stream, batch); the figures are medians. Results:
benchmarks/results/cli_import_events_paths.json, with the machine's load average.

    .venv/bin/python -m benchmarks.cli_import.bench_events_path --events 200000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import psycopg

from benchmarks.harness import running_suite, scratch_database
from benchmarks.profile.bench_event_import import cpu_seconds
from svod.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from svod_cli.bulk_import import job_json
from svod_cli.suite import TOP
from svod_runtime.db import libpq_url

RESULTS = TOP / "benchmarks" / "results" / "cli_import_events_paths.json"


def phone(n: int) -> str:
    # 7919 is prime to 10^9: distinct customers get distinct numbers, none a placeholder run.
    return f"+79{(n * 7919 + 314_159_265) % 10**9:09d}"


def write_files(scratch: Path, customers: int, events: int) -> tuple[Path, Path]:
    rng = random.Random(2026)
    people = scratch / "customers.jsonl"
    with people.open("w") as out:
        for n in range(customers):
            out.write(
                json.dumps(
                    {
                        "record_ref": {"source": "crm", "message_id": f"c-{n}"},
                        "record": {
                            "identifiers": [{"type": "IDENTIFIER_TYPE_PHONE", "value": phone(n)}]
                        },
                    }
                )
                + "\n"
            )
    orders = scratch / "orders.jsonl"
    with orders.open("w") as out:
        for n in range(events):
            out.write(
                json.dumps(
                    {
                        "record_ref": {"source": "shop", "message_id": f"o-{n}"},
                        "channel": "SOURCE_CHANNEL_WEB",
                        "event": {
                            "type": "EVENT_TYPE_ORDER_PLACED",
                            "occurred_time": f"2026-{1 + rng.randrange(11):02d}-"
                            f"{1 + rng.randrange(28):02d}T{rng.randrange(24):02d}:00:00Z",
                            "identifiers": [
                                {
                                    "type": "IDENTIFIER_TYPE_PHONE",
                                    "value": phone(rng.randrange(customers)),
                                }
                            ],
                            "order_id": f"o-{n}",
                            "total": {
                                "currency_code": "RUB",
                                "units": str(rng.randrange(100, 9000)),
                            },
                        },
                    }
                )
                + "\n"
            )
    return people, orders


def scalar(db_url: str, sql: str) -> int:
    with psycopg.connect(libpq_url(db_url)) as conn:
        row = conn.execute(sql).fetchone()
    return int(row[0] or 0) if row else 0


def follow(target: str, import_id: str) -> dict[str, Any]:
    with grpc.insecure_channel(target) as channel:
        stub = ingestion_pb2_grpc.IngestionServiceStub(channel)
        while True:
            job = stub.GetEventImport(
                ingestion_pb2.GetEventImportRequest(import_id=import_id), timeout=30
            )
            if job.state in (
                ingestion_pb2.EventImport.STATE_SUCCEEDED,
                ingestion_pb2.EventImport.STATE_FAILED,
            ):
                return job_json(job)
            time.sleep(0.2)


def segmentation_caught_up(
    db_url: str, events: int, started: float, stalled_s: float = 120.0
) -> float | None:
    """Seconds from ``started`` until segmentation's read model holds ``events`` events;
    None when its count stops growing for ``stalled_s`` short of that."""
    seen, since = -1, time.perf_counter()
    while True:
        held = scalar(db_url, "SELECT count(*) FROM segmentation.events")
        if held >= events:
            return round(time.perf_counter() - started, 1)
        if held != seen:
            seen, since = held, time.perf_counter()
        elif time.perf_counter() - since > stalled_s:
            return None
        time.sleep(0.5)


def svod(env: dict[str, str], *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [str(TOP / ".venv" / "bin" / "svod"), *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"svod {args[:2]} exited {done.returncode}: {done.stdout[-3000:]} {done.stderr[-2000:]}"
        )
    return dict(json.loads(done.stdout))


def backend_cpu(conn: psycopg.Connection) -> dict[tuple[int, str], float]:
    """CPU seconds so far of the database's backends, by (pid, role): each service connects
    as its own role, so the database's CPU splits by service."""
    rows = conn.execute(
        "SELECT pid, usename FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid()"
    ).fetchall()
    found: dict[tuple[int, str], float] = {}
    for pid, role in rows:
        try:
            found[(pid, str(role))] = cpu_seconds(pid)
        except FileNotFoundError:
            continue
    return found


def process_cpu(suite: Any) -> dict[str, float]:
    """CPU seconds so far of each service process and of the `svod` commands run (children
    waited for: the services are still running)."""
    cpu = {name: cpu_seconds(process.pid) for name, process in suite.processes.items()}
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu["svod_command"] = usage.ru_utime + usage.ru_stime
    return cpu


def run_path(name: str, people: Path, orders: Path, scratch: Path) -> dict[str, Any]:
    with scratch_database(f"svod_bench_ev{name}") as db_url, running_suite(db_url) as suite:
        env = {**os.environ, **{f"SVOD_{s.upper()}_TARGET": suite.target(s) for s in suite.ports}}
        tag = db_url.rsplit("/", 1)[-1]
        svod(env, "import", "customers", str(people), "--wait", "--checkpoint", str(scratch / tag))
        while scalar(db_url, "SELECT count(*) FROM ingestion.records WHERE state = 'pending'"):
            time.sleep(0.5)
        load = os.getloadavg()
        backends = psycopg.connect(libpq_url(db_url), autocommit=True)
        cpu0, pg0 = process_cpu(suite), backend_cpu(backends)
        started = time.perf_counter()
        result = svod(
            env,
            "import",
            "events",
            str(orders),
            "--path",
            name,
            "--checkpoint",
            str(scratch / f"{tag}-events"),
        )
        sent_s = time.perf_counter() - started
        job = follow(suite.target("ingestion"), result["import_id"]) if name == "batch" else None
        while scalar(db_url, "SELECT count(*) FROM ingestion.records WHERE state = 'pending'"):
            time.sleep(0.5)
        elapsed = time.perf_counter() - started
        # The floor ends at profile's metrics; segmentation applies profile's announcements
        # after that. The CPU is read once segmentation has caught up too, so its share (and
        # its database's) is counted whole: read at delivery, a 200k run had counted
        # segmentation's work for 80,398 of its events only.
        caught_up_s = segmentation_caught_up(db_url, int(result["accepted"]), started)
        cpu1, pg1 = process_cpu(suite), backend_cpu(backends)
        backends.close()
        spent = {name: cpu1[name] - cpu0[name] for name in cpu1}
        # The database's backends by role (those connected at the end; pools keep theirs).
        for (pid, role), seconds in pg1.items():
            key = f"postgres_{role}"
            spent[key] = spent.get(key, 0.0) + seconds - pg0.get((pid, role), 0.0)
        spent["total"] = sum(spent.values())
        events = int(result["accepted"])
        delivered = scalar(
            db_url,
            "SELECT count(*) FROM ingestion.records WHERE state = 'delivered' AND kind = 'track'",
        )
        orders_counted = scalar(db_url, "SELECT count(*) FROM profile.events")
        out: dict[str, Any] = {
            "events": events,
            "delivered": delivered,
            "profile_events": orders_counted,
            "command_s": round(sent_s, 1),
            "end_to_end_s": round(elapsed, 1),
            # Until segmentation's read model holds every event (None: it stopped short).
            "segmentation_caught_up_s": caught_up_s,
            "events_per_s": round(events / elapsed),
            # Where the CPU went (us per event): robust to the machine's load, unlike rates.
            "cpu_us_per_event": {
                name: round(seconds / max(events, 1) * 1e6, 1) for name, seconds in spent.items()
            },
            "load_average_at_start": [round(x, 1) for x in load],
            "load_average_at_end": [round(x, 1) for x in os.getloadavg()],
        }
        if job is not None:
            out["job"] = job
            out["handed_over"] = result.get("handed_over", 0)
        print(f"{name:>6}: CPU us per event {out['cpu_us_per_event']}")
        print(
            f"{name:>6}: {events:,} events in {elapsed:,.1f} s ({out['events_per_s']:,}/s end to "
            f"end; command {sent_s:,.1f} s), delivered {delivered:,}, profile events "
            f"{orders_counted:,}, in segmentation after {caught_up_s} s, load average "
            f"{out['load_average_at_start']} -> "
            f"{out['load_average_at_end']}"
        )
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.cli_import.bench_events_path")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="rounds of both paths, in the order batch, stream, stream, batch, ...; medians",
    )
    parser.add_argument("--paths", default="batch,stream", help="which paths (default both)")
    args = parser.parse_args(argv)
    paths = args.paths.split(",")
    runs: dict[str, list[dict[str, Any]]] = {p: [] for p in paths}
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        people, orders = write_files(scratch, args.customers, args.events)
        print(
            f"{args.events:,} order events of {args.customers:,} customers; "
            f"cpu count {os.cpu_count()}; load average {os.getloadavg()}"
        )
        for round_ in range(args.rounds):
            order = paths if round_ % 2 == 0 else paths[::-1]
            for name in order:
                runs[name].append(run_path(name, people, orders, scratch))

    def median(name: str) -> int:
        return round(statistics.median(r["events_per_s"] for r in runs[name]))

    figures: dict[str, Any] = {
        "events": args.events,
        "customers": args.customers,
        "rounds": args.rounds,
        **{f"{p}_per_s": median(p) for p in paths},
        "same_profile_events": len({r["profile_events"] for rs in runs.values() for r in rs}) == 1,
        **runs,
        "cpu_count": os.cpu_count(),
        "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if len(paths) == 2:
        figures["batch_vs_stream"] = round(median("batch") / median("stream"), 2)
        print(
            f"median of {args.rounds}: batch {median('batch'):,}/s vs stream "
            f"{median('stream'):,}/s end to end: {figures['batch_vs_stream']}x; same profile "
            f"events: {figures['same_profile_events']}"
        )
    RESULTS.write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
