"""The whole pipeline through the public API, each path beside its raw ceiling in the same run.

All five services run as processes (benchmarks.harness) on a scratch database whose identity
graph holds ``--customers`` customers (bulk-loaded: benchmarks/identity/loader.py). A load
generator on grpc.aio then drives ingestion's public API with ``--streams`` concurrent streams:

1. **identify**: ``--identifies`` customer records (half returning customers of the graph, half
   new people: benchmarks/identity/bench_speed.Workload) as IdentifyStream calls of
   ``--per-stream`` records. Figure: records/s *fully processed* - resolved by identity AND
   applied to the profile (ingestion marks a record delivered only then). Ceiling: identity's
   own ResolveBatch on records of the same mix, sent straight to identity in streams of 1,000
   (as ingestion's relay sends them), measured in the same run twice - on the graph just
   before the pipeline's records and just after them - and taken together, so it meets on
   average the graph the pipeline's records meet.
2. **events**: ``--events`` order events of the graph's customers as TrackStream calls.
   Figures: events/s of *durable accept* (every TrackStream returned: stored, with the
   outbox row) and *fully processed* (applied to the profile). Ceilings: raw grpc.aio
   streaming of the same messages to a server that only parses them (benchmarks/pipeline/
   raw_grpc.py, its own process), and a raw one-row INSERT of the same rows into
   profile.events (10 connections; benchmarks/profile/bench_profile.bench_raw_apply).
3. **mixed**: identifies and events at once (one identify stream for every three event
   streams), as a retailer's day looks: both rates.
4. **soak** (``--soak-seconds``, 600 by default, 60 with ``--quick``): a steady offered load of
   ``--soak-events`` events/s plus ``--soak-identifies`` identifies/s; every service's memory,
   the lag and failures as it goes (benchmarks/pipeline/soak.py).

During the identify phase two probes run beside the import: a single Identify every 0.5 s
(accepted -> in the profile, by ingestion's timestamps) and a GetProfile every 20 ms
(client-side latency).

For each phase, CPU seconds per message of every service process and of the Postgres backends
serving the database (Linux /proc, sampled; benchmarks/pipeline/cpu.py), less what each uses
idling (a quiet period measured first, so a phase slowed by other work on the machine is not
charged for its pollers): the process with the most CPU per message is the bottleneck (2
cores: 1,000 messages/s leaves 2 ms of CPU per message for everything), and 2 cores over the
sum is the rate the CPU alone allows (``cpu_bound_per_second``) - on a shared machine (the load
average is recorded) the rates measured fall below it. Postgres runs as a cluster of the
benchmark's own, durable (fsync on: benchmarks/pipeline/cluster.py).
Results: benchmarks/results/pipeline.json under ``--label``.

    .venv/bin/python -m benchmarks.pipeline.bench --quick
    .venv/bin/python -m benchmarks.pipeline.bench --customers 1000000 --identifies 50000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
import psycopg

from benchmarks.harness import running_suite, scratch_database
from benchmarks.identity.bench_speed import Workload
from benchmarks.identity.loader import load_identity
from benchmarks.pipeline import statements
from benchmarks.pipeline.cluster import bench_cluster
from benchmarks.pipeline.cpu import CpuMeter, per_message
from benchmarks.pipeline.soak import ProfileReader, SoakLoad, print_soak, read_summary, soak
from benchmarks.profile.bench_profile import bench_raw_apply
from benchmarks.stats import latency_summary
from svod.common.v1 import common_pb2
from svod.identity.v1 import identity_pb2, identity_pb2_grpc
from svod.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from svod_cli.suite import TOP, free_ports
from svod_runtime.db import libpq_url

RESULTS = TOP / "benchmarks" / "results" / "pipeline.json"
# ingestion's relay sends a bulk pass to identity as ResolveBatch streams of this many.
RESOLVE_STREAM = 1_000
IDENTIFY_SOURCE = "bench-identify"
TRACK_SOURCE = "bench-track"
MIXED_SOURCE = "bench-mixed"
SOAK_SOURCE = "bench-soak"


def identify_request(
    resolve: identity_pb2.ResolveRequest, source: str
) -> ingestion_pb2.IdentifyRequest:
    """The same customer record as ingestion's public API takes it."""
    return ingestion_pb2.IdentifyRequest(
        record_ref=common_pb2.RecordRef(source=source, message_id=resolve.record_ref.message_id),
        channel=resolve.channel,
        record=common_pb2.CustomerRecord(
            identifiers=resolve.identifiers,
            name=resolve.name,
            birth_date=resolve.birth_date,
            gender=resolve.gender,
            addresses=resolve.addresses,
        ),
    )


def order_event(phone: str, n: int, source: str) -> ingestion_pb2.TrackRequest:
    return ingestion_pb2.TrackRequest(
        record_ref=common_pb2.RecordRef(source=source, message_id=f"o-{n}-{uuid.uuid4().hex[:12]}"),
        channel=common_pb2.SOURCE_CHANNEL_POS,
        event=common_pb2.Event(
            type=common_pb2.EVENT_TYPE_ORDER_PLACED,
            occurred_time={"seconds": int(time.time()) - 86_400 * 30 + n % 2_000_000},
            identifiers=[common_pb2.Identifier(type=common_pb2.IDENTIFIER_TYPE_PHONE, value=phone)],
            total={"currency_code": "RUB", "units": 300 + n % 9_000},
            order_id=f"order-{n}",
            lines=[
                common_pb2.LineItem(
                    sku=f"sku-{n % 500}",
                    product_name="Молоко 3,2%",
                    category=("молочные", "хлеб", "напитки", "бакалея")[n % 4],
                    quantity=1 + n % 3,
                    unit_price={"currency_code": "RUB", "units": 100 + n % 3_000},
                )
            ],
        ),
    )


def events_for(
    customers: int, count: int, source: str, seed: int
) -> list[ingestion_pb2.TrackRequest]:
    """Orders of random customers of the loaded graph (named by their phones)."""
    work = Workload(customers, seed)
    rng = random.Random(seed)
    return [order_event(work._phone_of(rng.randint(1, customers)), n, source) for n in range(count)]


async def send_streams(
    target: str, method: str, messages: Sequence, per_stream: int, streams: int
) -> float:
    """Seconds to send ``messages`` as client streams of ``per_stream``, ``streams`` at once."""
    chunks = [messages[i : i + per_stream] for i in range(0, len(messages), per_stream)]
    async with grpc.aio.insecure_channel(target) as channel:
        stub = ingestion_pb2_grpc.IngestionServiceStub(channel)
        call = getattr(stub, method)

        async def worker() -> None:
            while chunks:
                chunk = chunks.pop(0)
                reply = await call(iter(chunk), timeout=600)
                if reply.rejected_count:
                    raise RuntimeError(f"{reply.rejected_count} refused: {reply.rejected[:3]}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(streams)))
        return time.perf_counter() - started


_DONE = (
    "SELECT count(*) FILTER (WHERE state <> 'pending'), "
    "count(*) FILTER (WHERE state = 'delivered') FROM ingestion.records WHERE source = %s"
)
_IN_SEGMENTATION = "SELECT count(*) FROM segmentation.events WHERE source = %s"


def processed(db_url: str, source: str) -> tuple[int, int]:
    """(records of ``source`` done - delivered, failed or held -, of them delivered)."""
    with psycopg.connect(libpq_url(db_url), application_name="svod-bench") as conn:
        row = conn.execute(_DONE, (source,)).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


async def _wait_count(
    db_url: str, query: str, source: str, count: int, timeout_s: float, what: str
) -> float:
    """Seconds (from now) until ``query`` counts ``count`` rows of ``source``.

    The count reads every row of the source, so it costs Postgres time in proportion to the
    phase: polled every 0.2 s on a fresh connection each time, it took 0.041 ms of execution an
    event in an 80,000-event phase (pg_stat_statements, 2026-12-07: a tenth of a core, the
    third-largest statement of the phase, taken from the pipeline it measures). So one
    connection, and polls spaced by half the time the rate so far says is left (at least 0.2 s,
    at most 2 s): a dozen polls a phase instead of one every 0.2 s, the last ones still 0.2 s
    apart.
    """
    started = time.perf_counter()
    with await asyncio.to_thread(
        psycopg.connect, libpq_url(db_url), autocommit=True, application_name="svod-bench"
    ) as conn:
        first_done: tuple[float, int] | None = None
        while True:
            row = await asyncio.to_thread(lambda: conn.execute(query, (source,)).fetchone())
            done = int(row[0]) if row else 0
            now = time.perf_counter()
            if done >= count:
                return now - started
            if now - started > timeout_s:
                raise TimeoutError(f"only {done} of {count} {source} {what}")
            first_done = first_done or (now, done)
            pace = (done - first_done[1]) / (now - first_done[0]) if now > first_done[0] else 0.0
            left = (count - done) / pace if pace > 0 else 0.0
            await asyncio.sleep(min(max(left / 2, 0.2), 2.0))


async def wait_in_segmentation(db_url: str, source: str, count: int, timeout_s: float) -> float:
    """Seconds (from now) until ``count`` events of ``source`` are in segmentation's read
    model (announced by profile, applied)."""
    return await _wait_count(
        db_url, _IN_SEGMENTATION, source, count, timeout_s, "events in segmentation"
    )


async def wait_processed(db_url: str, source: str, count: int, timeout_s: float) -> float:
    """Seconds (from now) until ``count`` records of ``source`` are done."""
    return await _wait_count(db_url, _DONE, source, count, timeout_s, "records processed")


PROBE_SOURCE = "bench-probe"


async def interactive_probe(target: str, stop: asyncio.Event, every_s: float = 0.5) -> int:
    """While a bulk phase runs: an Identify of a new person every ``every_s``; returns how
    many were sent. Their latency (accepted -> delivered, i.e. resolved and in the profile) is
    read afterwards from ingestion's own timestamps (``probe_latencies``): polling each one's
    status would itself load ingestion and Postgres (seen: 3 ms of CPU per bulk record)."""
    work = Workload(1, seed=97)
    sent = 0
    async with grpc.aio.insecure_channel(target) as channel:
        stub = ingestion_pb2_grpc.IngestionServiceStub(channel)
        while not stop.is_set():
            await stub.Identify(identify_request(work.new(), PROBE_SOURCE), timeout=60)
            sent += 1
            await asyncio.sleep(every_s)
    return sent


def probe_latencies(db_url: str) -> list[float]:
    """Milliseconds from acceptance to delivery of each interactive probe."""
    with psycopg.connect(libpq_url(db_url), application_name="svod-bench") as conn:
        rows = conn.execute(
            "SELECT extract(epoch FROM delivered_at - received_at) * 1000 "
            "FROM ingestion.records WHERE source = %s AND state = 'delivered'",
            (PROBE_SOURCE,),
        ).fetchall()
    return [float(r[0]) for r in rows]


def rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1)


# CPU per second of each process with nothing to do (measured at the start of the run).
IDLE: dict[str, float] = {}


def cpu_figures(meter: CpuMeter, messages: int) -> dict:
    seconds = meter.seconds(IDLE)
    per = per_message(seconds, messages)
    bottleneck = max((k for k in per if k != "postgres_background"), key=lambda k: per[k])
    total_ms = sum(per.values())
    return {
        "cpu_seconds": seconds,
        "cpu_ms_per_message": per,
        "most_cpu_per_message": bottleneck,
        # What the CPU alone would allow if the machine's cores were the pipeline's only: on a
        # machine other work loads (see the load average) the rates measured are lower.
        "cpu_bound_per_second": round((os.cpu_count() or 1) * 1000 / total_ms)
        if total_ms
        else None,
        "load_average_1m_at_end": round(os.getloadavg()[0], 1),
    }


def print_cpu(name: str, figures: dict) -> None:
    parts = ", ".join(f"{k} {v:.2f}" for k, v in figures["cpu_ms_per_message"].items())
    print(
        f"  CPU ms per {name}: {parts}  -> most: {figures['most_cpu_per_message']}; "
        f"CPU-bound rate {figures['cpu_bound_per_second']:,}/s on {os.cpu_count()} cores "
        f"(load average {figures['load_average_1m_at_end']})"
    )


async def resolve_ceiling(target: str, requests: list[identity_pb2.ResolveRequest]) -> float:
    """Seconds for identity's own ResolveBatch to take ``requests`` (streams of 1,000, one at a
    time, as ingestion's relay sends a bulk pass)."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = identity_pb2_grpc.IdentityServiceStub(channel)
        started = time.perf_counter()
        for start in range(0, len(requests), RESOLVE_STREAM):
            await stub.ResolveBatch(iter(requests[start : start + RESOLVE_STREAM]), timeout=600)
        return time.perf_counter() - started


def outbox_backlog(db_url: str) -> int:
    """Outbox rows still to deliver in every service that relays during the identify phase."""
    with psycopg.connect(libpq_url(db_url), application_name="svod-bench") as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM ingestion.outbox WHERE failed_at IS NULL)"
            " + (SELECT count(*) FROM identity.outbox WHERE failed_at IS NULL)"
            " + (SELECT count(*) FROM profile.outbox WHERE failed_at IS NULL)"
        ).fetchone()
    assert row is not None
    return int(row[0])


async def wait_drained(db_url: str, timeout_s: float) -> None:
    """Until the identify phase's tail (profile's announcements to segmentation, identity's
    to profile and quality) is delivered, so the ceiling measured after it has the cores and
    the Postgres backends to itself as the one before it had."""
    started = time.perf_counter()
    while await asyncio.to_thread(outbox_backlog, db_url):
        if time.perf_counter() - started > timeout_s:
            raise TimeoutError("the outboxes did not drain after the identify phase")
        await asyncio.sleep(0.2)


async def ceiling_run(
    target: str, pids: dict[str, int], db_url: str, customers: int, count: int, seed: int
) -> tuple[float, dict[str, float]]:
    """(seconds, CPU seconds of each process) for identity's own ResolveBatch to take
    ``count`` records of the identify phase's mix (workload ``seed``)."""
    requests = [r for _, r in Workload(customers, seed=seed).mixed(count)]
    with CpuMeter(pids, db_url) as meter:
        seconds = await resolve_ceiling(target, requests)
    return seconds, meter.seconds(IDLE)


@contextlib.contextmanager
def raw_server() -> Iterator[str]:
    """benchmarks/pipeline/raw_grpc.py in a process of its own; its target."""
    (port,) = free_ports(1)
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.pipeline.raw_grpc", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        server.stdout.readline()  # "ready"
        yield f"127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


@contextlib.contextmanager
def profiled(pids: dict[str, int], output: str) -> Iterator[None]:
    """py-spy sampling ingestion (and its children) meanwhile, written to ``output`` (raw
    collapsed stacks) when the block ends; nothing when ``output`` is empty."""
    if not output:
        yield
        return
    spy = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("py-spy")),
            "record",
            "--subprocesses",
            "--rate",
            "100",
            "--format",
            "raw",
            "--output",
            output,
            "--pid",
            str(pids["ingestion"]),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(30)


async def grpc_ceiling(messages: list, per_stream: int, streams: int) -> float:
    """Seconds to stream ``messages`` to a server that only parses them (own process)."""
    with raw_server() as target:
        return await send_streams(target, "TrackStream", messages, per_stream, streams)


async def run(args: argparse.Namespace, db_url: str, suite) -> dict:  # noqa: PLR0915
    pids = {name: process.pid for name, process in suite.processes.items()}
    statement_meter = statements.StatementMeter(db_url, args.statements)
    ingestion = suite.target("ingestion")
    figures: dict = {}
    # What every process uses idling (pollers, metrics, housekeeping), charged to no message.
    with CpuMeter(pids, db_url) as meter:
        await asyncio.sleep(args.idle_seconds)
    IDLE.update(meter.per_second())
    figures["idle_cpu_per_second"] = dict(IDLE)
    print(f"idle CPU per second: {IDLE}")

    # -- identify: identity's own ResolveBatch, then the same mix through the pipeline ----------
    if args.identifies:  # --identifies 0: the events phases alone
        # The ceiling is measured twice, on the graph just before the pipeline's records and
        # on the graph just after them (each run adds ``--identifies`` records to it): taken
        # together they meet, on average, the graph the pipeline's records meet. Measured only
        # before, it met a graph ``--identifies`` records smaller, and identity's CPU a record
        # grows with the graph (+19% from one 10,000-record phase to the next at 20,000
        # customers: docs/performance.md, worktree idpipe).
        before_s, before_cpu = await ceiling_run(
            suite.target("identity"), pids, db_url, args.customers, args.identifies, seed=11
        )
        work = [
            identify_request(r, IDENTIFY_SOURCE)
            for _, r in Workload(args.customers, seed=23).mixed(args.identifies)
        ]
        stop_probe = asyncio.Event()
        probe = asyncio.create_task(interactive_probe(ingestion, stop_probe))
        reads = ProfileReader(suite.target("profile"), db_url)
        # The same reads' raw ceilings under the same load, each from a process of its own: a
        # unary call answered without work (raw_grpc.py) and the profile row's primary-key read
        # straight from Postgres. What neither can reach, GetProfile cannot either.
        with raw_server() as raw_target:
            raw_reads = ProfileReader(raw_target, db_url)
            db_reads = ProfileReader("", db_url, straight_from_db=True)
            statement_meter.reset()
            with CpuMeter(pids, db_url) as meter:
                started = time.perf_counter()
                accept_s = await send_streams(
                    ingestion, "IdentifyStream", work, args.per_stream, args.streams
                )
                await wait_processed(db_url, IDENTIFY_SOURCE, len(work), args.timeout)
                elapsed = time.perf_counter() - started
            stop_probe.set()
            identify_statements = statement_meter.top(len(work))
            probes = await probe
            read_latencies = await reads.stop()
            raw_latencies = await raw_reads.stop()
            db_latencies = await db_reads.stop()
        await wait_processed(db_url, PROBE_SOURCE, probes, args.timeout)
        await wait_drained(db_url, args.timeout)
        after_s, after_cpu = await ceiling_run(
            suite.target("identity"), pids, db_url, args.customers, args.identifies, seed=29
        )
        ceiling = rate(2 * args.identifies, before_s + after_s)
        ceiling_per_record = per_message(
            {k: before_cpu.get(k, 0.0) + after_cpu.get(k, 0.0) for k in {*before_cpu, *after_cpu}},
            2 * args.identifies,
        )
        interactive = probe_latencies(db_url)
        _, delivered = processed(db_url, IDENTIFY_SOURCE)
        figures["identify"] = {
            "records": len(work),
            "delivered": delivered,
            "accepted_per_second": rate(len(work), accept_s),
            "fully_processed_per_second": rate(len(work), elapsed),
            "seconds": round(elapsed, 2),
            "ceiling_identity_resolve_batch_per_second": ceiling,
            "ratio_to_ceiling": round(len(work) / elapsed / ceiling, 2),
            **cpu_figures(meter, len(work)),
            "ceiling_cpu_ms_per_record": ceiling_per_record,
            # The two ceiling runs the figure above takes together: on the graph just before
            # the pipeline's records, and just after them.
            "ceiling_before_per_second": rate(args.identifies, before_s),
            "ceiling_after_per_second": rate(args.identifies, after_s),
            "ceiling_cpu_ms_per_record_before_after": [
                per_message(before_cpu, args.identifies),
                per_message(after_cpu, args.identifies),
            ],
            # One Identify every 0.5 s during the bulk import: accepted -> delivered (in the
            # profile), by ingestion's timestamps.
            "interactive_identify_to_profile_ms": latency_summary(interactive)
            if interactive
            else {},
            # GetProfile of customers with a profile, one at a time every 20 ms, meanwhile.
            "profile_reads_during_import_ms": read_summary(read_latencies)
            if read_latencies
            else {},
            # Their raw ceilings meanwhile: a gRPC call answered without work, and the profile
            # row read straight from Postgres.
            "raw_unary_calls_during_import_ms": read_summary(raw_latencies)
            if raw_latencies
            else {},
            "raw_db_reads_during_import_ms": read_summary(db_latencies) if db_latencies else {},
        }
        f = figures["identify"]
        print(
            f"identify fully processed (resolved, in the profile): "
            f"{f['fully_processed_per_second']:,} records/s ({delivered:,} of {len(work):,} "
            f"delivered in {elapsed:.1f}s); identity's own ResolveBatch {ceiling:,} records/s "
            f"(ratio {f['ratio_to_ceiling']}; {f['ceiling_before_per_second']:,} on the graph "
            f"before the pipeline's records, {f['ceiling_after_per_second']:,} after them)"
        )
        print_cpu("record", f)
        f["statements"] = identify_statements
        statements.print_top("record", identify_statements)
        if interactive:
            lat = f["interactive_identify_to_profile_ms"]
            print(
                f"  a single Identify during the import, until in the profile: p50 "
                f"{lat['p50_ms']:.0f} ms, p99 {lat['p99_ms']:.0f} ms ({lat['calls']} calls)"
            )
        for key, what in (
            ("profile_reads_during_import_ms", "GetProfile during the import"),
            ("raw_unary_calls_during_import_ms", "  raw: a gRPC call answered without work"),
            ("raw_db_reads_during_import_ms", "  raw: the profile row straight from Postgres"),
        ):
            if lat := f[key]:
                print(
                    f"  {what}: p50 {lat['p50_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms, "
                    f"max {lat['max_ms']:.1f} ms ({lat['calls']} calls)"
                )

    if not (args.events or args.mixed_events or args.soak_seconds):
        return figures  # --events 0 --mixed-events 0 --soak-seconds 0: identify alone

    # -- events: durable accept and fully processed ----------------------------------------------
    events = events_for(args.customers, args.events, TRACK_SOURCE, seed=31)
    # The raw ceiling once more right before the accept (the one the ratio is taken to is
    # measured at the end, minutes later): on a shared machine the two differ as much as runs
    # do, and the pair shows how far the ratio moves with the moment alone.
    raw_before_s = await grpc_ceiling(events, args.per_stream, args.streams)
    statement_meter.reset()
    with CpuMeter(pids, db_url) as meter:
        started = time.perf_counter()
        # The accept alone (its CPU includes the relay delivering meanwhile, as in production).
        with CpuMeter(pids, db_url) as accept_meter, profiled(pids, args.profile_accept):
            events_accept_s = await send_streams(
                ingestion, "TrackStream", events, args.per_stream, args.streams
            )
        accept_load = round(os.getloadavg()[0], 1)
        await wait_processed(db_url, TRACK_SOURCE, len(events), args.timeout)
        in_profile_s = time.perf_counter() - started
        # Fully processed = in the profile and in segmentation's read model (issue #20).
        await wait_in_segmentation(db_url, TRACK_SOURCE, len(events), args.timeout)
        elapsed = time.perf_counter() - started
    _, delivered = processed(db_url, TRACK_SOURCE)
    figures["events"] = {
        "events": len(events),
        "delivered": delivered,
        "accepted_per_second": rate(len(events), events_accept_s),
        "in_profile_per_second": rate(len(events), in_profile_s),
        "fully_processed_per_second": rate(len(events), elapsed),
        "seconds": round(elapsed, 2),
        **cpu_figures(meter, len(events)),
        "accept_cpu_ms_per_message": per_message(accept_meter.seconds(IDLE), len(events)),
        "accept_load_average_1m": accept_load,
    }
    events_f = figures["events"]
    events_f["statements"] = statement_meter.top(len(events))
    print_cpu("event", events_f)
    statements.print_top("event", events_f["statements"])
    parts = ", ".join(f"{k} {v:.3f}" for k, v in events_f["accept_cpu_ms_per_message"].items())
    print(
        f"  CPU ms per event while accepting (relay delivering meanwhile): {parts} "
        f"(load average {accept_load})"
    )

    # -- mixed: identifies and events at once -----------------------------------------------------
    if args.mixed_events:
        mixed_events = events_for(args.customers, args.mixed_events, MIXED_SOURCE, seed=41)
        mixed_ids = [
            identify_request(r, MIXED_SOURCE)
            for _, r in Workload(args.customers, seed=43).mixed(args.mixed_events // 4)
        ]
        streams = max(1, args.streams // 4)
        with CpuMeter(pids, db_url) as meter:
            started = time.perf_counter()
            await asyncio.gather(
                send_streams(
                    ingestion, "TrackStream", mixed_events, args.per_stream, args.streams - streams
                ),
                send_streams(ingestion, "IdentifyStream", mixed_ids, args.per_stream, streams),
            )
            total = len(mixed_events) + len(mixed_ids)
            await wait_processed(db_url, MIXED_SOURCE, total, args.timeout)
            elapsed = time.perf_counter() - started
        figures["mixed"] = {
            "events": len(mixed_events),
            "identifies": len(mixed_ids),
            "messages_per_second": rate(total, elapsed),
            "seconds": round(elapsed, 2),
            **cpu_figures(meter, total),
        }
        print(
            f"mixed ({len(mixed_ids):,} identifies + {len(mixed_events):,} events at once): "
            f"{figures['mixed']['messages_per_second']:,} messages/s fully processed"
        )
        print_cpu("message", figures["mixed"])

    # -- soak: a steady mix for a while; memory, lag, failures -----------------------------------
    if args.soak_seconds:
        load = SoakLoad(args.soak_seconds, args.soak_events, args.soak_identifies)
        soak_work = Workload(args.customers, seed=53)
        soak_rng = random.Random(59)

        def soak_events(tick: int) -> list[ingestion_pb2.TrackRequest]:
            first = tick * load.events_per_s
            return [
                order_event(
                    soak_work._phone_of(soak_rng.randint(1, args.customers)), first + i, SOAK_SOURCE
                )
                for i in range(load.events_per_s)
            ]

        def soak_identifies(tick: int) -> list[ingestion_pb2.IdentifyRequest]:
            return [
                identify_request(r, SOAK_SOURCE) for _, r in soak_work.mixed(load.identifies_per_s)
            ]

        figures["soak"] = await soak(
            load, ingestion, db_url, pids, soak_events, soak_identifies, SOAK_SOURCE
        )
        print_soak(figures["soak"])

    # -- the events' raw ceilings, last (their rows must not weigh on the phases) ------------------
    raw_grpc_s = await grpc_ceiling(events, args.per_stream, args.streams)
    with psycopg.connect(libpq_url(db_url)) as conn:
        ids = [str(r[0]) for r in conn.execute("SELECT customer_id FROM profile.profiles")]
    raw_insert = await bench_raw_apply(db_url, ids, len(events), 10)
    f = events_f
    f["ceiling_raw_grpc_stream_per_second"] = rate(len(events), raw_grpc_s)
    f["accept_ratio_to_ceiling"] = round(raw_grpc_s / events_accept_s, 2)
    f["ceiling_raw_grpc_stream_before_accept_per_second"] = rate(len(events), raw_before_s)
    f["accept_ratio_to_ceiling_before_accept"] = round(raw_before_s / events_accept_s, 2)
    f["ceiling_raw_one_row_insert_per_second"] = raw_insert["per_second"]
    f["ratio_to_ceiling"] = round(f["fully_processed_per_second"] / raw_insert["per_second"], 2)
    print(
        f"events durable accept (TrackStream returned): {f['accepted_per_second']:,} events/s; "
        f"raw grpc.aio streaming of the same messages {f['ceiling_raw_grpc_stream_per_second']:,}"
        f" (ratio {f['accept_ratio_to_ceiling']}; measured right before the accept "
        f"{f['ceiling_raw_grpc_stream_before_accept_per_second']:,}, ratio "
        f"{f['accept_ratio_to_ceiling_before_accept']})"
    )
    print(
        f"events in the profile: {f['in_profile_per_second']:,} events/s; fully processed (in "
        f"the profile and segmentation): {f['fully_processed_per_second']:,} events/s "
        f"({f['delivered']:,} of {len(events):,} delivered in {f['seconds']:.1f}s); "
        f"raw one-row INSERT {raw_insert['per_second']:,} rows/s (ratio {f['ratio_to_ceiling']})"
    )
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.pipeline.bench")
    parser.add_argument("--quick", action="store_true", help="20k customers, small phases")
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--identifies", type=int, default=50_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--mixed-events", type=int, default=40_000)
    parser.add_argument("--streams", type=int, default=8, help="concurrent client streams")
    parser.add_argument("--per-stream", type=int, default=1_000, help="messages per stream call")
    parser.add_argument("--idle-seconds", type=float, default=10, help="quiet period measured")
    parser.add_argument("--timeout", type=float, default=3_600, help="seconds a phase may take")
    parser.add_argument(
        "--shared-cluster",
        action="store_true",
        help="use SVOD_DATABASE_URL or the server on 5432 instead of a cluster of its own",
    )
    parser.add_argument(
        "--soak-seconds", type=int, default=600, help="steady mixed load at the end (0: none)"
    )
    parser.add_argument("--soak-events", type=int, default=1_000, help="events/s in the soak")
    parser.add_argument(
        "--soak-identifies", type=int, default=100, help="identify calls/s in the soak"
    )
    parser.add_argument(
        "--profile-accept",
        default="",
        help="py-spy ingestion while the events are accepted, raw stacks to this file",
    )
    parser.add_argument(
        "--statements",
        action="store_true",
        help="pg_stat_statements in the cluster: each phase's top statements per message",
    )
    parser.add_argument("--label", default="latest", help="key of this run in the results file")
    args = parser.parse_args(argv)
    if args.quick:
        args.customers, args.identifies = 20_000, 3_000
        args.events, args.mixed_events = 15_000, 6_000
        args.soak_seconds = min(args.soak_seconds, 60)
    with contextlib.ExitStack() as stack:
        if not args.shared_cluster:
            extra = statements.PRELOAD if args.statements else None
            os.environ["SVOD_DATABASE_URL"] = stack.enter_context(bench_cluster(extra))
        db_url = stack.enter_context(scratch_database("svod_bench_pipe"))
        started = time.perf_counter()
        load_identity(db_url, args.customers)
        print(
            f"loaded {args.customers:,} customers into identity "
            f"in {time.perf_counter() - started:.0f}s"
        )
        suite = stack.enter_context(running_suite(db_url))
        load_before = os.getloadavg()
        figures = asyncio.run(run(args, db_url, suite))
    figures["setup"] = {
        "customers_in_graph": args.customers,
        "streams": args.streams,
        "per_stream": args.per_stream,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "load_average_before_after": [load_before, os.getloadavg()],
        "run_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[args.label] = figures
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(f"written to {RESULTS.relative_to(TOP)} under {args.label!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
