"""Profile's set-based fold of imported events (issue 22), end to end, beside its raw ceiling.

N order events for M customers are staged over StageEventImport (messages of 2,000 events,
serialised before the clock starts, so the client's proto building is not measured) and
committed; the figure is events/s from the first message sent to GetEventImport answering
COMMITTED. Beside it, in the same run and on the same database: the raw ceiling (PostgreSQL
COPY of the same rows into a plain table with no index, from this process) and
ApplyEventBatch's rate on a sample of fresh events (the streaming path, batches of 1,000, four
calls in flight). The profile service runs alone in its own process; in segmentation's place a
stand-in in this process answers every ApplyProfileChanges call OK (so the figures hold
profile's work of announcing each changed customer once, not segmentation's of evaluating
them, nor a relay retrying an absent peer); the time until every changed customer was
announced is printed too.

    .venv/bin/python -m benchmarks.profile.bench_event_import --events 1000000
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import platform
import subprocess
import sys
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path

import grpc
import psycopg

from benchmarks.harness import scratch_database
from benchmarks.profile.event_data import events
from svod.profile.v1 import profile_pb2, profile_pb2_grpc
from svod.segmentation.v1 import segmentation_pb2
from svod_cli.suite import TOP, free_ports, suite_env, wait_healthy
from svod_runtime.config import SERVICES
from svod_runtime.db import libpq_url
from svod_runtime.money import money_to_decimal

RESULTS = TOP / "benchmarks" / "results" / "event_import.json"
PER_MESSAGE = 2000
STAGE_PATH = "/svod.profile.v1.ProfileService/StageEventImport"
_COMMITTED = profile_pb2.EventImport.STATE_COMMITTED
PHASES = ("staging", "commit", "announcing")


class SegmentationStandIn:
    """Answers ApplyProfileChanges OK for every change and counts the customers announced."""

    def __init__(self) -> None:
        self.customers: set[str] = set()
        self.lock = threading.Lock()
        self.server = grpc.server(concurrent.futures.ThreadPoolExecutor(2))
        handler = grpc.unary_unary_rpc_method_handler(
            self.apply,
            request_deserializer=segmentation_pb2.ApplyProfileChangesRequest.FromString,
            response_serializer=segmentation_pb2.ApplyProfileChangesResponse.SerializeToString,
        )
        self.server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(
                    "svod.segmentation.v1.SegmentationService", {"ApplyProfileChanges": handler}
                )
            ]
        )
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def apply(self, request, context) -> segmentation_pb2.ApplyProfileChangesResponse:
        with self.lock:
            self.customers.update(c.customer_id for c in request.changes)
        return segmentation_pb2.ApplyProfileChangesResponse(
            results=[
                segmentation_pb2.ProfileChangeResult(customer_id=c.customer_id)
                for c in request.changes
            ]
        )

    def announced(self) -> int:
        with self.lock:
            return len(self.customers)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def serialized_messages(customers: list[str], count: int, seed: int) -> tuple[list[bytes], list]:
    """The import's messages as bytes, and the events' rows for the raw COPY."""
    messages: list[bytes] = []
    rows: list[tuple] = []
    batch: list = []
    for item in events(customers, count, seed, mixed=False):
        batch.append(item)
        e = item.event
        rows.append(
            (
                item.customer_id,
                item.record_ref.source,
                item.record_ref.message_id,
                "order_placed",
                e.occurred_time.ToDatetime(),
                "web",
                "RUB",
                money_to_decimal(e.total),
                Decimal(0),
                sum(line.quantity for line in e.lines),
            )
        )
        if len(batch) == PER_MESSAGE:
            messages.append(
                profile_pb2.StageEventImportRequest(
                    import_id=f"bench-{seed}", events=batch
                ).SerializeToString()
            )
            batch = []
    if batch:
        messages.append(
            profile_pb2.StageEventImportRequest(
                import_id=f"bench-{seed}", events=batch
            ).SerializeToString()
        )
    return messages, rows


# The event store's two indexes (profile migration 0002): the primary key every import and
# stream relies on for idempotency by (source, message id), and the timeline GetTimeline pages
# by (and merges, splits and erasures read a customer's events by).
INDEXES = {
    "primary_key": "ALTER TABLE bench_raw_events ADD PRIMARY KEY (source, message_id)",
    "timeline": "CREATE INDEX ON bench_raw_events (customer_id, occurred_at DESC, source, "
    "message_id)",
}


def raw_copy(db_url: str, rows: list[tuple], indexes: tuple[str, ...] = ()) -> float:
    """Seconds to COPY the rows into a plain table (logged; with ``indexes``, of the event
    store's), committed."""
    with psycopg.connect(libpq_url(db_url)) as conn:
        conn.execute(
            "CREATE TABLE bench_raw_events (customer_id uuid, source text, message_id text, "
            "event_type text, occurred_at timestamptz, channel text, currency text, "
            "amount numeric(20, 9), discount numeric(20, 9), items integer)"
        )
        for name in indexes:
            conn.execute(INDEXES[name])
        conn.commit()
        started = time.perf_counter()
        with conn.cursor() as cursor, cursor.copy("COPY bench_raw_events FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        conn.commit()
        seconds = time.perf_counter() - started
        conn.execute("DROP TABLE bench_raw_events")
        conn.commit()
    return seconds


def raw_ceilings(db_url: str, rows: list[tuple]) -> tuple[float, float, dict[str, int]]:
    """Rows/s of the raw COPY into a plain table, into one with the event store's two
    indexes, and with each index alone (what each costs)."""
    raw_s = raw_copy(db_url, rows)
    raw_rate = len(rows) / raw_s
    print(f"raw COPY of the same rows: {raw_rate:,.0f} rows/s ({raw_s:.1f} s); load {load()}")
    indexed_s = raw_copy(db_url, rows, tuple(INDEXES))
    indexed_rate = len(rows) / indexed_s
    print(
        f"raw COPY into a table with the event store's two indexes: {indexed_rate:,.0f} "
        f"rows/s ({indexed_s:.1f} s); load {load()}"
    )
    one_index = {}
    for name in INDEXES:
        one_index[name] = round(len(rows) / raw_copy(db_url, rows, (name,)))
        print(f"raw COPY with the {name} alone: {one_index[name]:,} rows/s; load {load()}")
    return raw_rate, indexed_rate, one_index


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (robust to the machine's load, unlike rates)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class BackendCpu:
    """CPU seconds of the PostgreSQL backends serving the benchmark's database (the shared
    WAL writer and checkpointer are not counted: they serve every database of the cluster)."""

    def __init__(self, db_url: str) -> None:
        self.conn = psycopg.connect(libpq_url(db_url), autocommit=True)
        self.seen: dict[int, float] = {}

    def sample(self) -> dict[int, float]:
        pids = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        ).fetchall()
        now = {}
        for (pid,) in pids:
            try:
                now[pid] = cpu_seconds(pid)
            except FileNotFoundError:
                continue
        return now

    @staticmethod
    def spent(before: dict[int, float], after: dict[int, float]) -> float:
        return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def import_events(
    stub,
    channel: grpc.Channel,
    import_id: str,
    messages: list[bytes],
    pid: int,
    backends: BackendCpu,
) -> dict:
    stage = channel.stream_stream(
        STAGE_PATH,
        request_serializer=lambda b: b,
        response_deserializer=profile_pb2.StageEventImportResponse.FromString,
    )
    cpu0 = cpu_seconds(pid)
    pg0 = backends.sample()
    started = time.perf_counter()
    staged = 0
    for reply in stage(iter(messages), timeout=3600):
        staged += reply.staged_count
        assert not reply.refused, reply.refused[0]
    staged_s = time.perf_counter() - started
    cpu1 = cpu_seconds(pid)
    pg1 = backends.sample()
    stub.CommitEventImport(profile_pb2.CommitEventImportRequest(import_id=import_id), timeout=60)
    while True:
        found = stub.GetEventImport(
            profile_pb2.GetEventImportRequest(import_id=import_id), timeout=60
        )
        if found.state == _COMMITTED:
            break
        time.sleep(0.2)
    total_s = time.perf_counter() - started
    cpu2 = cpu_seconds(pid)
    pg2 = backends.sample()
    return {
        "postgres_cpu_us_per_event_staging": round(BackendCpu.spent(pg0, pg1) / staged * 1e6, 1),
        "postgres_cpu_us_per_event_commit": round(BackendCpu.spent(pg1, pg2) / staged * 1e6, 1),
        "profile_cpu_us_per_event_staging": round((cpu1 - cpu0) / staged * 1e6, 1),
        "profile_cpu_us_per_event_commit": round((cpu2 - cpu1) / staged * 1e6, 1),
        "staged": staged,
        "applied": found.applied_count,
        "customers": found.customer_count,
        "stage_seconds": round(staged_s, 2),
        "commit_seconds": round(total_s - staged_s, 2),
        "seconds": round(total_s, 2),
        "_cpu_at_commit": cpu2,
        "_pg_at_commit": pg2,
    }


def wait_announced(
    segmentation: SegmentationStandIn, outcome: dict, pid: int, backends: BackendCpu
) -> None:
    """Waits until every changed customer was announced; adds what announcing cost."""
    announced_started = time.perf_counter()
    while segmentation.announced() < outcome["customers"]:
        if time.perf_counter() - announced_started > 1800:
            break
        time.sleep(0.2)
    outcome["announced_customers"] = segmentation.announced()
    outcome["announced_seconds_after_commit"] = round(time.perf_counter() - announced_started, 2)
    # What announcing the changed customers cost after the commit (the relay reads
    # each customer's new events back and sends them to segmentation): profile's
    # CPU and its database's per event, so the import's whole cost is
    # staging + commit + announcing.
    announcing_cpu = cpu_seconds(pid) - outcome.pop("_cpu_at_commit")
    announcing_pg = BackendCpu.spent(outcome.pop("_pg_at_commit"), backends.sample())
    outcome["profile_cpu_us_per_event_announcing"] = round(
        announcing_cpu / outcome["staged"] * 1e6, 1
    )
    outcome["postgres_cpu_us_per_event_announcing"] = round(
        announcing_pg / outcome["staged"] * 1e6, 1
    )
    outcome["profile_cpu_us_per_event"] = round(
        sum(outcome[f"profile_cpu_us_per_event_{p}"] for p in PHASES), 1
    )
    outcome["postgres_cpu_us_per_event"] = round(
        sum(outcome[f"postgres_cpu_us_per_event_{p}"] for p in PHASES), 1
    )
    print(
        f"{outcome['announced_customers']:,} customers announced to segmentation "
        f"{outcome['announced_seconds_after_commit']} s after the commit"
    )


def streaming_rate(
    stub, customers: list[str], count: int, seed: int, pid: int
) -> tuple[float, float]:
    """ApplyEventBatch events/s (batches of 1,000, four calls in flight) and profile's CPU
    microseconds per event."""
    items = list(events(customers, count, seed, mixed=False, source="stream"))
    batches = [
        profile_pb2.ApplyEventBatchRequest(events=items[i : i + 1000])
        for i in range(0, len(items), 1000)
    ]
    cpu0 = cpu_seconds(pid)
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for reply in pool.map(lambda b: stub.ApplyEventBatch(b, timeout=600), batches):
            assert all(r.HasField("applied") for r in reply.results)
    seconds = time.perf_counter() - started
    return count / seconds, (cpu_seconds(pid) - cpu0) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=0, help="default: events / 10")
    parser.add_argument("--stream-sample", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=22)
    parser.add_argument(
        "--skip-ceilings",
        action="store_true",
        help="no raw COPY ceilings (A/B runs of the import alone)",
    )
    parser.add_argument("--results", default=str(RESULTS), help="where the JSON goes")
    args = parser.parse_args()
    customers = [str(uuid.uuid4()) for _ in range(args.customers or max(1, args.events // 10))]
    load_start = load()
    print(f"load average at start: {load_start}", flush=True)
    generated = time.perf_counter()
    messages, rows = serialized_messages(customers, args.events, args.seed)
    print(f"generated {args.events:,} events in {time.perf_counter() - generated:.1f} s")
    with scratch_database("bench_evimp") as db_url:
        raw_rate, indexed_rate, one_index = (
            (0.0, 0.0, {}) if args.skip_ceilings else raw_ceilings(db_url, rows)
        )
        del rows
        ports = dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True))
        segmentation = SegmentationStandIn()
        ports["segmentation"] = segmentation.port
        env = {**os.environ, **suite_env(db_url, ports), "SVOD_LOG_LEVEL": "WARNING"}
        server = subprocess.Popen([sys.executable, "-m", "svod_profile", "serve"], env=env)
        try:
            wait_healthy({"profile": ports["profile"]}, env=env)
            channel = grpc.insecure_channel(
                f"127.0.0.1:{ports['profile']}",
                options=[("grpc.max_send_message_length", 64 * 1024 * 1024)],
            )
            stub = profile_pb2_grpc.ProfileServiceStub(channel)
            backends = BackendCpu(db_url)
            outcome = import_events(
                stub, channel, f"bench-{args.seed}", messages, server.pid, backends
            )
            del messages
            wait_announced(segmentation, outcome, server.pid, backends)
            rate = args.events / outcome["seconds"]
            print(
                f"import: {rate:,.0f} events/s end to end ({outcome['seconds']} s: staging "
                f"{outcome['stage_seconds']} s, commit {outcome['commit_seconds']} s), "
                f"{rate / raw_rate if raw_rate else 0:.2f} of the raw COPY; profile's CPU per "
                f"event: "
                f"{outcome['profile_cpu_us_per_event_staging']} us staging, "
                f"{outcome['profile_cpu_us_per_event_commit']} us commit; PostgreSQL's: "
                f"{outcome['postgres_cpu_us_per_event_staging']} us staging, "
                f"{outcome['postgres_cpu_us_per_event_commit']} us commit; load {load()}"
            )
            print(
                "announcing after the commit: profile "
                f"{outcome['profile_cpu_us_per_event_announcing']} us, PostgreSQL "
                f"{outcome['postgres_cpu_us_per_event_announcing']} us per event;"
                f" in all profile {outcome['profile_cpu_us_per_event']} us, PostgreSQL "
                f"{outcome['postgres_cpu_us_per_event']} us per event"
            )
            with psycopg.connect(libpq_url(db_url)) as conn:
                orders = conn.execute(
                    "SELECT sum((metrics->>'order_count')::bigint) FROM profile.profiles"
                ).fetchone()[0]
            assert orders == args.events, (orders, args.events)
            stream_customers = [str(uuid.uuid4()) for _ in range(max(1, args.stream_sample // 10))]
            stream_rate, stream_cpu = streaming_rate(
                stub, stream_customers, args.stream_sample, args.seed + 1, server.pid
            )
            print(
                f"ApplyEventBatch on {args.stream_sample:,} events: {stream_rate:,.0f} events/s, "
                f"profile's CPU {stream_cpu:.1f} us per event; load {load()}"
            )
            channel.close()
            backends.conn.close()
        finally:
            server.terminate()
            server.wait(30)
            segmentation.server.stop(None)
    result = {
        "events": args.events,
        "customers": len(customers),
        "import": {**outcome, "events_per_s": round(rate)},
        "raw_copy_rows_per_s": round(raw_rate),
        "raw_copy_event_store_indexes_rows_per_s": round(indexed_rate),
        "raw_copy_one_index_rows_per_s": one_index,
        "import_over_raw": round(rate / raw_rate, 3) if raw_rate else None,
        "apply_event_batch": {
            "events": args.stream_sample,
            "events_per_s": round(stream_rate),
            "profile_cpu_us_per_event": round(stream_cpu, 1),
        },
        "load_average_start": load_start,
        "load_average_end": load(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    Path(args.results).write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.results}")


if __name__ == "__main__":
    main()
