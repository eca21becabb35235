"""Metrics of one service through the OpenTelemetry SDK: a Prometheus endpoint of its own
(``/metrics`` on ``SVOD_<SERVICE>_METRICS_PORT``) and OTLP export when
``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.

Each service gets its own meter provider and its own Prometheus registry (not the global
ones), so the five services of the in-process test suite still serve five separate
endpoints, as they do as processes. Names and units follow OpenTelemetry's conventions (the
RPC and database-client semantic conventions where they exist, ``svod.*`` otherwise); the
Prometheus exporter turns ``svod.outbox.depth`` into ``svod_outbox_depth`` and adds unit
suffixes (``_seconds``) and ``_total`` to counters. Every metric is listed in
``docs/operations.md``.

Gauges that need a query (outbox depth, review queue) are *polled*: an async job per gauge
refreshes its values every ``SVOD_METRICS_POLL_S`` seconds (default 15; those that read a
whole table every ``SVOD_METRICS_SLOW_POLL_S``, default 300) and the scrape reads the last
values, so scrapes never touch the database and hot paths never pay for gauges.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIServer

import grpc
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, start_http_server

log = logging.getLogger(__name__)

# Seconds; from a cached read (sub-millisecond) to a bulk import's stream (minutes).
DURATION_BUCKETS_S = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    120.0,
)
# Seconds a ready task waited for the event loop: from an idle loop to a stalled process.
LOOP_LAG_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# How often the loop's lag is sampled: four wake-ups a second cost nothing measurable, and a
# stretch of a quarter of a second or more is always caught.
LOOP_LAG_INTERVAL_S = 0.25
# Calls that are not the API's work: probes and tooling would drown the rates.
_UNMEASURED_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")

Labels = tuple[tuple[str, str], ...]


class PolledGauge:
    """An observable gauge whose values an async poller sets; a scrape reads the last ones.

    A series seen once keeps being reported (at 0 when a poll no longer returns it), so an
    outbox topic that drained shows 0 rather than vanishing."""

    def __init__(self, meter: Meter, name: str, unit: str, description: str) -> None:
        self.name = name
        self._values: dict[Labels, float] = {}
        meter.create_observable_gauge(
            name, callbacks=[self._observe], unit=unit, description=description
        )

    def set(self, values: Mapping[Labels, float]) -> None:
        fresh = dict.fromkeys(self._values, 0.0)
        fresh.update(values)
        self._values = fresh

    def value(self, labels: Labels = ()) -> float:
        return self._values.get(labels, 0.0)

    def _observe(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(value, dict(labels)) for labels, value in self._values.items()]


@dataclass
class _Poller:
    name: str
    poll: Callable[[], Awaitable[None]]


class RpcMetrics:
    """``rpc.server.call.duration`` (OpenTelemetry RPC semantic conventions): one histogram
    whose count gives the rate and, by ``rpc.response.status_code``, the errors."""

    def __init__(self, meter: Meter) -> None:
        self._duration = meter.create_histogram(
            "rpc.server.call.duration",
            unit="s",
            description="Duration of incoming RPCs, by method and status code",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS_S,
        )
        # The attributes of each (method, code), built once: a call pays one dict look-up.
        self._attributes: dict[tuple[str, grpc.StatusCode], dict[str, str]] = {}

    def finished(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        if method.startswith(_UNMEASURED_PREFIXES):
            return
        key = (method, code)
        attributes = self._attributes.get(key)
        if attributes is None:
            attributes = self._attributes[key] = {
                "rpc.system.name": "grpc",
                "rpc.method": method.lstrip("/"),
                "rpc.response.status_code": code.name,
            }
        self._duration.record(seconds, attributes)


class LoopLag:
    """``svod.runtime.event_loop.lag``: how late a task that asked to wake up got its turn.

    A service runs on one event loop: while a stretch of Python runs (a batch converted, rows
    decoded, a garbage collection), every call that is ready - a GetProfile's answer from
    Postgres, a health check - waits for it. Under a pipeline import such stretches reached
    15-58 ms in profile, identity and segmentation (docs/performance.md, "Long stretches"),
    which is where the interactive calls' p99 went. A task sleeps ``interval_s`` and records
    how much later than that it woke: sampled, so the histogram's upper buckets show how
    long the stretches are and how often a call meets one."""

    def __init__(
        self,
        meter: Meter,
        interval_s: float = LOOP_LAG_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._lag = meter.create_histogram(
            "svod.runtime.event_loop.lag",
            unit="s",
            description="How late a task woken on time got the event loop (sampled)",
            explicit_bucket_boundaries_advisory=LOOP_LAG_BUCKETS_S,
        )

    async def run(self) -> None:
        while True:
            started = self._clock()
            await asyncio.sleep(self.interval_s)
            self._lag.record(max(0.0, self._clock() - started - self.interval_s))


class ServiceMetrics:
    """One service's meter provider, its Prometheus endpoint and its polled gauges."""

    def __init__(
        self,
        service: str,
        resource: Resource,
        *,
        otlp_endpoint: str | None = None,
        otlp_interval_s: float = 60.0,
        poll_s: float = 15.0,
        slow_poll_s: float = 300.0,
    ) -> None:
        self.service = service
        self.poll_s = poll_s
        # For gauges whose query reads a whole table (identifiers per customer).
        self.slow_poll_s = slow_poll_s
        self.registry = CollectorRegistry()
        readers: list[MetricReader] = [
            PrometheusMetricReader(scope_info_enabled=False, registry=self.registry)
        ]
        if otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
                OTLPMetricExporter,
            )

            readers.append(
                PeriodicExportingMetricReader(
                    OTLPMetricExporter(endpoint=otlp_endpoint),
                    export_interval_millis=otlp_interval_s * 1000,
                )
            )
        # Exemplars only where they can leave the process: Prometheus' text exposition carries
        # none, and sampling them (trace-based, the SDK's default) cost 11-44 us on a counter's
        # add and a histogram's record inside a span (probe at load 15, 100,000 of each: 46-81
        # against 35-37 us) and drew from the random module's global state (see own_random).
        exemplars = None if otlp_endpoint else AlwaysOffExemplarFilter()
        self.provider = MeterProvider(
            resource=resource, metric_readers=readers, exemplar_filter=exemplars
        )
        # OTEL_SDK_DISABLED (the chart sets it when traces are off) switches off tracing: the
        # /metrics endpoint is Svod's own, switched by SVOD_<SERVICE>_METRICS_PORT. The SDK's
        # meter provider reads the variable too; libs/tests/test_metrics.py holds it to this.
        if getattr(self.provider, "_disabled", False):
            self.provider._disabled = False
        self.meter = self.provider.get_meter(f"svod.{service}")
        self.rpc = RpcMetrics(self.meter)
        self.loop_lag = LoopLag(self.meter)
        self._pollers: list[_Poller] = []
        self._server: WSGIServer | None = None
        self._server_thread: threading.Thread | None = None

    def observe_serving(self, is_serving: Callable[[], bool]) -> None:
        """``svod.service.serving``: 1 while the health check says SERVING, else 0."""

        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(1 if is_serving() else 0)]

        self.meter.create_observable_gauge(
            "svod.service.serving",
            callbacks=[observe],
            unit="1",
            description="1 while the service reports SERVING (its database answers), else 0",
        )

    # -- polled gauges ------------------------------------------------------------------------

    def polled_gauge(self, name: str, unit: str, description: str) -> PolledGauge:
        return PolledGauge(self.meter, name, unit, description)

    def add_poller(self, name: str, poll: Callable[[], Awaitable[None]]) -> None:
        """``poll`` refreshes some polled gauges; it runs every ``poll_s`` while serving."""
        self._pollers.append(_Poller(name, poll))

    async def poll_once(self) -> None:
        for poller in self._pollers:
            try:
                await poller.poll()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - a gauge keeps its last values
                log.debug("metrics poller %s failed: %r", poller.name, error)

    async def run_pollers(self) -> None:
        while True:
            started = time.monotonic()
            await self.poll_once()
            await asyncio.sleep(max(0.05, self.poll_s - (time.monotonic() - started)))

    # -- endpoint -----------------------------------------------------------------------------

    def serve(self, host: str, port: int) -> int:
        """Starts the Prometheus endpoint (a thread of its own); returns the bound port."""
        server, thread = start_http_server(port, addr=host or "0.0.0.0", registry=self.registry)
        self._server, self._server_thread = server, thread
        return int(server.server_port)

    def shutdown(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.provider.shutdown()


def labels(**values: Any) -> Labels:
    """A polled gauge's series key from attribute names with dots written as ``__``:
    ``labels(topic="record.identify")``."""
    return tuple((name.replace("__", "."), str(value)) for name, value in values.items())
