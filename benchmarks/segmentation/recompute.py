"""Full recompute of 20 rule segments + RFM + ABC over N profiles, beside raw SQL.

    python -m benchmarks.segmentation.recompute --customers 100000

"Raw SQL" is the floor for the same work: for every segment, one plain
``SELECT count(*)`` with the same predicates (and, for RFM/ABC, the same cut-off queries),
without diffing against stored memberships or writing members and their history (server
defaults). "One pass" counts every predicate in one statement over one shared aggregate of
the events with JIT off, which is how the service evaluates them.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import time
from pathlib import Path

from sqlalchemy import text

from benchmarks.segmentation.data import fresh_database, load
from benchmarks.segmentation.segments import definitions
from svod_cli.suite import drop_database
from svod_runtime.db import create_engine
from svod_segmentation.adapters.rule_sql import RuleCompiler, SqlBuilder
from svod_segmentation.adapters.storage import SegmentationStore
from svod_segmentation.service_layer.use_cases import SegmentationService

RESULTS = Path(__file__).resolve().parents[1] / "results" / "segmentation.json"


async def raw_sql(engine, service: SegmentationService) -> float:
    """Same predicates, plain counts, no membership writes."""
    now = dt.datetime.now(dt.UTC)
    async with service.store.transaction() as tx:
        segments = await tx.load_segments()
    started = time.perf_counter()
    async with engine.connect() as conn:
        for segment_id, segment in segments.items():
            if segment.definition.builtin:
                await tx_state(conn, service, segment, segments, now)
            builder = SqlBuilder()
            compiled = RuleCompiler(segments, builder).segment(segment_id)
            await conn.execute(
                text(
                    f"SELECT count(*) FROM customers c {builder.aggregate_join()} "
                    f"WHERE c.merged_into IS NULL AND {compiled.predicate}"
                ),
                {**builder.params, "now": now},
            )
    return time.perf_counter() - started


async def raw_sql_one_pass(engine, service: SegmentationService) -> float:
    """The floor of the service's way: every predicate counted in one statement over one
    shared aggregate of the events (JIT off, as the service runs it), no writes."""
    now = dt.datetime.now(dt.UTC)
    async with service.store.transaction() as tx:
        segments = await tx.load_segments()
    started = time.perf_counter()
    async with engine.connect() as conn:
        await conn.execute(text("SET jit = off"))
        for segment in segments.values():
            if segment.definition.builtin:
                await tx_state(conn, service, segment, segments, now)
        builder = SqlBuilder()
        compiler = RuleCompiler(segments, builder)
        counts = ", ".join(
            f"count(*) FILTER (WHERE {compiler.segment(s).predicate})" for s in segments
        )
        await conn.execute(
            text(
                f"SELECT {counts} FROM customers c {builder.aggregate_join()} "
                "WHERE c.merged_into IS NULL"
            ),
            {**builder.params, "now": now},
        )
    return time.perf_counter() - started


async def tx_state(conn, service, segment, segments, now) -> None:
    from svod_segmentation.adapters.storage import SegmentationTransaction

    await SegmentationTransaction(conn).builtin_state(segment, segments, now)


async def run(service_url: str) -> dict[str, float]:
    engine = create_engine(service_url, pool_size=2)
    service = SegmentationService(SegmentationStore(engine))
    try:
        started = time.perf_counter()
        for segment in definitions():
            await service.create_segment(segment)
        initial = time.perf_counter() - started
        outcome = await service.recompute([])
        raw = await raw_sql(engine, service)
        raw_one_pass = await raw_sql_one_pass(engine, service)
        async with engine.connect() as conn:
            members = (await conn.execute(text("SELECT count(*) FROM memberships"))).scalar_one()
        return {
            "initial_build_s": round(initial, 2),
            "full_recompute_s": round(outcome.seconds, 2),
            "full_recompute_changes": outcome.entered + outcome.exited,
            "raw_sql_s": round(raw, 2),
            "raw_sql_one_pass_s": round(raw_one_pass, 2),
            "memberships": int(members),
        }
    finally:
        await engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()
    admin_url, name, _db_url, urls = fresh_database()
    try:
        loaded = load(urls["segmentation"], args.customers)
        print(
            f"loaded {loaded['customers']:,} customers, {loaded['events']:,} events "
            f"({sum(v for k, v in loaded.items() if k.startswith('load_')):.1f}s)"
        )
        figures = asyncio.run(run(urls["segmentation"]))
    finally:
        if not args.keep:
            drop_database(admin_url, name)
    print(
        f"20 rule segments + RFM + ABC over {args.customers:,} profiles: "
        f"initial build {figures['initial_build_s']:.2f}s, "
        f"full recompute {figures['full_recompute_s']:.2f}s "
        f"(raw SQL, same predicates, no writes: {figures['raw_sql_s']:.2f}s one statement per "
        f"segment, {figures['raw_sql_one_pass_s']:.2f}s all in one pass with JIT off); "
        f"{figures['memberships']:,} memberships"
    )
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[f"recompute_{args.customers}"] = {
        **loaded,
        **figures,
        "measured_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
