"""A call's span names its record by source and message id - only values the front door
would accept, so a malformed reference (which can be any text a client sent) stays out."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from svod.common.v1 import common_pb2
from svod_ingestion.entrypoints.grpc_servicer import MALFORMED, mark_span


def _marked(ref: common_pb2.RecordRef) -> dict[str, object]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("test").start_as_current_span("Identify"):
        mark_span(ref)
    (span,) = exporter.get_finished_spans()
    return dict(span.attributes or {})


def test_a_well_formed_reference_names_the_record() -> None:
    marked = _marked(common_pb2.RecordRef(source="pos-1", message_id="m-17"))
    assert marked["svod.record.source"] == "pos-1"
    assert marked["svod.record.message_id"] == "m-17"


def test_a_malformed_reference_is_not_copied_into_the_span() -> None:
    marked = _marked(common_pb2.RecordRef(source="Мария Смирнова", message_id="x" * 500))
    assert marked["svod.record.source"] == MALFORMED
    assert marked["svod.record.message_id"] == MALFORMED
