"""One Identify is one trace: ingestion -> quality, (outbox) -> identity -> profile ->
(outbox, batched) -> segmentation, database spans too."""

from __future__ import annotations

from opentelemetry.trace import SpanKind

from tests.builders import identify, random_phone
from tests.waiting import wait_until

T = 10.0


def _spans_of_trace(exporter, trace_id: int, want: set[tuple[str, str]], timeout_s: float = 10.0):
    """The finished spans of a trace, once it holds every wanted (service, span name)."""

    def spans() -> list:
        return [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]

    def missing() -> set[tuple[str, str]]:
        return want - {(s.resource.attributes["service.name"], s.name) for s in spans()}

    wait_until(missing, timeout_s, what="every wanted span of the trace", until=lambda m: not m)
    return spans()


def test_identify_is_one_trace_through_every_service(suite, span_exporter) -> None:
    request = identify("webshop", phones=(random_phone(),), first_name="Анна")
    suite.ingestion.Identify(request, timeout=T)
    suite.wait_processed(request.record_ref)

    entry = [
        s
        for s in span_exporter.get_finished_spans()
        if s.kind == SpanKind.SERVER
        and s.name == "/svod.ingestion.v1.IngestionService/Identify"
        and s.resource.attributes["service.name"] == "svod-ingestion"
    ]
    assert entry, "no server span for Identify"
    # The newest Identify span is ours (tests in this module run one at a time).
    root = max(entry, key=lambda s: s.start_time)
    want = {
        ("svod-quality", "/svod.quality.v1.QualityService/StandardizeBatch"),
        ("svod-identity", "/svod.identity.v1.IdentityService/Resolve"),
        ("svod-profile", "/svod.profile.v1.ProfileService/Apply"),
        # Profile announces changes to segmentation many per call; each change keeps its trace.
        ("svod-segmentation", "segmentation apply profile change"),
    }
    spans = _spans_of_trace(span_exporter, root.context.trace_id, want)
    names = {(s.resource.attributes["service.name"], s.name) for s in spans}

    assert want <= names
    assert any(name.startswith("outbox deliver") for _, name in names)
    # Database work of each service is inside the same trace.
    db_services = {
        s.resource.attributes["service.name"]
        for s in spans
        if s.attributes and s.attributes.get("db.system") == "postgresql"
    }
    assert {"svod-ingestion", "svod-identity", "svod-profile"} <= db_services
    # The async hop is a child of the accepting call's context, not a new root.
    deliver = next(s for s in spans if s.name.startswith("outbox deliver"))
    assert deliver.parent is not None
    assert deliver.parent.trace_id == root.context.trace_id
