"""Runs every benchmark in turn (``make bench``); each prints its figures beside a raw
baseline measured in the same run and writes them to benchmarks/results/.

    python -m benchmarks.run_all            # the issues' scales (1M profiles, ...): long
    python -m benchmarks.run_all --quick    # small scales, a few minutes
    python -m benchmarks.run_all --only profile quality
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

FULL: dict[str, list[list[str]]] = {
    "quality": [
        ["benchmarks.quality.standardize_bench"],
        ["benchmarks.quality.rpc_bench"],
    ],
    "profile": [["benchmarks.profile.bench_profile", "--profiles", "1000000"]],
    "identity": [
        ["benchmarks.identity.bench_accuracy", "--seeds", "101", "202", "--persons", "3000"],
        ["benchmarks.identity.bench_speed", "--customers", "1000000"],
        ["benchmarks.identity.bench_bulk", "--records", "1000000"],
        ["benchmarks.identity.bench_reresolve", "--records", "200000"],
    ],
    "segmentation": [
        ["benchmarks.segmentation.recompute", "--customers", "1000000"],
        ["benchmarks.segmentation.latency", "--rate", "1000"],
    ],
    "lookalike": [["benchmarks.lookalike.measure", "--customers", "20000"]],
    "runtime": [["benchmarks.runtime.bench_metrics"]],
    "pipeline": [["benchmarks.pipeline.bench", "--customers", "1000000"]],
    "import": [["benchmarks.cli_import.bench_import", "--records", "20000", "--rounds", "3"]],
}
QUICK: dict[str, list[list[str]]] = {
    "quality": [
        ["benchmarks.quality.standardize_bench", "--records", "20000"],
        ["benchmarks.quality.rpc_bench", "--records", "20000"],
    ],
    "profile": [["benchmarks.profile.bench_profile", "--profiles", "50000", "--events", "3000"]],
    "identity": [
        ["benchmarks.identity.bench_accuracy", "--seeds", "101", "--persons", "1000"],
        ["benchmarks.identity.bench_speed", "--customers", "50000"],
        ["benchmarks.identity.bench_bulk", "--records", "20000", "--online-persons", "1000"],
        ["benchmarks.identity.bench_reresolve", "--records", "20000"],
    ],
    "segmentation": [
        ["benchmarks.segmentation.recompute", "--customers", "20000"],
        ["benchmarks.segmentation.latency", "--rate", "200", "--seconds", "10"],
    ],
    "lookalike": [["benchmarks.lookalike.measure", "--customers", "5000"]],
    "runtime": [["benchmarks.runtime.bench_metrics", "--calls", "20000"]],
    "pipeline": [["benchmarks.pipeline.bench", "--quick"]],
    "import": [["benchmarks.cli_import.bench_import", "--records", "20000"]],
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.run_all")
    parser.add_argument("--quick", action="store_true", help="small scales")
    parser.add_argument("--only", nargs="*", choices=sorted(FULL), help="some areas only")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    failed = []
    for area in args.only or list(plan):
        for command in plan[area]:
            print(f"\n=== {' '.join(command)}", flush=True)
            started = time.monotonic()
            code = subprocess.call([sys.executable, "-m", *command])
            print(f"=== exit {code} after {time.monotonic() - started:.0f}s", flush=True)
            if code != 0:
                failed.append(" ".join(command))
    if failed:
        print("failed: " + "; ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
