"""Personal data never appears in logs, spans or error texts: every log line and every span
the test session produced is searched for e-mails, phone numbers and names."""

from __future__ import annotations

import pytest

from tests.privacy import findings, span_texts


@pytest.mark.runs_last
def test_no_log_line_or_span_carries_personal_data(suite, collected_logs, span_exporter) -> None:
    spans = span_texts(span_exporter.get_finished_spans())
    # Not vacuous: the end-to-end tests ran before this one and logged and traced.
    assert len(spans) > 100 and len(collected_logs.texts) > 100
    found = findings([*collected_logs.texts, *spans])
    assert not found, "\n".join(found[:30])
