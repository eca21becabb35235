"""Outbox metrics, per topic, kept outside the outbox itself.

- counted as they happen, by a store that counts what the relay tells it
  (``MeteredOutboxStore``): ``svod.outbox.deliveries``, ``svod.outbox.retries``,
  ``svod.outbox.given_up`` (each new dead letter), ``svod.outbox.lease_lost`` (completions a
  relay could not make because it no longer held the message: fencing at work);
- polled (one grouped query every ``SVOD_METRICS_POLL_S``): ``svod.outbox.depth`` (messages
  waiting), ``svod.outbox.oldest_age`` (seconds the oldest waiting message has waited) and
  ``svod.outbox.dead_letters`` (messages refused for good, still stored).

The relay needs no change: a service builds its relay on ``metered_outbox_store(engine,
telemetry)`` instead of ``OutboxStore(engine)``. Counting costs one counter add per relay
pass and topic; the poll reads the outbox table, which holds only undelivered messages.
"""

from __future__ import annotations

from collections import Counter

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from svod_runtime.metrics import ServiceMetrics, labels
from svod_runtime.outbox import OutboxMessage, OutboxStore

_POLL = text(
    """
    SELECT topic,
           count(*) FILTER (WHERE failed_at IS NULL) AS waiting,
           count(*) FILTER (WHERE failed_at IS NOT NULL) AS dead,
           COALESCE(EXTRACT(EPOCH FROM now() - min(created_at) FILTER (WHERE failed_at IS NULL)),
                    0) AS oldest_s
    FROM outbox GROUP BY topic
    """
)


class OutboxMetrics:
    def __init__(self, metrics: ServiceMetrics, engine: AsyncEngine) -> None:
        self.engine = engine
        meter = metrics.meter
        self.deliveries = meter.create_counter(
            "svod.outbox.deliveries", unit="{message}", description="Outbox messages delivered"
        )
        self.retries = meter.create_counter(
            "svod.outbox.retries",
            unit="{message}",
            description="Outbox deliveries that failed for now and were rescheduled",
        )
        self.given_up = meter.create_counter(
            "svod.outbox.given_up",
            unit="{message}",
            description="Outbox messages refused for good (new dead letters)",
        )
        self.lease_lost = meter.create_counter(
            "svod.outbox.lease_lost",
            unit="{message}",
            description=(
                "Outbox completions refused because the relay no longer held the message "
                "(its lease ran out and another relay claimed it, or it was erased)"
            ),
        )
        self.depth = metrics.polled_gauge(
            "svod.outbox.depth", "{message}", "Outbox messages waiting for delivery"
        )
        self.oldest_age = metrics.polled_gauge(
            "svod.outbox.oldest_age", "s", "How long the oldest waiting outbox message has waited"
        )
        self.dead_letters = metrics.polled_gauge(
            "svod.outbox.dead_letters", "{message}", "Outbox messages refused for good, kept"
        )
        metrics.add_poller("outbox", self.poll)

    def known_topics(self, topics: list[str]) -> None:
        """Topics reported (at 0) before their first message, so rates and alerts see 0."""
        zero = {labels(topic=t): 0.0 for t in topics}
        for gauge in (self.depth, self.oldest_age, self.dead_letters):
            gauge.set(zero)
        for counter in (self.deliveries, self.retries, self.given_up, self.lease_lost):
            for topic in topics:
                counter.add(0, {"topic": topic})

    async def poll(self) -> None:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(_POLL)).all()
        self.depth.set({labels(topic=r.topic): float(r.waiting) for r in rows})
        self.oldest_age.set({labels(topic=r.topic): float(r.oldest_s) for r in rows})
        self.dead_letters.set({labels(topic=r.topic): float(r.dead) for r in rows})


class MeteredOutboxStore(OutboxStore):
    """An OutboxStore that counts what the relay reports through it."""

    def __init__(self, engine: AsyncEngine, outbox_metrics: OutboxMetrics) -> None:
        super().__init__(engine)
        self.outbox_metrics = outbox_metrics

    async def delivered(self, messages: list[OutboxMessage]) -> list[OutboxMessage]:
        removed = await super().delivered(messages)
        for topic, count in Counter(m.topic for m in removed).items():
            self.outbox_metrics.deliveries.add(count, {"topic": topic})
        if len(removed) < len(messages):
            gone = {m.outbox_pk for m in removed}
            lost = Counter(m.topic for m in messages if m.outbox_pk not in gone)
            for topic, count in lost.items():
                self.outbox_metrics.lease_lost.add(count, {"topic": topic})
        return removed

    async def retry_later(
        self, message: OutboxMessage, error: str, delay_s: float, *, counted: bool = True
    ) -> bool:
        done = await super().retry_later(message, error, delay_s, counted=counted)
        counter = self.outbox_metrics.retries if done else self.outbox_metrics.lease_lost
        counter.add(1, {"topic": message.topic})
        return done

    async def give_up(self, message: OutboxMessage, error: str, *, counted: bool = True) -> bool:
        done = await super().give_up(message, error, counted=counted)
        counter = self.outbox_metrics.given_up if done else self.outbox_metrics.lease_lost
        counter.add(1, {"topic": message.topic})
        return done


def metered_outbox_store(
    engine: AsyncEngine, metrics: ServiceMetrics, topics: list[str] | None = None
) -> MeteredOutboxStore:
    """The outbox store a service's relay runs on, counted and polled for metrics."""
    outbox_metrics = OutboxMetrics(metrics, engine)
    outbox_metrics.known_topics(topics or [])
    return MeteredOutboxStore(engine, outbox_metrics)
