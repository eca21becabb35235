"""What metrics cost on a request's path, beside what the same request already pays for its
server span, measured in the same run (written to benchmarks/results/metrics.json).

Per call the interceptor records one histogram value (RpcMetrics.finished: the method and
status attributes are built once and looked up); the raw baseline is opening and ending the
call's server span with its attributes, as the interceptor does for every call anyway. Per
database checkout the pool counts it, and records only waits of 0.5 ms or more; the baseline
is one histogram record, which every checkout would otherwise pay.

    .venv/bin/python -m benchmarks.runtime.bench_metrics
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable

import grpc
from opentelemetry.sdk.resources import Resource

from svod_cli.suite import TOP
from svod_runtime.metrics import ServiceMetrics
from svod_runtime.pool_metrics import WAIT_THRESHOLD_S
from svod_runtime.telemetry import Telemetry

RESULTS = TOP / "benchmarks" / "results" / "metrics.json"
METHODS = [f"/svod.profile.v1.ProfileService/Method{i}" for i in range(12)]
CODES = [grpc.StatusCode.OK, grpc.StatusCode.OK, grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND]


def per_call_us(work: Callable[[int], None], calls: int) -> float:
    started = time.perf_counter()
    for i in range(calls):
        work(i)
    return (time.perf_counter() - started) / calls * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)

    metrics = ServiceMetrics("bench", Resource.create({"service.name": "bench"}))
    tracer = Telemetry("bench-spans").tracer
    pool_wait = metrics.meter.create_histogram("bench.wait", unit="s")
    pool_attributes = {"db.client.connection.pool.name": "bench"}
    checkouts = [0]

    def record_call(i: int) -> None:
        metrics.rpc.finished(METHODS[i % 12], CODES[i % 4], 0.0012)

    def server_span(i: int) -> None:
        method = METHODS[i % 12]
        service, _, name = method.lstrip("/").partition("/")
        with tracer.start_as_current_span(
            method, attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}
        ) as span:
            span.set_attribute("rpc.grpc.status_code", 0)

    fast_checkout_s = 0.00002

    def checkout_counted(i: int) -> None:  # what TimedQueuePool's observer does for a fast one
        checkouts[0] += 1
        if fast_checkout_s >= WAIT_THRESHOLD_S:
            pool_wait.record(fast_checkout_s, pool_attributes)

    def checkout_recorded(i: int) -> None:
        pool_wait.record(fast_checkout_s, pool_attributes)

    figures: dict[str, list[float]] = {k: [] for k in ("rpc", "span", "counted", "recorded")}
    for _ in range(args.rounds):  # interleaved, so both meet the machine's load alike
        figures["rpc"].append(per_call_us(record_call, args.calls))
        figures["span"].append(per_call_us(server_span, args.calls))
        figures["counted"].append(per_call_us(checkout_counted, args.calls))
        figures["recorded"].append(per_call_us(checkout_recorded, args.calls))
    median = {k: round(statistics.median(v), 2) for k, v in figures.items()}
    print(f"RPC metric per call         {median['rpc']:6.2f} us")
    print(
        f"raw: the call's server span {median['span']:6.2f} us  (metric/span "
        f"{median['rpc'] / median['span']:.2f})"
    )
    print(f"pool checkout, counted      {median['counted']:6.2f} us")
    print(f"raw: a histogram record     {median['recorded']:6.2f} us")
    results = {
        "machine": f"{platform.machine()} {platform.python_version()}",
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "calls_per_round": args.calls,
        "rounds": args.rounds,
        "rpc_metric_us_per_call": median["rpc"],
        "raw_server_span_us_per_call": median["span"],
        "pool_checkout_counted_us": median["counted"],
        "raw_histogram_record_us": median["recorded"],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {RESULTS.relative_to(TOP)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
