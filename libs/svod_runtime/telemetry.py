"""OpenTelemetry for one service: its own tracer provider, gRPC and database instrumentation.

Each service gets its own provider (not the global one) so that several services can run in one
process — as they do in the test suite — and still report under their own ``service.name``.
Context propagation (W3C trace context) is the global one, shared by all.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)


class Telemetry:
    def __init__(
        self,
        service: str,
        *,
        otlp_endpoint: str | None = None,
        sample_ratio: float = 1.0,
        extra_exporters: tuple[SpanExporter, ...] = (),
    ) -> None:
        self.service = service
        resource = Resource.create({"service.name": f"svod-{service}", "service.namespace": "svod"})
        self.tracer_provider = TracerProvider(
            resource=resource, sampler=ParentBased(TraceIdRatioBased(sample_ratio))
        )
        for exporter in extra_exporters:
            self.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        if otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            self.tracer_provider.add_span_processor(
                BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint))
            )
        self.tracer = self.tracer_provider.get_tracer(f"svod.{service}")

    def server_interceptor(self) -> Any:
        return aio_server_interceptor(tracer_provider=self.tracer_provider)

    def client_interceptors(self) -> list[Any]:
        return list(aio_client_interceptors(tracer_provider=self.tracer_provider))

    def instrument_engine(self, engine: AsyncEngine) -> None:
        """Database spans for one engine (only the SQLAlchemy instrumentation: psycopg's too would
        double every span)."""
        counter = (
            NoOpMeterProvider()
            .get_meter("svod")
            .create_up_down_counter("db.client.connections.usage")
        )
        EngineTracer(self.tracer, engine.sync_engine, counter)

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()


def current_trace_carrier() -> dict[str, str]:
    """The current trace context as W3C headers, to store beside an outbox message."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def context_from_carrier(carrier: Mapping[str, str] | None) -> otel_context.Context:
    """The context stored with an outbox message, so its delivery continues the original trace."""
    return propagate.extract(dict(carrier or {}))


def current_trace_id() -> str:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""
