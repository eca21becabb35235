"""Spans are recorded only where an exporter takes them (svod_runtime.telemetry._sampler)."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from svod_runtime.telemetry import (
    Telemetry,
    context_from_carrier,
    current_trace_id,
    item_span,
    trace_carrier_of,
)


def test_without_an_exporter_spans_carry_ids_but_are_not_recorded() -> None:
    tracer = Telemetry("unexported").tracer
    span = tracer.start_span("work")
    context = span.get_span_context()
    assert not span.is_recording()
    # Logs keep a trace_id and a delivery's carrier keeps the trace going.
    assert context.is_valid and context.trace_id != 0
    child = tracer.start_span("next hop", context_from_carrier(trace_carrier_of(span)))
    assert child.get_span_context().trace_id == context.trace_id
    assert not child.is_recording()


def test_with_an_exporter_every_span_is_recorded_and_exported() -> None:
    exported = InMemorySpanExporter()
    tracer = Telemetry("exported", extra_exporters=(exported,)).tracer
    span = tracer.start_span("work")
    assert span.is_recording()
    span.end()
    child = tracer.start_span("next hop", context_from_carrier(trace_carrier_of(span)))
    child.end()
    names = [s.name for s in exported.get_finished_spans()]
    assert names == ["work", "next hop"]
    assert {s.context.trace_id for s in exported.get_finished_spans()} == {
        span.get_span_context().trace_id
    }
    assert trace.get_current_span().get_span_context().is_valid is False


def test_without_an_exporter_a_batch_item_hands_on_its_own_trace() -> None:
    tracer = Telemetry("unexported").tracer
    root = tracer.start_span("accepted")  # a trace's first span still gets ids
    carrier = trace_carrier_of(root)
    item = item_span(tracer, "apply event", carrier)
    assert not item.is_recording()
    assert trace_carrier_of(item) == carrier  # the next hop continues the same trace
    with tracer.start_as_current_span("deliver", trace.set_span_in_context(item)):
        # A log line written while the item is handled names the item's trace.
        assert current_trace_id() == format(root.get_span_context().trace_id, "032x")
        inner = tracer.start_span("a statement")
        assert inner.get_span_context().trace_id == root.get_span_context().trace_id
    assert trace.get_current_span().get_span_context().is_valid is False


def test_with_an_exporter_a_batch_item_is_a_recorded_child_of_its_carrier() -> None:
    exported = InMemorySpanExporter()
    tracer = Telemetry("exported-items", extra_exporters=(exported,)).tracer
    root = tracer.start_span("accepted")
    item = item_span(tracer, "apply event", trace_carrier_of(root))
    assert item.is_recording()
    item.end()
    root.end()
    spans = {s.name: s for s in exported.get_finished_spans()}
    assert spans["apply event"].parent is not None
    assert spans["apply event"].parent.span_id == root.get_span_context().span_id
    assert spans["apply event"].context.trace_id == root.get_span_context().trace_id
