"""Segmentation's CPU (its process and its database backends) per announced profile change.

    python -m benchmarks.segmentation.apply_cpu --customers 20000 --changes 20000 --events 10

The segmentation service runs as its own process on a fresh database holding the synthetic
read model (benchmarks.segmentation.data) of ``--customers`` profiles, with or without the
benchmark's 20 rule segments + RFM + ABC (``--segments``). Changes are sent as profile's outbox
relay announces them: ``--batch`` changes per ApplyProfileChanges call, one call after another.
Workloads:

- ``events``: a change that only applied events (metrics alone, as profile announces after
  ApplyEventBatch or an event import's fold), each with ``--events`` new order events;
- ``event_columns``: the same with the events in columns (new_event_columns), as profile
  sends them;
- ``profiles``: a whole profile (as after Identify or a customer import).

Printed per workload: CPU microseconds per change and per event of the segmentation process
(from /proc) and of its database backends (the role ``svod_segmentation``), with the machine's
load average. CPU per unit of work, not rates: the machine is shared.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import grpc
import psycopg
from google.protobuf.timestamp_pb2 import Timestamp
from google.type import date_pb2, money_pb2

from benchmarks.segmentation.data import fresh_database, load
from benchmarks.segmentation.latency import cpu_seconds, start_segmentation
from benchmarks.segmentation.segments import definitions
from svod.common.v1 import common_pb2
from svod.profile.v1 import profile_pb2
from svod.segmentation.v1 import segmentation_pb2 as pb
from svod.segmentation.v1 import segmentation_pb2_grpc
from svod_cli.suite import drop_database
from svod_runtime.db import libpq_url
from svod_segmentation.entrypoints.convert import segment_to_proto

RESULTS = Path(__file__).resolve().parents[1] / "results" / "segmentation_apply_cpu.json"


def stamp(at: dt.datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(at)
    return out


def rub(units: int) -> money_pb2.Money:
    return money_pb2.Money(currency_code="RUB", units=units)


def metrics(n: int, at: dt.datetime) -> profile_pb2.Metrics:
    return profile_pb2.Metrics(
        order_count=n,
        total_spent=rub(1500 * n),
        average_order_value=rub(1500),
        first_order_time=stamp(at - dt.timedelta(days=300)),
        last_order_time=stamp(at),
        last_contact_time=stamp(at),
        channels=["web"],
        items_bought=n,
    )


def order(n: int, k: int, at: dt.datetime) -> profile_pb2.TimelineEntry:
    return profile_pb2.TimelineEntry(
        event_type="order_placed",
        occurred_time=stamp(at - dt.timedelta(minutes=k)),
        source="shop",
        channel=common_pb2.SOURCE_CHANNEL_WEB,
        record_ref=common_pb2.RecordRef(source="shop", message_id=f"o-{n}-{k}"),
        amount=rub(1000 + k),
        discount=rub(0),
        order_id=f"o-{n}-{k}",
    )


def events_change(
    n: int, customer_id: str, version: int, events: int, at: dt.datetime
) -> pb.ApplyProfileChangeRequest:
    return pb.ApplyProfileChangeRequest(
        customer_id=customer_id,
        profile_version=version,
        metrics=metrics(version, at),
        profile_update_time=stamp(at),
        profile_create_time=stamp(at - dt.timedelta(days=400)),
        new_events=[order(n, k, at) for k in range(events)],
    )


def event_columns_change(
    n: int, customer_id: str, version: int, events: int, at: dt.datetime
) -> pb.ApplyProfileChangeRequest:
    """``events_change``'s change with its events in columns (new_event_columns), as the
    profile service sends them."""
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    micros = [
        (at - dt.timedelta(minutes=k) - epoch) // dt.timedelta(microseconds=1)
        for k in range(events)
    ]
    ids = [f"o-{n}-{k}" for k in range(events)]
    return pb.ApplyProfileChangeRequest(
        customer_id=customer_id,
        profile_version=version,
        metrics=metrics(version, at),
        profile_update_time=stamp(at),
        profile_create_time=stamp(at - dt.timedelta(days=400)),
        new_event_columns=pb.EventColumns(
            source=["shop"] * events,
            message_id=ids,
            event_type=["order_placed"] * events,
            occurred_time_micros=micros,
            channel=["web"] * events,
            amount=[str(1000 + k) for k in range(events)],
            discount=["0"] * events,
            categories=[""] * events,
            properties=[""] * events,
            reference_id=[""] * events,
            order_id=ids,
        ),
    )


def profile_change(
    n: int, customer_id: str, version: int, at: dt.datetime
) -> pb.ApplyProfileChangeRequest:
    profile = profile_pb2.Profile(
        customer_id=customer_id,
        first_name=profile_pb2.TraitValue(value="Мария"),
        last_name=profile_pb2.TraitValue(value="Смирнова"),
        gender=common_pb2.GENDER_FEMALE,
        birth_date=date_pb2.Date(year=1980 + n % 30, month=1 + n % 12, day=1 + n % 28),
        addresses=[common_pb2.PostalAddress(city="Москва", country_code="RU")],
        metrics=metrics(n % 5, at),
        sources=[profile_pb2.ProfileSource(source="crm")],
        attributes={"loyalty_tier": ("basic", "gold")[version % 2]},
        create_time=stamp(at - dt.timedelta(days=400)),
        update_time=stamp(at),
    )
    return pb.ApplyProfileChangeRequest(
        customer_id=customer_id, profile_version=version, profile=profile
    )


def backend_cpu(conn: psycopg.Connection[Any]) -> float:
    """CPU seconds so far of the service's database backends (its role, this database)."""
    pids = [
        r[0]
        for r in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND usename = 'svod_segmentation'"
        ).fetchall()
    ]
    total = 0.0
    for pid in pids:
        try:
            total += cpu_seconds(pid)
        except FileNotFoundError:
            continue
    return total


def run_workload(
    stub: segmentation_pb2_grpc.SegmentationServiceStub,
    requests: list[pb.ApplyProfileChangeRequest],
    batch: int,
    server_pid: int,
    admin: psycopg.Connection[Any],
) -> dict[str, Any]:
    calls = [requests[i : i + batch] for i in range(0, len(requests), batch)]
    load_start = os.getloadavg()
    backends0: dict[int, float] = {}
    # Backends by pid at the start, so one opened during the run counts from zero.
    for (pid,) in admin.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND usename = 'svod_segmentation'"
    ).fetchall():
        try:
            backends0[pid] = cpu_seconds(pid)
        except FileNotFoundError:
            continue
    cpu0 = cpu_seconds(server_pid)
    started = time.perf_counter()
    failed = 0
    for call in calls:
        reply = stub.ApplyProfileChanges(pb.ApplyProfileChangesRequest(changes=call), timeout=120)
        failed += sum(1 for r in reply.results if r.HasField("error"))
    elapsed = time.perf_counter() - started
    service = cpu_seconds(server_pid) - cpu0
    database = 0.0
    for (pid,) in admin.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND usename = 'svod_segmentation'"
    ).fetchall():
        try:
            database += cpu_seconds(pid) - backends0.get(pid, 0.0)
        except FileNotFoundError:
            continue
    changes = len(requests)
    events = sum(len(r.new_events) + len(r.new_event_columns.source) for r in requests)
    return {
        "changes": changes,
        "events": events,
        "failed": failed,
        "seconds": round(elapsed, 2),
        "service_us_per_change": round(service / changes * 1e6, 1),
        "database_us_per_change": round(database / changes * 1e6, 1),
        "service_us_per_event": round(service / events * 1e6, 1) if events else None,
        "database_us_per_event": round(database / events * 1e6, 1) if events else None,
        "load_average_at_start": [round(x, 1) for x in load_start],
        "load_average_at_end": [round(x, 1) for x in os.getloadavg()],
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.segmentation.apply_cpu")
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--changes", type=int, default=20_000, help="changes per workload")
    parser.add_argument("--events", type=int, default=10, help="new events per events change")
    parser.add_argument("--batch", type=int, default=500, help="changes per call")
    parser.add_argument("--segments", action="store_true", help="20 rule segments + RFM + ABC")
    parser.add_argument("--workloads", default="events,profiles")
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    admin_url, name, _db_url, urls = fresh_database()
    process = None
    figures: dict[str, Any] = {}
    try:
        load(urls["segmentation"], args.customers)
        with psycopg.connect(libpq_url(urls["segmentation"])) as conn:
            ids = [
                str(r[0])
                for r in conn.execute("SELECT customer_id FROM customers ORDER BY customer_id")
            ]
        port, process = start_segmentation(urls["segmentation"])
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = segmentation_pb2_grpc.SegmentationServiceStub(channel)
        if args.segments:
            for segment in definitions():
                stub.CreateSegment(
                    pb.CreateSegmentRequest(segment=segment_to_proto(segment)), timeout=300
                )
        at = dt.datetime.now(dt.UTC).replace(microsecond=0)
        admin = psycopg.connect(libpq_url(urls["segmentation"]), autocommit=True)
        version = 1_000
        print(
            f"{args.customers:,} customers, segments: {'22' if args.segments else 'none'}; "
            f"{args.changes:,} changes a workload, {args.batch} a call; load {os.getloadavg()}"
        )
        for workload in args.workloads.split(","):
            version += 1
            # Existing customers first, then (past the read model) customers not seen before.
            targets = [ids[n % len(ids)] for n in range(min(args.changes, len(ids)))]
            targets += [str(uuid.uuid4()) for _ in range(args.changes - len(targets))]
            if workload in ("events", "event_columns"):
                make = events_change if workload == "events" else event_columns_change
                requests = [
                    make(n + version * 1_000_000, c, version, args.events, at)
                    for n, c in enumerate(targets)
                ]
            else:
                requests = [profile_change(n, c, version, at) for n, c in enumerate(targets)]
            result = run_workload(stub, requests, args.batch, process.pid, admin)
            figures[workload if workload not in figures else f"{workload}_{len(figures)}"] = result
            print(
                f"{workload:>8}: {result['changes']:,} changes ({result['events']:,} events) "
                f"in {result['seconds']} s, failed {result['failed']}; CPU us per change: "
                f"service {result['service_us_per_change']}, database "
                f"{result['database_us_per_change']}; per event: service "
                f"{result['service_us_per_event']}, database {result['database_us_per_event']}; "
                f"load {result['load_average_at_start']} -> {result['load_average_at_end']}"
            )
        admin.close()
        channel.close()
    finally:
        if process is not None:
            process.terminate()
            process.wait(15)
        drop_database(admin_url, name)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    key = args.label or f"apply_{'segments' if args.segments else 'plain'}"
    results[key] = {
        **figures,
        "customers": args.customers,
        "segments": 22 if args.segments else 0,
        "batch": args.batch,
        "events_per_change": args.events,
        "measured_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
