"""Spans as JSON lines in a local file (``SVOD_TRACES_FILE``), for reading traces on a laptop
with ``svod trace show`` — no collector, no backend.

Every service of a suite appends to the same file: each batch of spans is one ``write`` on a
file opened with O_APPEND, so lines of different processes never interleave. A line is one
span::

    {"trace_id": "<32 hex>", "span_id": "<16 hex>", "parent_span_id": "<16 hex>" | null,
     "name": "...", "kind": "SERVER", "service": "svod-identity",
     "start_ns": 1700000000000000000, "end_ns": ..., "status": "UNSET|OK|ERROR",
     "status_description": "...", "attributes": {...},
     "links": [{"trace_id": "...", "span_id": "..."}]}

Span attributes never hold personal data (see the project's rules), so neither does the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult


def span_record(span: ReadableSpan) -> dict[str, Any]:
    context = span.get_span_context()
    assert context is not None, "a finished SDK span always has its context"
    parent = span.parent
    return {
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_span_id": f"{parent.span_id:016x}" if parent is not None else None,
        "name": span.name,
        "kind": span.kind.name,
        "service": str(span.resource.attributes.get("service.name", "")),
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": span.status.status_code.name,
        "status_description": span.status.description or "",
        "attributes": dict(span.attributes or {}),
        "links": [
            {
                "trace_id": f"{link.context.trace_id:032x}",
                "span_id": f"{link.context.span_id:016x}",
            }
            for link in span.links
        ],
    }


class JsonLinesSpanExporter(SpanExporter):
    def __init__(self, path: str) -> None:
        self.path = path
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._fd is None:
            return SpanExportResult.FAILURE
        data = "".join(
            json.dumps(span_record(span), ensure_ascii=False, default=str) + "\n" for span in spans
        ).encode("utf-8")
        try:
            os.write(self._fd, data)
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
