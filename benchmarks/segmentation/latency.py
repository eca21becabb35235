"""Profile change -> enter/exit event latency under a steady load of changes.

    python -m benchmarks.segmentation.latency --customers 20000 --rate 1000 --seconds 20

The segmentation service runs as its own process (``python -m svod_segmentation serve``) on a
fresh database holding the synthetic read model and the benchmark's 20 rule segments + RFM +
ABC. A client sends ApplyProfileChange at a fixed rate; every change flips a customer in or out
of one more segment ("flag on"), so each must produce one event on WatchMemberships. Latency is
from the moment the change is due (when the profile service would have committed it) to
receiving its event.

By default changes travel as the profile service's outbox relay sends them: a pass takes every
change due so far (at most 500) into one ApplyProfileChanges call, and the next pass starts
when that call returns. ``--unary`` sends one ApplyProfileChange per change instead.

The raw-SQL figure is the same write done as one hand-written transaction (update the row,
record the event) in a loop, measured in the same run.

Failed calls are counted by status. At overload they are ``CANCELLED`` within a millisecond:
gRPC core sheds calls that arrive while more than ``grpc.server.max_pending_requests`` (1,000;
hard limit 3,000) have arrived but not yet been taken up by the server's event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import psycopg

from benchmarks.segmentation.data import fresh_database, load
from benchmarks.segmentation.recompute import RESULTS
from benchmarks.segmentation.segments import definitions
from svod.profile.v1 import profile_pb2
from svod.segmentation.v1 import segmentation_pb2 as pb
from svod.segmentation.v1 import segmentation_pb2_grpc
from svod_cli.suite import drop_database, free_ports, wait_healthy
from svod_runtime.db import libpq_url
from svod_runtime.retries import retry_options
from svod_segmentation.entrypoints.convert import segment_to_proto

TOGGLE = "bench-toggle"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


async def load_test(  # noqa: C901, PLR0915
    target: str, ids: list[str], rate: int, seconds: float, server_pid: int, unary: bool = False
) -> dict[str, float]:
    channel = grpc.aio.insecure_channel(target, options=retry_options())
    stub = segmentation_pb2_grpc.SegmentationServiceStub(channel)
    for segment in definitions():
        await stub.CreateSegment(pb.CreateSegmentRequest(segment=segment_to_proto(segment)))
    toggle = pb.RuleNode(
        field=pb.FieldCondition(field="attributes.flag", operator="eq", values=["on"])
    )
    await stub.CreateSegment(
        pb.CreateSegmentRequest(segment=pb.Segment(segment_id=TOGGLE, rule=toggle))
    )
    pending: dict[str, float] = {}
    latencies: list[float] = []
    versions = dict.fromkeys(ids, 1)
    flags = dict.fromkeys(ids, False)
    stream = stub.WatchMemberships(pb.WatchMembershipsRequest(segment_ids=[TOGGLE]))

    async def watch() -> None:
        async for event in stream:
            sent = pending.pop(event.customer_id, None)
            if sent is not None:
                latencies.append(time.perf_counter() - sent)

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(1.0)
    errors = 0
    error_codes: collections.Counter[str] = collections.Counter()
    error_after: list[float] = []  # how long the failed calls took
    in_flight: set[asyncio.Task[None]] = set()

    def next_change(customer_id: str) -> pb.ApplyProfileChangeRequest:
        versions[customer_id] += 1
        flags[customer_id] = not flags[customer_id]
        return pb.ApplyProfileChangeRequest(
            customer_id=customer_id,
            profile_version=versions[customer_id],
            profile=profile_pb2.Profile(
                customer_id=customer_id,
                attributes={"flag": "on" if flags[customer_id] else "off"},
                metrics=profile_pb2.Metrics(order_count=versions[customer_id] % 7),
            ),
        )

    def failed(customer_id: str, code: str, took: float) -> None:
        nonlocal errors
        errors += 1
        pending.pop(customer_id, None)
        error_codes[code] += 1
        error_after.append(took)

    async def send(customer_id: str) -> None:
        request = next_change(customer_id)
        pending[customer_id] = sent = time.perf_counter()
        try:
            await stub.ApplyProfileChange(request, timeout=30)
        except grpc.aio.AioRpcError as error:
            code = f"{error.code().name}: {(error.details() or '')[:80]}"
            failed(customer_id, code, time.perf_counter() - sent)

    outbox: list[pb.ApplyProfileChangeRequest] = []
    more = asyncio.Event()
    finished = False

    async def relay() -> None:
        """Sends the changes due so far in one call, then the next pass (as profile's relay)."""
        while not finished or outbox:
            if not outbox:
                more.clear()
                await more.wait()
                continue
            batch = outbox[:500]
            del outbox[:500]
            sent = time.perf_counter()
            try:
                reply = await stub.ApplyProfileChanges(
                    pb.ApplyProfileChangesRequest(changes=batch), timeout=30
                )
            except grpc.aio.AioRpcError as error:
                code = f"{error.code().name}: {(error.details() or '')[:80]}"
                for change in batch:
                    failed(change.customer_id, code, time.perf_counter() - sent)
                continue
            for result in reply.results:
                if result.HasField("error"):
                    failed(result.customer_id, result.error.message[:80], 0.0)

    relay_task = None if unary else asyncio.create_task(relay())

    started = time.perf_counter()
    cpu_client, cpu_server, ticks = (
        cpu_seconds(os.getpid()),
        cpu_seconds(server_pid),
        machine_ticks(),
    )
    total = int(rate * seconds)
    for n in range(total):
        due = started + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        customer_id = ids[n % len(ids)]
        if customer_id in pending:  # still waiting for its last event: skip, do not double up
            continue
        if unary:
            task = asyncio.create_task(send(customer_id))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        else:
            pending[customer_id] = time.perf_counter()
            outbox.append(next_change(customer_id))
            more.set()
    sent_s = time.perf_counter() - started
    await asyncio.gather(*in_flight)
    finished = True
    more.set()
    if relay_task is not None:
        await relay_task
    deadline = time.perf_counter() + 10
    while pending and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    watcher.cancel()
    busy, all_ticks = (now - then for now, then in zip(machine_ticks(), ticks, strict=True))
    elapsed = time.perf_counter() - started
    cpu = {
        # Where the two cores went during the run: the load generator, the service, and the
        # whole machine (Postgres, and whatever else runs on it).
        "cpu_client_cores": round((cpu_seconds(os.getpid()) - cpu_client) / elapsed, 2),
        "cpu_service_cores": round((cpu_seconds(server_pid) - cpu_server) / elapsed, 2),
        "cpu_machine_busy": round(busy / max(all_ticks, 1), 2),
    }
    await channel.close()
    return {
        "sent": total,
        "send_rate_per_s": round(total / sent_s, 1),
        "events": len(latencies),
        "missing_events": len(pending),
        "errors": errors,
        "error_codes": dict(error_codes),
        "errors_min_after_s": round(min(error_after), 2) if error_after else None,
        "p50_s": round(percentile(latencies, 50), 4),
        "p95_s": round(percentile(latencies, 95), 4),
        "p99_s": round(percentile(latencies, 99), 4),
        "max_s": round(max(latencies), 4),
        **cpu,
    }


def start_segmentation(database_url: str) -> tuple[int, subprocess.Popen[bytes]]:
    """A segmentation server on a free loopback port over ``database_url``, healthy, with no
    periodic recompute and no metrics endpoint: (its port, its process)."""
    port = free_ports(1)[0]
    env = {
        **os.environ,
        "SVOD_SEGMENTATION_DATABASE_URL": database_url,
        "SVOD_SEGMENTATION_PORT": str(port),
        "SVOD_LISTEN_HOST": "127.0.0.1",
        "SVOD_LOG_LEVEL": "WARNING",
        "SVOD_SEGMENTATION_RECOMPUTE_S": "0",
        "SVOD_SEGMENTATION_METRICS_PORT": "0",
    }
    process = subprocess.Popen([sys.executable, "-m", "svod_segmentation", "serve"], env=env)
    wait_healthy({"segmentation": port})
    return port, process


def raw_sql(url: str, ids: list[str], count: int) -> dict[str, float]:
    """The same write by hand: update the profile row and record the event, one transaction."""
    times: list[float] = []
    with psycopg.connect(libpq_url(url)) as conn:
        for n in range(count):
            customer_id = ids[n % len(ids)]
            started = time.perf_counter()
            with conn.transaction():
                conn.execute(
                    "UPDATE customers SET profile_version = profile_version + 1, "
                    'attributes = attributes || \'{"raw": "1"}\' WHERE customer_id = %s',
                    (customer_id,),
                )
                conn.execute(
                    "INSERT INTO membership_events (segment_id, customer_id, kind, at) "
                    "VALUES ('raw', %s, 'entered', now())",
                    (customer_id,),
                )
            times.append(time.perf_counter() - started)
    return {
        "raw_sql_p50_s": round(percentile(times, 50), 5),
        "raw_sql_p99_s": round(percentile(times, 99), 5),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--active", type=int, default=5000, help="customers being changed")
    parser.add_argument(
        "--unary", action="store_true", help="one ApplyProfileChange per change, not batched"
    )
    args = parser.parse_args()
    admin_url, name, _db_url, urls = fresh_database()
    process = None
    try:
        loaded = load(urls["segmentation"], args.customers)
        with psycopg.connect(libpq_url(urls["segmentation"])) as conn:
            ids = [
                str(r[0])
                for r in conn.execute(
                    "SELECT customer_id FROM customers ORDER BY customer_id LIMIT %s",
                    (args.active,),
                )
            ]
        port, process = start_segmentation(urls["segmentation"])
        figures = asyncio.run(
            load_test(f"127.0.0.1:{port}", ids, args.rate, args.seconds, process.pid, args.unary)
        )
        figures.update(raw_sql(urls["segmentation"], ids, 2000))
    finally:
        if process is not None:
            process.terminate()
            process.wait(15)
        drop_database(admin_url, name)
    mode = "unary" if args.unary else "batched"
    ms = {k: v * 1000 for k, v in figures.items() if k.endswith("_s") and v is not None}
    print(
        f"profile change -> enter/exit event ({mode}), "
        f"{figures['send_rate_per_s']:.0f} changes/s for "
        f"{args.seconds:.0f}s over {args.customers:,} profiles: p50 {ms['p50_s']:.0f} ms, "
        f"p95 {ms['p95_s']:.0f} ms, p99 {ms['p99_s']:.0f} ms "
        f"({figures['events']:,} events, {figures['missing_events']} missing, "
        f"{figures['errors']} errors); raw SQL, same write by hand: "
        f"p50 {ms['raw_sql_p50_s']:.1f} ms, p99 {ms['raw_sql_p99_s']:.1f} ms"
    )
    print(
        f"  CPU during the run: load generator {figures['cpu_client_cores']} cores, service "
        f"{figures['cpu_service_cores']} cores, whole machine {figures['cpu_machine_busy']:.0%} "
        f"busy of {os.cpu_count()} cores"
    )
    for reason, count in sorted(figures["error_codes"].items(), key=lambda kv: -kv[1]):
        print(f"  {count} x {reason} (the quickest failed after {figures['errors_min_after_s']}s)")
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[f"latency_{args.rate}_per_s" + ("_unary" if args.unary else "")] = {
        **figures,
        "delivery": mode,
        "customers": loaded["customers"],
        "target_rate_per_s": args.rate,
        "seconds": args.seconds,
        "measured_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
