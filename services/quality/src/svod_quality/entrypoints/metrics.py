"""Quality's own metrics (docs/operations.md): records standardised and refused, and every
finding by rule, field and action, counted per batch as StandardizeBatch answers."""

from __future__ import annotations

from svod_quality.domain import BatchTally
from svod_runtime.metrics import ServiceMetrics


class QualityMetrics:
    def __init__(self, metrics: ServiceMetrics) -> None:
        meter = metrics.meter
        self.records = meter.create_counter(
            "svod.quality.records_checked", "{record}", "Records standardised and validated"
        )
        self.rejected = meter.create_counter(
            "svod.quality.records_rejected", "{record}", "Records refused by a rule"
        )
        self.violations = meter.create_counter(
            "svod.quality.violations",
            "{finding}",
            "Findings by rule, field and action (rejected, flagged, corrected)",
        )
        self.records.add(0)
        self.rejected.add(0)

    def tallied(self, tally: BatchTally) -> None:
        self.records.add(tally.records)
        self.rejected.add(tally.rejected)
        for (rule, field, action), count in tally.findings.items():
            self.violations.add(count, {"rule": rule, "field": field, "action": action})
