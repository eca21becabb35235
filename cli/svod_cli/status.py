"""``svod status``: the suite at a glance.

For each service: its health (gRPC health checking), calls per second and errors per second
over a short window, its outbox backlog (messages waiting, age of the oldest), dead letters,
and how long its event loop was held at most in the window (``loop held``: the bucket of the
longest sampled lag, ``svod_runtime_event_loop_lag_seconds``; a service whose loop is held
answers single calls slowly whatever their own work).
The figures come from each service's Prometheus endpoint (``SVOD_<SERVICE>_METRICS_TARGET``,
else the gRPC target's host at ``SVOD_<SERVICE>_METRICS_PORT``); without it only health shows.
Exit code 0 when every service is SERVING, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from svod_cli.common import EXIT_OK, EXIT_REFUSED, add_json_flag, channel, print_json, print_table
from svod_cli.common import target as grpc_target
from svod_runtime.config import SERVICES, metrics_port_of

RPC_COUNT = "rpc_server_call_duration_seconds_count"
LOOP_LAG_BUCKET = "svod_runtime_event_loop_lag_seconds_bucket"
# (metric, label of the series) -> sample value
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def metrics_target(service: str) -> str | None:
    """host:port of a service's Prometheus endpoint, or None when it has none."""
    explicit = os.environ.get(f"SVOD_{service.upper()}_METRICS_TARGET")
    if explicit:
        return explicit
    port = metrics_port_of(service)
    if not port:
        return None
    host = grpc_target(service).rsplit(":", 1)[0]
    return f"{host}:{port}"


def scrape(address: str, timeout_s: float = 2.0) -> Samples | None:
    """Every sample of one Prometheus endpoint, or None when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=timeout_s) as reply:
            text = reply.read().decode("utf-8")
    except (urllib.error.URLError, OSError, ValueError):
        return None
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(samples: Samples, name: str, **where: str) -> float:
    """Sum of a metric's series whose labels match ``where``."""
    return sum(
        value
        for (metric, labels), value in samples.items()
        if metric == name and all(dict(labels).get(k) == v for k, v in where.items())
    )


def _errors(samples: Samples) -> float:
    return sum(
        value
        for (metric, labels), value in samples.items()
        if metric == RPC_COUNT and dict(labels).get("rpc_response_status_code") != "OK"
    )


def longest_loop_lag(before: Samples, after: Samples) -> float | None:
    """The upper bound of the bucket holding the longest event-loop lag sampled between two
    scrapes (``inf`` past the last bucket), or None when no lag was sampled meanwhile."""
    grown = sorted(
        (float(dict(labels)["le"]), value - before.get((metric, labels), 0.0))
        for (metric, labels), value in after.items()
        if metric == LOOP_LAG_BUCKET
    )
    if not grown or grown[-1][1] <= 0:
        return None
    # Buckets count every sample at or under their bound: the longest lag is in the first
    # bucket that holds all of the window's samples.
    return next(bound for bound, count in grown if count >= grown[-1][1])


def _oldest(samples: Samples) -> float:
    ages = [v for (m, _), v in samples.items() if m == "svod_outbox_oldest_age_seconds"]
    return max(ages, default=0.0)


@dataclass
class ServiceStatus:
    service: str
    target: str
    health: str
    calls_per_s: float | None = None
    errors_per_s: float | None = None
    outbox_depth: float | None = None
    outbox_oldest_s: float | None = None
    dead_letters: float | None = None
    loop_held_max_s: float | None = None


def health_of(service: str) -> str:
    with channel(service, retries=False) as open_channel:
        try:
            reply = health_pb2_grpc.HealthStub(open_channel).Check(
                health_pb2.HealthCheckRequest(), timeout=2
            )
        except grpc.RpcError as error:
            return f"unreachable ({error.code().name})"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def gather(window_s: float) -> list[ServiceStatus]:
    """Health of every service, and two scrapes of each endpoint ``window_s`` apart."""
    addresses = {s: metrics_target(s) for s in SERVICES}

    def scrape_all() -> dict[str, Samples | None]:
        with ThreadPoolExecutor(len(SERVICES)) as pool:
            found = pool.map(
                lambda s: scrape(address) if (address := addresses[s]) else None, SERVICES
            )
            return dict(zip(SERVICES, found, strict=True))

    first = scrape_all()
    started = time.monotonic()
    with ThreadPoolExecutor(len(SERVICES)) as pool:
        health = dict(zip(SERVICES, pool.map(health_of, SERVICES), strict=True))
    time.sleep(max(0.0, window_s - (time.monotonic() - started)))
    second = scrape_all()
    elapsed = max(window_s, 1e-3)
    statuses = []
    for service in SERVICES:
        status = ServiceStatus(service, grpc_target(service), health[service])
        before, after = first[service], second[service]
        if before is not None and after is not None:
            status.calls_per_s = (total(after, RPC_COUNT) - total(before, RPC_COUNT)) / elapsed
            status.errors_per_s = (_errors(after) - _errors(before)) / elapsed
            status.outbox_depth = total(after, "svod_outbox_depth")
            status.outbox_oldest_s = _oldest(after)
            status.dead_letters = total(after, "svod_outbox_dead_letters")
            status.loop_held_max_s = longest_loop_lag(before, after)
        statuses.append(status)
    return statuses


def _figure(value: float | None, fmt: str = "{:,.0f}") -> str:
    return "-" if value is None else fmt.format(value)


def _held(bound: float | None) -> str:
    """A bucket's bound as the table shows it: "<= 2.5 ms", "<= 1 s", "> 5 s"."""
    if bound is None:
        return "-"
    if bound == float("inf"):
        # The services' last bucket (svod_runtime.metrics.LOOP_LAG_BUCKETS_S, pinned by a
        # test): not imported here, every `svod` command would load the metrics module.
        return "> 5 s"
    return f"<= {bound * 1000:g} ms" if bound < 1 else f"<= {bound:g} s"


# How ``--json`` writes a lag past the histogram's last bucket: Prometheus' own name for the
# bound. ``json.dumps`` would write the float as ``Infinity``, which strict JSON readers
# (jq, Go's encoding/json, JSON.parse) refuse.
PAST_LAST_BUCKET = "+Inf"


def status_json(status: ServiceStatus) -> dict[str, object]:
    """One service's row for ``--json``: strict JSON, every figure a number or null, but a
    loop held past the last bucket, written ``"+Inf"``."""
    row: dict[str, object] = asdict(status)
    if status.loop_held_max_s == float("inf"):
        row["loop_held_max_s"] = PAST_LAST_BUCKET
    return row


def cmd_status(args: argparse.Namespace) -> int:
    statuses = gather(args.window)
    if args.json:
        print_json([status_json(s) for s in statuses])
    else:
        print_table(
            (
                "service",
                "target",
                "health",
                "calls/s",
                "errors/s",
                "backlog",
                "oldest",
                "dead letters",
                "loop held",
            ),
            [
                (
                    s.service,
                    s.target,
                    s.health,
                    _figure(s.calls_per_s, "{:,.1f}"),
                    _figure(s.errors_per_s, "{:,.1f}"),
                    _figure(s.outbox_depth),
                    _figure(s.outbox_oldest_s, "{:,.1f} s"),
                    _figure(s.dead_letters),
                    _held(s.loop_held_max_s),
                )
                for s in statuses
            ],
        )
        if all(s.calls_per_s is None for s in statuses):
            print("(no metrics endpoint answered: figures need SVOD_<SERVICE>_METRICS_PORT)")
    serving = all(s.health == "SERVING" for s in statuses)
    return EXIT_OK if serving else EXIT_REFUSED


def add_status_command(subparsers: argparse._SubParsersAction) -> None:
    status = subparsers.add_parser(
        "status", help="health, rates, relay backlogs and dead letters of each service"
    )
    status.add_argument(
        "--window", type=float, default=1.0, help="seconds over which rates are measured"
    )
    add_json_flag(status)
    status.set_defaults(func=cmd_status)
