"""Profile service benchmarks: GetProfile latency with many profiles, ApplyEvent throughput.

Each figure is printed beside the raw Postgres figure for the same work measured in the same
run (the queries GetProfile makes, issued directly; the event rows, inserted directly), and
written to benchmarks/results/profile.json.

    .venv/bin/python -m benchmarks.profile.bench_profile --profiles 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import time
import uuid

import grpc
import psycopg

from benchmarks.harness import running_suite, scratch_database
from benchmarks.profile.loader import load_profiles
from benchmarks.stats import latency_summary
from svod.common.v1 import common_pb2
from svod.profile.v1 import profile_pb2, profile_pb2_grpc
from svod_cli.suite import TOP
from svod_profile.adapters.storage import LOAD_PROFILE
from svod_runtime.db import libpq_url
from svod_runtime.retries import retry_options

RESULTS = TOP / "benchmarks" / "results" / "profile.json"


def bench_reads(
    target: str, db_url: str, ids: list[str], calls: int, blocks: int = 5
) -> tuple[dict[str, float], dict[str, float]]:
    """GetProfile over gRPC and the same statement issued directly, alternating in blocks, so
    that both meet the machine in the same state (background writes after the bulk load, other
    tenants of the host) rather than one of them taking all of a quiet or a busy spell."""
    sample = random.sample(ids, min(calls, len(ids)))
    per_block = max(1, len(sample) // blocks)
    service: list[float] = []
    raw: list[float] = []
    with (
        grpc.insecure_channel(target, options=retry_options()) as channel,
        psycopg.connect(libpq_url(db_url), autocommit=True) as conn,
    ):
        stub = profile_pb2_grpc.ProfileServiceStub(channel)
        conn.execute(RAW_QUERIES[0])
        for customer_id in ids[:200]:  # warm-up: connections, caches, prepared statements
            stub.GetProfile(profile_pb2.GetProfileRequest(customer_id=customer_id), timeout=5)
            conn.execute(RAW_QUERIES[1], {"c": customer_id}).fetchall()
        for start in range(0, len(sample), per_block):
            block = sample[start : start + per_block]
            for customer_id in block:
                started = time.perf_counter()
                stub.GetProfile(profile_pb2.GetProfileRequest(customer_id=customer_id), timeout=5)
                service.append((time.perf_counter() - started) * 1000)
            for customer_id in block:
                started = time.perf_counter()
                conn.execute(RAW_QUERIES[1], {"c": customer_id}).fetchall()
                raw.append((time.perf_counter() - started) * 1000)
    return latency_summary(service), latency_summary(raw)


# The one statement GetProfile runs, issued directly.
RAW_QUERIES = ("SET search_path TO profile", LOAD_PROFILE)


def settle(db_url: str) -> None:
    """Flushes the bulk load's dirty pages before measuring (a checkpoint landing in the middle
    of the read benchmark otherwise shows up as its tail)."""
    with (
        psycopg.connect(libpq_url(db_url), autocommit=True) as conn,
        contextlib.suppress(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("CHECKPOINT")


def order_event(customer_id: str, n: int) -> profile_pb2.ApplyEventRequest:
    return profile_pb2.ApplyEventRequest(
        customer_id=customer_id,
        record_ref=common_pb2.RecordRef(source="bench", message_id=f"ev-{n}-{uuid.uuid4().hex}"),
        channel=common_pb2.SOURCE_CHANNEL_WEB,
        event=common_pb2.Event(
            type=common_pb2.EVENT_TYPE_ORDER_PLACED,
            occurred_time={"seconds": 1_790_000_000 + n},
            total={"currency_code": "RUB", "units": 100 + n % 900},
            lines=[
                common_pb2.LineItem(
                    category="shoes", quantity=1, unit_price={"currency_code": "RUB", "units": 100}
                )
            ],
            order_id=f"o-{n}",
        ),
    )


async def bench_apply(target: str, ids: list[str], events: int, concurrency: int) -> dict:
    requests = [order_event(random.choice(ids), n) for n in range(events)]
    queue: asyncio.Queue[profile_pb2.ApplyEventRequest] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)
    async with grpc.aio.insecure_channel(target, options=retry_options()) as channel:
        stub = profile_pb2_grpc.ProfileServiceStub(channel)

        async def worker() -> None:
            while not queue.empty():
                await stub.ApplyEvent(queue.get_nowait(), timeout=30)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"events": events, "seconds": round(elapsed, 2), "per_second": round(events / elapsed)}


async def bench_apply_batches(
    target: str, ids: list[str], events: int, batch: int, concurrency: int
) -> dict:
    """The same events through ApplyEventBatch, ``batch`` per call."""
    requests = [order_event(random.choice(ids), n) for n in range(events)]
    chunks = [requests[i : i + batch] for i in range(0, len(requests), batch)]
    queue: asyncio.Queue[list[profile_pb2.ApplyEventRequest]] = asyncio.Queue()
    for chunk in chunks:
        queue.put_nowait(chunk)
    async with grpc.aio.insecure_channel(target, options=retry_options()) as channel:
        stub = profile_pb2_grpc.ProfileServiceStub(channel)

        async def worker() -> None:
            while not queue.empty():
                reply = await stub.ApplyEventBatch(
                    profile_pb2.ApplyEventBatchRequest(events=queue.get_nowait()), timeout=60
                )
                assert all(r.HasField("applied") for r in reply.results)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {
        "events": events,
        "per_call": batch,
        "seconds": round(elapsed, 2),
        "per_second": round(events / elapsed),
    }


async def bench_raw_apply(db_url: str, ids: list[str], events: int, concurrency: int) -> dict:
    """The same rows inserted straight into the events table (no metrics, no RPC)."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(events):
        queue.put_nowait(n)

    async def worker() -> None:
        async with await psycopg.AsyncConnection.connect(libpq_url(db_url), autocommit=True) as c:
            while not queue.empty():
                n = queue.get_nowait()
                await c.execute(
                    "INSERT INTO profile.events (source, message_id, customer_id, event_type, "
                    "occurred_at, channel, currency, amount) "
                    "VALUES ('raw', %s, %s, 'order_placed', now(), 'web', 'RUB', 100)",
                    (f"raw-{n}-{uuid.uuid4().hex}", random.choice(ids)),
                )

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, 10))))
    elapsed = time.perf_counter() - started
    return {"events": events, "seconds": round(elapsed, 2), "per_second": round(events / elapsed)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=5_000)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args(argv)

    with scratch_database("svod_bench_profile") as db_url, contextlib.ExitStack() as stack:
        started = time.perf_counter()
        ids = load_profiles(db_url, args.profiles)
        load_s = time.perf_counter() - started
        print(f"loaded {args.profiles:,} profiles in {load_s:.1f}s")
        suite = stack.enter_context(running_suite(db_url))
        target = suite.target("profile")
        settle(db_url)
        get, raw_get = bench_reads(target, db_url, ids, args.calls)
        print(f"GetProfile over gRPC   p50 {get['p50_ms']:.2f} ms  p99 {get['p99_ms']:.2f} ms")
        print(
            f"raw SQL (same query)   p50 {raw_get['p50_ms']:.2f} ms  "
            f"p99 {raw_get['p99_ms']:.2f} ms  (ratio p99 {get['p99_ms'] / raw_get['p99_ms']:.1f}x)"
        )
        apply = asyncio.run(bench_apply(target, ids, args.events, args.concurrency))
        batched = asyncio.run(bench_apply_batches(target, ids, args.events, 200, 4))
        raw_apply = asyncio.run(bench_raw_apply(db_url, ids, args.events, args.concurrency))
        print(f"ApplyEvent over gRPC   {apply['per_second']:,} events/s")
        print(f"ApplyEventBatch (200)  {batched['per_second']:,} events/s")
        print(
            f"raw INSERT of events   {raw_apply['per_second']:,} rows/s  "
            f"(ratios {apply['per_second'] / raw_apply['per_second']:.2f}, "
            f"{batched['per_second'] / raw_apply['per_second']:.2f})"
        )
        results = {
            "machine": f"{platform.machine()} {platform.python_version()}",
            # Other work on the machine skews tail latencies: recorded with the figures.
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
            "profiles": args.profiles,
            "load_seconds": round(load_s, 1),
            "get_profile": get,
            "raw_get_profile_queries": raw_get,
            "apply_event": apply,
            "apply_event_batch": batched,
            "raw_event_insert": raw_apply,
            "concurrency": args.concurrency,
        }
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        # Other scripts' figures in the same file (bench_pipeline's "pipeline") are kept.
        kept = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        RESULTS.write_text(json.dumps({**kept, **results}, indent=2) + "\n")
        print(f"written to {RESULTS.relative_to(TOP)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
