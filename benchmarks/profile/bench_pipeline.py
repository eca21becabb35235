"""Events through the whole pipeline: TrackStream -> ingestion's outbox -> identity look-up ->
profile ApplyEventBatch -> profile's outbox -> segmentation, all five services as processes.

    .venv/bin/python -m benchmarks.profile.bench_pipeline --customers 5000 --events 30000

Customers are created first through IdentifyStream (their phones are what the events name).
Then ``--events`` order events for random customers are streamed in with TrackStream
(``--stream`` per call) and the clock runs until ingestion has delivered every one to a profile
(its records table says so); events/s is events over that time. Beside it, measured in the same
run: the raw figure of inserting the same number of rows straight into ``profile.events`` (10
connections, one row per statement, as bench_profile does). Results are added to
benchmarks/results/profile.json under "pipeline".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import time
import uuid

import grpc
import psycopg

from benchmarks.harness import running_suite, scratch_database
from benchmarks.profile.bench_profile import RESULTS, bench_raw_apply
from svod.common.v1 import common_pb2
from svod.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from svod_runtime.db import libpq_url

PHONE = common_pb2.IDENTIFIER_TYPE_PHONE


def identify(phone: str) -> ingestion_pb2.IdentifyRequest:
    return ingestion_pb2.IdentifyRequest(
        record_ref=common_pb2.RecordRef(source="bench", message_id=f"id-{uuid.uuid4().hex}"),
        channel=common_pb2.SOURCE_CHANNEL_WEB,
        record=common_pb2.CustomerRecord(
            identifiers=[common_pb2.Identifier(type=PHONE, value=phone)],
            name=common_pb2.PersonName(first_name="Мария", last_name="Петрова"),
        ),
    )


def order(phone: str, n: int) -> ingestion_pb2.TrackRequest:
    return ingestion_pb2.TrackRequest(
        record_ref=common_pb2.RecordRef(source="bench", message_id=f"ev-{n}-{uuid.uuid4().hex}"),
        channel=common_pb2.SOURCE_CHANNEL_WEB,
        event=common_pb2.Event(
            type=common_pb2.EVENT_TYPE_ORDER_PLACED,
            occurred_time={"seconds": int(time.time()) - 86_400 + n % 80_000},
            identifiers=[common_pb2.Identifier(type=PHONE, value=phone)],
            total={"currency_code": "RUB", "units": 100 + n % 900},
            order_id=f"o-{n}",
        ),
    )


def delivered(db_url: str, kind: str) -> int:
    with psycopg.connect(libpq_url(db_url)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM ingestion.records WHERE kind = %s AND state = 'delivered'",
            (kind,),
        ).fetchone()
    return int(row[0]) if row else 0


def wait_delivered(db_url: str, kind: str, count: int, timeout_s: float) -> float:
    """Seconds until ``count`` records of ``kind`` are delivered (polled every 50 ms)."""
    started = time.perf_counter()
    while delivered(db_url, kind) < count:
        if time.perf_counter() - started > timeout_s:
            raise TimeoutError(f"only {delivered(db_url, kind)} of {count} {kind} delivered")
        time.sleep(0.05)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--stream", type=int, default=5_000, help="events per TrackStream call")
    args = parser.parse_args(argv)

    with scratch_database("svod_bench_pipeline") as db_url, contextlib.ExitStack() as stack:
        suite = stack.enter_context(running_suite(db_url))
        phones = [f"+7915{n:07d}" for n in random.sample(range(10**7), args.customers)]
        with grpc.insecure_channel(suite.target("ingestion")) as channel:
            stub = ingestion_pb2_grpc.IngestionServiceStub(channel)
            for start in range(0, len(phones), 1000):
                stub.IdentifyStream(
                    iter([identify(p) for p in phones[start : start + 1000]]), timeout=120
                )
            identify_s = wait_delivered(db_url, "identify", len(phones), 600)
            # Phones the quality rules took for placeholders (+7 915 123-45-67 ...) name nobody:
            # events name only the customers' real phones.
            with psycopg.connect(libpq_url(db_url)) as conn:
                phones = [
                    str(r[0])
                    for r in conn.execute(
                        "SELECT value FROM identity.identifiers WHERE id_type = 'phone'"
                    )
                ]
            print(f"{len(phones):,} customers identified in {identify_s:.1f}s")
            events = [order(random.choice(phones), n) for n in range(args.events)]
            load_before = os.getloadavg()
            started = time.perf_counter()
            for start in range(0, len(events), args.stream):
                reply = stub.TrackStream(iter(events[start : start + args.stream]), timeout=300)
                assert reply.accepted_count == len(events[start : start + args.stream])
            accepted_s = time.perf_counter() - started
            wait_delivered(db_url, "track", len(events), 900)
            elapsed = time.perf_counter() - started
        with psycopg.connect(libpq_url(db_url)) as conn:
            ids = [str(r[0]) for r in conn.execute("SELECT customer_id FROM profile.profiles")]
        raw_apply = asyncio.run(bench_raw_apply(db_url, ids, args.events, 64))
        figures = {
            "customers": len(phones),
            # IdentifyStream of every customer until all are delivered (resolved and applied).
            "identify_seconds": round(identify_s, 1),
            "identified_per_second": round(len(phones) / identify_s),
            "events": len(events),
            "per_stream_call": args.stream,
            "accepted_seconds": round(accepted_s, 2),
            "delivered_seconds": round(elapsed, 2),
            "events_per_second": round(len(events) / elapsed),
            "raw_event_insert": raw_apply,
            "ratio_to_raw": round(len(events) / elapsed / raw_apply["per_second"], 2),
            "load_average_before_after": [load_before, os.getloadavg()],
        }
        print(
            f"TrackStream -> delivered to profiles: {figures['events_per_second']:,} events/s "
            f"({len(events):,} events, accepted in {accepted_s:.1f}s, all applied after "
            f"{elapsed:.1f}s); raw INSERT of the same rows {raw_apply['per_second']:,} rows/s "
            f"(ratio {figures['ratio_to_raw']})"
        )
        results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        results["pipeline"] = figures
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
