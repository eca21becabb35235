"""What a crash-safe test cluster costs: commit latency with fsync off (the private cluster's
old setting) and on, and with synchronous_commit off on a crash-safe cluster (what the test
session's own database uses), in the same run (written to benchmarks/results/durability.json).

Two private clusters are started from the system's binaries in a temporary folder, on free
ports; each runs ``--commits`` single-row INSERT transactions (autocommit, one connection,
what an outbox write or a front-door accept pays per call) and ``--bulk`` transactions of 500
rows. Both are stopped and removed at the end.

    .venv/bin/python -m benchmarks.runtime.bench_durability [--commits 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import psycopg

from svod_cli.postgres import PrivateCluster, find_bindir
from svod_cli.suite import TOP, free_ports
from svod_runtime.db import libpq_url


def _commits(url: str, synchronous_commit: str, commits: int, rows: int) -> float:
    """Milliseconds per transaction of ``rows`` rows, median of three rounds."""
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute(f"SET synchronous_commit = {synchronous_commit}")
        conn.execute("CREATE TABLE IF NOT EXISTS bench (id bigserial, v text)")
        rounds = []
        for _ in range(3):
            started = time.perf_counter()
            for _ in range(commits):
                if rows == 1:
                    conn.execute("INSERT INTO bench (v) VALUES ('x')")
                else:
                    with conn.transaction():
                        conn.execute(
                            "INSERT INTO bench (v) SELECT 'x' FROM generate_series(1, %s)",
                            (rows,),
                        )
            rounds.append((time.perf_counter() - started) / commits * 1000)
        return statistics.median(rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=2000)
    parser.add_argument("--bulk", type=int, default=200)
    args = parser.parse_args()
    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("no PostgreSQL binaries")
    top = Path(tempfile.mkdtemp(prefix="svod-durability-"))
    top.chmod(0o755)  # the clusters run as the postgres user when we are root
    clusters = {
        fsync: PrivateCluster(top / f"fsync-{fsync}", bindir, port, settings={"fsync": fsync})
        for fsync, port in zip(("off", "on"), free_ports(2), strict=True)
    }
    results = []
    try:
        for cluster in clusters.values():
            cluster.start()
        for fsync, synchronous_commit in (("off", "on"), ("on", "on"), ("on", "off")):
            url = clusters[fsync].url
            single = _commits(url, synchronous_commit, args.commits, 1)
            bulk = _commits(url, synchronous_commit, args.bulk, 500)
            results.append(
                {
                    "fsync": fsync,
                    "synchronous_commit": synchronous_commit,
                    "ms_per_single_row_commit": round(single, 3),
                    "ms_per_500_row_commit": round(bulk, 3),
                }
            )
            print(
                f"fsync={fsync:<3} synchronous_commit={synchronous_commit:<3} "
                f"{single:7.3f} ms per 1-row commit  {bulk:7.3f} ms per 500-row commit"
            )
    finally:
        for cluster in clusters.values():
            cluster.stop()
        shutil.rmtree(top, ignore_errors=True)
    out = TOP / "benchmarks" / "results" / "durability.json"
    out.write_text(
        json.dumps(
            {
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "load_average_1m": os.getloadavg()[0],
                },
                "commits": args.commits,
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
