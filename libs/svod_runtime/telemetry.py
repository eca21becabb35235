"""OpenTelemetry for one service: its own tracer provider, meter provider (see
svod_runtime.metrics), gRPC client and database instrumentation (server spans are opened by
svod_runtime.interceptors).

Each service gets its own providers (not the global ones) so that several services can run in
one process — as they do in the test suite — and still report under their own
``service.name``. Context propagation (W3C trace context) is the global one, shared by all.

Spans go to OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, and to a JSON-lines file when
``SVOD_TRACES_FILE`` is (``svod trace show`` reads it; see svod_runtime.trace_file). Database
statements get spans only inside a trace (a request's or a delivery's): the background polls
of idle relays, sweepers and health checks would otherwise start a dozen traces a second.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.instrumentation.grpc import aio_client_interceptors
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.util.types import Attributes
from sqlalchemy.ext.asyncio import AsyncEngine

from svod_runtime.config import ServiceConfig
from svod_runtime.db import trace_direct_statements
from svod_runtime.metrics import ServiceMetrics
from svod_runtime.own_random import own_random
from svod_runtime.pool_metrics import observe_pool

log = logging.getLogger(__name__)


class OwnRandomIdGenerator(IdGenerator):
    """OpenTelemetry's random trace and span ids, drawn from a generator of their own.

    The SDK's default draws from the random module's global state (see own_random).
    """

    def __init__(self) -> None:
        self._random = own_random()

    def generate_span_id(self) -> int:
        span_id = 0
        while span_id == trace.INVALID_SPAN_ID:
            span_id = self._random.getrandbits(64)
        return span_id

    def generate_trace_id(self) -> int:
        trace_id = 0
        while trace_id == trace.INVALID_TRACE_ID:
            trace_id = self._random.getrandbits(128)
        return trace_id

    def is_trace_id_random(self) -> bool:
        return True


# One for the process: each generator's reseed at fork is registered for the process' life.
_IDS = OwnRandomIdGenerator()


def _sampler(exporting: bool, sample_ratio: float) -> Sampler:
    """Spans that no exporter receives are not recorded. Without an OTLP endpoint, a traces
    file or an exporter given by a test, every span was still built, given its attributes and
    ended, then dropped: 14-20% of ingestion's, profile's and segmentation's CPU on the events
    path went to spans (py-spy, 2026-12-07; a span per event in each relay and in
    ApplyEventBatch / ApplyProfileChanges); unrecorded, the pipeline benchmark's CPU an event
    fell from 0.565-0.583 to 0.541-0.545 ms and events fully processed rose 5-11% in three
    alternating pairs (docs/performance.md, session 39). Unrecorded spans keep their trace and span
    ids, so logs keep their trace_id and carriers their context; the Helm chart, with tracing
    off, sets OTEL_SDK_DISABLED, which records none either."""
    if not exporting:
        return ALWAYS_OFF
    return ParentBased(TraceIdRatioBased(sample_ratio))


class Telemetry:
    def __init__(
        self,
        service: str,
        *,
        otlp_endpoint: str | None = None,
        sample_ratio: float = 1.0,
        extra_exporters: tuple[SpanExporter, ...] = (),
        traces_file: str = "",
        metrics_poll_s: float = 15.0,
        metrics_slow_poll_s: float = 300.0,
    ) -> None:
        self.service = service
        resource = Resource.create({"service.name": f"svod-{service}", "service.namespace": "svod"})
        exporting = bool(extra_exporters or otlp_endpoint or traces_file)
        self.tracer_provider = TracerProvider(
            resource=resource, sampler=_sampler(exporting, sample_ratio), id_generator=_IDS
        )
        for exporter in extra_exporters:
            self.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        if otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            self.tracer_provider.add_span_processor(
                BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint))
            )
        if traces_file:
            from svod_runtime.trace_file import JsonLinesSpanExporter

            # Written within half a second, so `svod trace show` finds a request just made.
            self.tracer_provider.add_span_processor(
                BatchSpanProcessor(JsonLinesSpanExporter(traces_file), schedule_delay_millis=500)
            )
        sdk_tracer = self.tracer_provider.get_tracer(f"svod.{service}")
        self.tracer: trace.Tracer = sdk_tracer if exporting else UnrecordedTracer(sdk_tracer)
        self.metrics = ServiceMetrics(
            service,
            resource,
            otlp_endpoint=otlp_endpoint,
            poll_s=metrics_poll_s,
            slow_poll_s=metrics_slow_poll_s,
        )
        self.meter = self.metrics.meter
        self._engines = 0

    @classmethod
    def for_config(
        cls, config: ServiceConfig, extra_exporters: tuple[SpanExporter, ...] = ()
    ) -> Telemetry:
        return cls(
            config.service,
            otlp_endpoint=config.otlp_endpoint,
            sample_ratio=config.trace_sample_ratio,
            extra_exporters=extra_exporters,
            traces_file=config.traces_file,
            metrics_poll_s=config.metrics_poll_s,
            metrics_slow_poll_s=config.metrics_slow_poll_s,
        )

    def client_interceptors(self) -> list[Any]:
        return list(aio_client_interceptors(tracer_provider=self.tracer_provider))

    def instrument_engine(self, engine: AsyncEngine) -> None:
        """Database spans for one engine: SQLAlchemy's instrumentation for statements through
        SQLAlchemy (psycopg's too would double every span), ours for ``fetch_direct`` ones;
        and its connection pool's metrics (polled at scrape time, see pool_metrics)."""
        # SQLAlchemy's own usage counter would add four counter updates to every transaction;
        # the pool's figures are read at scrape time instead (observe_pool).
        counter = (
            NoOpMeterProvider()
            .get_meter("svod")
            .create_up_down_counter("db.client.connections.usage")
        )
        EngineTracer(InTraceOnly(self.tracer), engine.sync_engine, counter)
        if records_spans(self.tracer):  # unrecorded, a statement's span would be its caller's
            trace_direct_statements(engine, self.tracer)
        self._engines += 1
        pool_name = self.service if self._engines == 1 else f"{self.service}-{self._engines}"
        observe_pool(self.meter, engine, pool_name)

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.metrics.shutdown()


class _FilteringTracer(trace.Tracer):
    """A tracer that hands some spans out itself (``_own_span``) and leaves the others to
    the tracer it wraps."""

    # Whether a span of its own, asked for in a context given, is made current for the block
    # (else the block runs in the context as it is).
    _attach_own = False

    def __init__(self, tracer: trace.Tracer) -> None:
        self.inner = tracer

    def _own_span(self, parent: trace.Span) -> trace.Span | None:
        raise NotImplementedError

    def start_span(
        self,
        name: str,
        context: otel_context.Context | None = None,
        kind: trace.SpanKind = trace.SpanKind.INTERNAL,
        attributes: Attributes = None,
        *args: Any,
        **kwargs: Any,
    ) -> trace.Span:
        own = self._own_span(trace.get_current_span(context))
        if own is not None:
            return own
        return self.inner.start_span(name, context, kind, attributes, *args, **kwargs)

    @contextmanager
    def start_as_current_span(  # type: ignore[override]
        self,
        name: str,
        context: otel_context.Context | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> Iterator[trace.Span]:
        own = self._own_span(trace.get_current_span(context))
        if own is None:
            with self.inner.start_as_current_span(name, context, *args, **kwargs) as span:
                yield span
        elif context is None or not self._attach_own:
            yield own
        else:
            with trace.use_span(own, end_on_exit=False):
                yield own


class InTraceOnly(_FilteringTracer):
    """A tracer that starts spans only inside a trace; elsewhere it hands out the invalid
    (non-recording) span, so background statements start no trace of their own."""

    def _own_span(self, parent: trace.Span) -> trace.Span | None:
        return None if parent.get_span_context().is_valid else trace.INVALID_SPAN


class UnrecordedTracer(_FilteringTracer):
    """The tracer of a service whose spans no exporter takes (see ``_sampler``): a span
    inside a trace is its parent itself, so no ids are drawn and nothing is built; a span
    that starts a trace gets fresh ids from the SDK (unrecorded), so logs keep a trace_id.
    The sampler alone left the SDK drawing ids and building a span per event in each relay
    and batch call: ``Tracer.start_span`` was 3.7-4.5% of ingestion's, profile's and
    segmentation's py-spy samples on the events path, and parsing the carriers those spans
    continued another 2.7-5.1% (2026-12-07, session 40)."""

    _attach_own = True

    def _own_span(self, parent: trace.Span) -> trace.Span | None:
        if parent.get_span_context().is_valid and not parent.is_recording():
            return parent
        return None


def records_spans(tracer: trace.Tracer) -> bool:
    """False for a tracer whose spans nothing records (``UnrecordedTracer``)."""
    while isinstance(tracer, InTraceOnly):
        tracer = tracer.inner
    return not isinstance(tracer, UnrecordedTracer)


class _CarriedSpan(trace.NonRecordingSpan):
    """An unrecorded span of one item of a batch: the trace context its carrier names, read
    only if asked for (a log line, a call made in it); handed on, the carrier itself."""

    def __init__(self, carrier: Mapping[str, str]) -> None:
        super().__init__(trace.INVALID_SPAN_CONTEXT)
        self.carrier = carrier
        self._read = False

    def get_span_context(self) -> trace.SpanContext:
        if not self._read:
            self._context = trace.get_current_span(
                context_from_carrier(self.carrier)
            ).get_span_context()
            self._read = True
        return self._context


def item_span(
    tracer: trace.Tracer,
    name: str,
    carrier: Mapping[str, str],
    *,
    kind: trace.SpanKind = trace.SpanKind.INTERNAL,
    attributes: Attributes = None,
) -> trace.Span:
    """The span of one item of a batch (an event, a change, an outbox message), in the trace
    its carrier names. Where nothing records spans, the carrier itself: neither parsed nor
    built again unless used (``trace_carrier_of`` hands it on as it came)."""
    if carrier and not records_spans(tracer):
        return _CarriedSpan(carrier)
    return tracer.start_span(
        name, context=context_from_carrier(carrier), kind=kind, attributes=attributes
    )


# Carriers between Svod services are W3C trace context. The common case, a lone
# "traceparent" with no tracestate or baggage, is written and read here directly: the generic
# propagators cost tens of microseconds per call, paid per event on the bulk paths. Anything
# else goes through the configured propagators.
_TRACEPARENT = "traceparent"


def _carrier_for(context: otel_context.Context | None) -> dict[str, str]:
    span_context = trace.get_current_span(context).get_span_context()
    if span_context.is_valid and not span_context.trace_state and not baggage.get_all(context):
        return {
            _TRACEPARENT: f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-"
            f"{span_context.trace_flags:02x}"
        }
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    return carrier


def current_trace_carrier() -> dict[str, str]:
    """The current trace context as W3C headers, to store beside an outbox message."""
    return _carrier_for(None)


def trace_carrier_of(span: trace.Span) -> dict[str, str]:
    """A span's context as W3C headers, without making the span current (for work handed on
    per item of a batch). Runs once per item at every batched hop: the common case is read off
    the span itself, without building a context around it (twice as fast); an unrecorded
    item's span hands on the carrier it came with."""
    if isinstance(span, _CarriedSpan):
        return dict(span.carrier)
    span_context = span.get_span_context()
    if span_context.is_valid and not span_context.trace_state and not baggage.get_all():
        return {
            _TRACEPARENT: f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-"
            f"{span_context.trace_flags:02x}"
        }
    return _carrier_for(trace.set_span_in_context(span))


def _parse_traceparent(value: str) -> trace.SpanContext | None:
    """Version 00 "00-<32 hex>-<16 hex>-<2 hex>", or None (left to the propagators)."""
    parts = value.split("-")
    if len(parts) != 4 or parts[0] != "00" or [len(p) for p in parts[1:]] != [32, 16, 2]:
        return None
    try:
        trace_id, span_id, flags = (int(p, 16) for p in parts[1:])
    except ValueError:
        return None
    if not trace_id or not span_id:
        return None
    return trace.SpanContext(trace_id, span_id, is_remote=True, trace_flags=trace.TraceFlags(flags))


def context_from_carrier(carrier: Mapping[str, str] | None) -> otel_context.Context:
    """The context stored with an outbox message, so its delivery continues the original trace."""
    if carrier and len(carrier) == 1 and _TRACEPARENT in carrier:
        span_context = _parse_traceparent(carrier[_TRACEPARENT])
        if span_context is not None:
            return trace.set_span_in_context(
                trace.NonRecordingSpan(span_context), otel_context.Context()
            )
    return propagate.extract(dict(carrier or {}))


@contextmanager
def continuing(carrier: Mapping[str, str] | None) -> Iterator[None]:
    """Runs the block in the trace a carrier names (work done for one item of a batch)."""
    token = otel_context.attach(context_from_carrier(carrier))
    try:
        yield
    finally:
        otel_context.detach(token)


def current_trace_id() -> str:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""
