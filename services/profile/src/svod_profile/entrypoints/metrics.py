"""Profile's own metrics (docs/operations.md): records and events applied, and the profile
changes announced to segmentation. Counted after the use case committed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Iterable

from svod.profile.v1 import profile_pb2
from svod_runtime.metrics import ServiceMetrics
from svod_runtime.outbox import DeliveryError, OutboxMessage

# applied: it changed the profile; duplicate: it had been applied before (a redelivery);
# refused: it was refused (bad input, unknown customer ...).
RESULTS = ("applied", "duplicate", "refused")
Announce = Callable[[list[OutboxMessage]], Awaitable[list[DeliveryError | None]]]


class ProfileMetrics:
    def __init__(self, metrics: ServiceMetrics) -> None:
        meter = metrics.meter
        self.events = meter.create_counter(
            "svod.profile.events", "{event}", "Events applied to profiles, by result"
        )
        self.records = meter.create_counter(
            "svod.profile.records", "{record}", "Resolved records applied to profiles, by result"
        )
        self.announced = meter.create_counter(
            "svod.profile.changes_announced",
            "{change}",
            "Profile changes segmentation has taken (announced through the outbox)",
        )
        for result in RESULTS:
            self.events.add(0, {"result": result})
            self.records.add(0, {"result": result})
        self.announced.add(0)

    def event_applied(self, changed: bool) -> None:
        self.events.add(1, {"result": "applied" if changed else "duplicate"})

    def record_applied(self, changed: bool) -> None:
        self.records.add(1, {"result": "applied" if changed else "duplicate"})

    def records_applied(self, changed: int, duplicates: int) -> None:
        """``record_applied`` of a whole call's records at once."""
        if changed:
            self.records.add(changed, {"result": "applied"})
        if duplicates:
            self.records.add(duplicates, {"result": "duplicate"})

    def batch_answered(
        self, results: Iterable[profile_pb2.ApplyEventBatchResponse.Result | None]
    ) -> None:
        counts: Counter[str] = Counter()
        for result in results:
            if result is None or not result.HasField("applied"):
                counts["refused"] += 1
            else:
                counts["applied" if result.applied.changed else "duplicate"] += 1
        for result_name, count in counts.items():
            self.events.add(count, {"result": result_name})

    def counting_announcements(self, announce: Announce) -> Announce:
        """The announcer's batch handler, counting the changes segmentation took."""

        async def announce_counted(messages: list[OutboxMessage]) -> list[DeliveryError | None]:
            answers = await announce(messages)
            taken = sum(answer is None for answer in answers)
            if taken:
                self.announced.add(taken)
            return answers

        return announce_counted
