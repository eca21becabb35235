"""Which engine for the set-based steps of identity's batch engine: Postgres, DuckDB or Polars.

The step measured is candidate generation with online's rules over a whole import: the records'
blocking keys (``blocking_keys``, derived here from generated records, or read from a Parquet
file of (rec, key)) self-joined within each key's block, a later record meeting the earlier
members of blocks that had at most 50 of them when it came, then meta-blocking
(``domain/candidates.py``: two keys in common, a contact key, or a block of at most 20). Each
engine runs the same query on the same keys in this process's machine, one after another;
time (wall and this process's CPU) and the candidate pairs it found are printed and written
to benchmarks/results/identity_engine_choice.json.

    .venv/bin/python -m benchmarks.identity.bench_engine_choice --records 1000000
    .venv/bin/python -m benchmarks.identity.bench_engine_choice --keys keys.parquet
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from svod_cli.postgres import ensure_postgres
from svod_cli.suite import TOP, create_database, drop_database
from svod_runtime.db import libpq_url

RESULTS = TOP / "benchmarks" / "results" / "identity_engine_choice.json"

SQL = """
WITH ranked AS (
    SELECT rec, key, row_number() OVER (PARTITION BY key ORDER BY rec) - 1 AS earlier,
           left(key, 2) IN ('p:', 'e:', 'c:') AS contact
    FROM keys
), pairs AS (
    SELECT b.rec AS i, a.rec AS j, b.earlier AS size, b.contact
    FROM ranked a JOIN ranked b ON a.key = b.key AND a.earlier < b.earlier
    WHERE b.earlier <= 50
)
SELECT count(*) FROM (
    SELECT i, j FROM pairs GROUP BY i, j
    HAVING count(*) >= 2 OR min(size) <= 20 OR bool_or(contact)
) worth
"""


def derive_keys(records: int, seed: int) -> tuple[list[int], list[str]]:
    import datetime as dt

    from benchmarks.identity.datasets import generator_request
    from benchmarks.identity.generator import generate
    from svod_identity.domain.engine import person_from
    from svod_identity.domain.matching.blocking import blocking_keys
    from svod_identity.domain.records import build_record
    from svod_identity.entrypoints.grpc_servicer import raw_record

    now = dt.datetime.now(dt.UTC)
    recs: list[int] = []
    keys: list[str] = []
    for index, message in enumerate(generate(round(records / 3.15), seed)):
        record = build_record(raw_record(generator_request(message)), now)
        person = person_from(str(index), record.attributes, record.identifiers)
        for key in blocking_keys(person):
            recs.append(index)
            keys.append(key)
    return recs, keys


def duckdb_engine(recs: list[int], keys: list[str]) -> int:
    import duckdb
    import pyarrow as pa

    table = pa.table({"rec": recs, "key": keys})
    with duckdb.connect() as conn:
        conn.register("keys", table)
        return int(conn.execute(SQL).fetchone()[0])


def polars_engine(recs: list[int], keys: list[str]) -> int:
    import polars as pl

    ranked = (
        pl.DataFrame({"rec": recs, "key": keys})
        .lazy()
        .sort("rec")
        .with_columns(
            (pl.col("rec").cum_count().over("key") - 1).alias("earlier"),
            pl.col("key").str.slice(0, 2).is_in(["p:", "e:", "c:"]).alias("contact"),
        )
    )
    later = ranked.filter(pl.col("earlier") <= 50)
    pairs = (
        later.join(ranked.select("key", "rec", "earlier"), on="key", suffix="_j")
        .filter(pl.col("earlier_j") < pl.col("earlier"))
        .group_by("rec", "rec_j")
        .agg(
            pl.len().alias("n"),
            pl.col("earlier").min().alias("size"),
            pl.col("contact").any().alias("contact"),
        )
        .filter((pl.col("n") >= 2) | (pl.col("size") <= 20) | pl.col("contact"))
    )
    return int(pairs.select(pl.len()).collect().item())


def postgres_engine(admin: str) -> Callable[[list[int], list[str]], int]:
    def run(recs: list[int], keys: list[str]) -> int:
        name = f"svod_bench_engine_{os.getpid()}"
        url = create_database(admin, name)
        try:
            with psycopg.connect(libpq_url(url), autocommit=True) as conn:
                conn.execute("SET jit = off")
                conn.execute("CREATE UNLOGGED TABLE keys (rec int, key text)")
                with conn.cursor() as cur, cur.copy("COPY keys (rec, key) FROM STDIN") as copy:
                    for row in zip(recs, keys, strict=True):
                        copy.write_row(row)
                conn.execute("ANALYZE keys")
                return int(conn.execute(SQL).fetchone()[0])
        finally:
            drop_database(admin, name)

    return run


def measure(name: str, run: Callable[[list[int], list[str]], int], recs, keys) -> dict[str, Any]:
    cpu, wall = time.process_time(), time.perf_counter()
    pairs = run(recs, keys)
    result = {
        "engine": name,
        "pairs": pairs,
        "wall_s": round(time.perf_counter() - wall, 1),
        "this_process_cpu_s": round(time.process_time() - cpu, 1),
        "peak_rss_mib_so_far": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(result), flush=True)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.identity.bench_engine_choice")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=2027)
    parser.add_argument("--keys", help="a Parquet file of (rec, key) instead of deriving them")
    args = parser.parse_args(argv)
    if args.keys:
        import pyarrow.parquet as pq

        table = pq.read_table(args.keys)
        recs, keys = table.column("rec").to_pylist(), table.column("key").to_pylist()
    else:
        recs, keys = derive_keys(args.records, args.seed)
    admin, cluster = ensure_postgres(TOP)
    try:
        runs = [
            measure("duckdb", duckdb_engine, recs, keys),
            measure("polars", polars_engine, recs, keys),
            # Postgres does its work in its own backend: its time is the wall clock.
            measure("postgres", postgres_engine(admin), recs, keys),
        ]
    finally:
        if cluster is not None:
            cluster.stop()
    report = {"records": len(set(recs)), "key_rows": len(keys), "runs": runs}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
