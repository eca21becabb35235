"""The transactional outbox every service uses to announce things to its peers.

A service writes an outbox row in the same transaction as the change it announces
(``enqueue``); a relay delivers rows at least once, with exponential backoff, continuing the
trace of the transaction that wrote them. Rows are leased, not removed, until delivered, so a
relay that dies loses nothing: its rows come back when the lease runs out. A row refused for
good stays in the table as failed (a dead letter), never silently dropped.

Each service's own migrations create the ``outbox`` table in its schema (see OUTBOX_DDL).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from base64 import b64encode
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace

from opentelemetry import trace
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from svod_runtime.db import fetch_direct
from svod_runtime.telemetry import context_from_carrier, current_trace_carrier, trace_carrier_of

log = logging.getLogger(__name__)

OUTBOX_DDL = """
CREATE TABLE outbox (
    outbox_pk bigserial PRIMARY KEY,
    topic text NOT NULL,
    -- What the message is about (a record, a customer); handlers load details by it.
    key text NOT NULL,
    payload bytea NOT NULL DEFAULT '',
    -- W3C trace context of the writing transaction, so delivery continues its trace.
    trace_carrier jsonb NOT NULL DEFAULT '{}',
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- A relay holds the row until then; a crashed relay's rows come back after it.
    locked_until timestamptz,
    last_error text,
    -- Set when refused for good: the row stays as a dead letter.
    failed_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE failed_at IS NULL;
"""

# Answers that will not change on retry.
PERMANENT_FAILURES = frozenset(
    {"INVALID_ARGUMENT", "FAILED_PRECONDITION", "ALREADY_EXISTS", "OUT_OF_RANGE", "NOT_FOUND"}
)
BASE_DELAY_S = 0.5
MAX_DELAY_S = 300.0


def retry_delay(attempts: int, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter, capped; ``attempts`` counts failures so far (from 1)."""
    ceiling = min(MAX_DELAY_S, BASE_DELAY_S * 2 ** max(0, attempts - 1))
    return (rng or random).uniform(ceiling / 2, ceiling)


class DeliveryError(Exception):
    """A peer's refusal; ``status`` is the gRPC status name (e.g. ``UNAVAILABLE``)."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status

    @property
    def permanent(self) -> bool:
        return self.status in PERMANENT_FAILURES


@dataclass(frozen=True)
class OutboxMessage:
    outbox_pk: int
    topic: str
    key: str
    payload: bytes
    trace_carrier: dict[str, str]
    attempts: int


# A topic's handler delivers one message; raising DeliveryError reports the peer's answer.
Handler = Callable[[OutboxMessage], Awaitable[None]]
# A batch handler delivers several messages of its topic in one call (in outbox order, so a
# key's messages keep their order) and answers for each: None when delivered, else the
# peer's refusal. Raising DeliveryError answers for all of them. Each message's
# trace_carrier is that of its own delivery span, to send along with it. A retried message
# may then arrive after a later one of its key: only for receivers that tolerate that (e.g.
# changes carrying a version).
BatchHandler = Callable[[list[OutboxMessage]], Awaitable[list["DeliveryError | None"]]]
# Called when a message is given up on (permanent refusal), to record it where users look.
FailureHook = Callable[[OutboxMessage, str], Awaitable[None]]


async def enqueue(conn: AsyncConnection, topic: str, key: str, payload: bytes = b"") -> None:
    """Adds a message inside the caller's transaction, carrying the current trace context."""
    await enqueue_many(conn, topic, [(key, payload, current_trace_carrier())])


async def enqueue_many(
    conn: AsyncConnection, topic: str, messages: list[tuple[str, bytes, dict[str, str]]]
) -> None:
    """Adds several messages, each with the trace context it was written under."""
    if not messages:
        return
    # One statement for the lot: a batch of events enqueues hundreds of announcements. They
    # travel as one JSON document (payloads in base64): psycopg dumps array parameters element
    # by element in Python, which cost more than the insert.
    rows = [[key, b64encode(payload).decode(), carrier] for key, payload, carrier in messages]
    await fetch_direct(
        conn,
        _ENQUEUE,
        {"t": topic, "rows": json.dumps(rows, ensure_ascii=False, separators=(",", ":"))},
    )


_ENQUEUE = (
    "INSERT INTO outbox (topic, key, payload, trace_carrier) "
    "SELECT %(t)s, x.r->>0, decode(x.r->>1, 'base64'), x.r->2 "
    "FROM jsonb_array_elements(CAST(%(rows)s AS jsonb)) WITH ORDINALITY AS x(r, n) ORDER BY x.n"
)


class OutboxStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def claim_due(self, limit: int, lease_s: float) -> list[OutboxMessage]:
        """Leases due rows to this relay; other relays skip them (SKIP LOCKED)."""
        async with self.engine.begin() as conn:
            rows = await conn.execute(
                text(
                    """
                    WITH due AS (
                        SELECT outbox_pk FROM outbox
                        WHERE failed_at IS NULL AND next_attempt_at <= now()
                          AND (locked_until IS NULL OR locked_until < now())
                        ORDER BY next_attempt_at, outbox_pk
                        LIMIT :n FOR UPDATE SKIP LOCKED
                    )
                    UPDATE outbox o SET locked_until = now() + make_interval(secs => :lease)
                    FROM due WHERE o.outbox_pk = due.outbox_pk
                    RETURNING o.outbox_pk, o.topic, o.key, o.payload, o.trace_carrier,
                              o.attempts
                    """
                ),
                {"n": limit, "lease": lease_s},
            )
            return sorted(
                (
                    OutboxMessage(
                        r.outbox_pk,
                        r.topic,
                        r.key,
                        bytes(r.payload),
                        dict(r.trace_carrier),
                        r.attempts,
                    )
                    for r in rows
                ),
                key=lambda m: m.outbox_pk,
            )

    async def delivered(self, messages: list[OutboxMessage]) -> None:
        """Removes delivered rows, all in one statement."""
        if not messages:
            return
        async with self.engine.begin() as conn:
            await conn.execute(
                text("DELETE FROM outbox WHERE outbox_pk = ANY(:o)"),
                {"o": [m.outbox_pk for m in messages]},
            )

    async def retry_later(self, message: OutboxMessage, error: str, delay_s: float) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = :e, "
                    "locked_until = NULL, next_attempt_at = now() + make_interval(secs => :d) "
                    "WHERE outbox_pk = :o"
                ),
                {"e": error, "d": delay_s, "o": message.outbox_pk},
            )

    async def release(self, message: OutboxMessage) -> None:
        """Hands a leased row back untouched (its predecessor has to go first)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                text("UPDATE outbox SET locked_until = NULL WHERE outbox_pk = :o"),
                {"o": message.outbox_pk},
            )

    async def give_up(self, message: OutboxMessage, error: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = :e, "
                    "failed_at = now(), locked_until = NULL WHERE outbox_pk = :o"
                ),
                {"e": error, "o": message.outbox_pk},
            )


class OutboxRelay:
    """Delivers due outbox rows by topic.

    Messages of one key are delivered in the order they were written (within one relay): the
    first of each key goes concurrently with other keys, later ones follow it one by one, and
    wait for a later pass if it did not get through. A topic with a batch handler gets all of
    a pass's messages in one call instead (the receiver keeps their order).
    """

    def __init__(
        self,
        store: OutboxStore,
        handlers: Mapping[str, Handler],
        tracer: trace.Tracer,
        *,
        on_failure: Mapping[str, FailureHook] | None = None,
        batch_handlers: Mapping[str, BatchHandler] | None = None,
        batch_size: int = 64,
        concurrency: int = 16,
        lease_s: float = 60.0,
        poll_s: float = 0.5,
    ) -> None:
        self.store = store
        self.handlers = dict(handlers)
        self.on_failure = dict(on_failure or {})
        self.batch_handlers = dict(batch_handlers or {})
        self.tracer = tracer
        self.batch_size = batch_size
        self.lease_s = lease_s
        self.poll_s = poll_s
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrency)

    def wake(self) -> None:
        """Called after a local commit, so delivery does not wait for the next poll."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                claimed = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay pass failed")
                claimed = 0
            if claimed < self.batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_s)

    async def run_once(self) -> int:
        messages = await self.store.claim_due(self.batch_size, self.lease_s)
        by_batch_topic: dict[str, list[OutboxMessage]] = {}
        singles: list[OutboxMessage] = []
        for message in messages:
            if message.topic in self.batch_handlers:
                by_batch_topic.setdefault(message.topic, []).append(message)
            else:
                singles.append(message)
        parts = await asyncio.gather(
            self._deliver_singles(singles),
            *(self._deliver_batch(topic, group) for topic, group in by_batch_topic.items()),
        )
        # Delivered rows go in one statement; a crash before it means a redelivery, which
        # every receiver takes idempotently (at least once).
        await self.store.delivered([m for part in parts for m in part])
        return len(messages)

    async def _deliver_singles(self, messages: list[OutboxMessage]) -> list[OutboxMessage]:
        first_per_key: dict[tuple[str, str], OutboxMessage] = {}
        later: list[OutboxMessage] = []
        for message in messages:
            slot = (message.topic, message.key)
            if slot in first_per_key:
                later.append(message)
            else:
                first_per_key[slot] = message
        results = await asyncio.gather(*(self._deliver(m) for m in first_per_key.values()))
        delivered = [m for m, ok in zip(first_per_key.values(), results, strict=True) if ok]
        blocked = {slot for slot, ok in zip(first_per_key, results, strict=True) if not ok}
        for message in later:
            slot = (message.topic, message.key)
            if slot not in blocked and await self._deliver(message):
                delivered.append(message)
            else:
                blocked.add(slot)
                await self.store.release(message)
        return delivered

    async def _deliver_batch(
        self, topic: str, messages: list[OutboxMessage]
    ) -> list[OutboxMessage]:
        """One handler call for a topic's messages, each in a delivery span of its own trace."""
        spans = [
            self.tracer.start_span(
                f"outbox deliver {topic}",
                context=context_from_carrier(m.trace_carrier),
                kind=trace.SpanKind.CONSUMER,
                attributes={"svod.outbox.attempt": m.attempts + 1, "svod.outbox.batch": True},
            )
            for m in messages
        ]
        sent = [
            replace(message, trace_carrier=trace_carrier_of(span))
            for message, span in zip(messages, spans, strict=True)
        ]
        try:
            # The call serves every message: a child of the first one's delivery (so a lone
            # message stays one trace end to end), linked to the others'.
            with self.tracer.start_as_current_span(
                f"outbox deliver batch {topic}",
                context=trace.set_span_in_context(spans[0]),
                links=[trace.Link(span.get_span_context()) for span in spans[1:]],
                attributes={"svod.outbox.batch_size": len(messages)},
            ):
                answers = await self.batch_handlers[topic](sent)
        except DeliveryError as error:
            answers = [error] * len(messages)
        except Exception as error:  # a bug or an unreachable peer: retry later, never drop
            log.exception("outbox batch handler for %s failed", topic)
            answers = [DeliveryError("INTERNAL", repr(error))] * len(messages)
        delivered = []
        for message, span, answer in zip(messages, spans, answers, strict=True):
            if answer is None:
                delivered.append(message)
            else:
                span.set_status(trace.StatusCode.ERROR, answer.status)
                await self._failed(message, answer)
            span.end()
        return delivered

    async def _failed(self, message: OutboxMessage, error: DeliveryError) -> None:
        """Gives up on a permanent refusal (dead letter), else schedules a retry."""
        if error.permanent:
            log.warning(
                "outbox message %d (%s) refused for good: %s",
                message.outbox_pk,
                message.topic,
                error.status,
            )
            await self.store.give_up(message, str(error))
            hook = self.on_failure.get(message.topic)
            if hook is not None:
                await hook(message, str(error))
        else:
            await self.store.retry_later(message, str(error), retry_delay(message.attempts + 1))

    async def _deliver(self, message: OutboxMessage) -> bool:
        """True when delivered; False when it failed (and was rescheduled or given up)."""
        async with self._slots:
            with self.tracer.start_as_current_span(
                f"outbox deliver {message.topic}",
                context=context_from_carrier(message.trace_carrier),
                kind=trace.SpanKind.CONSUMER,
            ) as span:
                span.set_attribute("svod.outbox.attempt", message.attempts + 1)
                handler = self.handlers.get(message.topic)
                try:
                    if handler is None:
                        raise DeliveryError(
                            "FAILED_PRECONDITION", f"no handler for {message.topic}"
                        )
                    await handler(message)
                except DeliveryError as error:
                    span.set_status(trace.StatusCode.ERROR, error.status)
                    await self._failed(message, error)
                    return False
                return True
