"""The transactional outbox every service uses to announce things to its peers.

A service writes an outbox row in the same transaction as the change it announces
(``enqueue``); a relay delivers rows at least once, with exponential backoff, continuing the
trace of the transaction that wrote them.

Leases. A relay claims due rows for a short lease (``DEFAULT_LEASE_S``) under a fencing token
(``lease_token``, new for every claim) and renews the lease of the rows it still works on with a
heartbeat (every third of the lease). It completes a row (delivered, retry later, dead letter,
released) only where the token still matches: a relay that lost its lease - paused past it, cut
off from the database - cannot mark a row another relay has claimed since. A relay that stops
gracefully hands its rows back at once; one that dies leaves them leased until the lease runs
out, so another relay (or the same one restarted) delivers them within one lease.

Poison messages. Every failure the peer answered counts towards the topic's attempt limit
(``DEFAULT_MAX_ATTEMPTS``); after it, or at once for a permanent refusal, the row stays in the
table as a dead letter (``failed_at`` and ``last_error`` set), never silently dropped and never
blocking the rows after it. Failures that only say the peer could not be asked
(``OUTAGE_STATUSES``: down, overloaded, too slow) are retried with backoff without counting: an
outage of any length loses nothing. A batch call that fails as a whole is split in halves until
each message has its own verdict, so one poison message fails alone. Dead letters are listed,
shown and redriven with :class:`DeadLetterStore` (``svod deadletters``).

Lanes. A row is written in a lane (:class:`OutboxLane`): single calls a caller waits on go in the
interactive lane, bulk streams in the bulk lane. A relay may serve one lane only, so a service
can run one relay per lane and a single Identify is not queued behind a bulk import's backlog
(oldest first, it waited p50 15.8 s, p99 29.2 s behind 10,000 streamed records - issue #20).
Order per key holds within a lane; a service that splits its rows by lane writes each key in
one lane only.

Each service's own migrations create the ``outbox`` table in its schema (see OUTBOX_DDL).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import datetime as dt
import logging
import random
import time
import uuid
from base64 import b64encode
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from opentelemetry import trace
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from svod_runtime.db import database_unavailable, dump_json, fetch_direct
from svod_runtime.own_random import own_random
from svod_runtime.telemetry import (
    context_from_carrier,
    current_trace_carrier,
    item_span,
    trace_carrier_of,
)
from svod_runtime.transactions import run_in_transaction

log = logging.getLogger(__name__)

# The table as the first migrations of every service created it. Frozen: those migrations run
# it as it was; later columns come with OUTBOX_LEASES_DDL in a revision of their own.
OUTBOX_DDL_V1 = """
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

# Fencing, attempt limit and redrive (idempotent: segmentation's outbox had some already).
OUTBOX_LEASES_DDL = """
-- The claim holding the row (new for every claim): only its relay may complete the row.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS lease_token uuid;
-- Failures that count towards the attempt limit (the peer answered; not an outage).
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS failed_attempts integer NOT NULL DEFAULT 0;
-- How often the row was sent again from the dead letters.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS redrive_count integer NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS outbox_dead_letters ON outbox (outbox_pk) WHERE failed_at IS NOT NULL;
-- Heartbeats and graceful release found a claim's rows by their token (dropped by
-- OUTBOX_HOT_DDL: they go by outbox_pk).
CREATE INDEX IF NOT EXISTS outbox_leased ON outbox (lease_token) WHERE lease_token IS NOT NULL;
"""

OUTBOX_LEASES_DOWN = """
DROP INDEX IF EXISTS outbox_leased;
DROP INDEX IF EXISTS outbox_dead_letters;
ALTER TABLE outbox DROP COLUMN IF EXISTS redrive_count;
ALTER TABLE outbox DROP COLUMN IF EXISTS failed_attempts;
ALTER TABLE outbox DROP COLUMN IF EXISTS lease_token;
"""


class OutboxLane(IntEnum):
    """Which relay a row waits for (stored in ``outbox.lane``)."""

    # Single calls somebody waits on (and every row of a service that runs one relay).
    INTERACTIVE = 0
    # Bulk streams and imports: throughput over latency.
    BULK = 1


# Lanes (issue #20): a relay of the interactive lane claims its rows without scanning the bulk
# lane's backlog.
OUTBOX_LANES_DDL = """
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS lane smallint NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS outbox_lane_due ON outbox (lane, next_attempt_at, outbox_pk)
    WHERE failed_at IS NULL;
"""

OUTBOX_LANES_DOWN = """
DROP INDEX IF EXISTS outbox_lane_due;
ALTER TABLE outbox DROP COLUMN IF EXISTS lane;
"""

# Claims as heap-only (HOT) updates (issue #20). A claim sets locked_until and lease_token;
# with lease_token indexed (outbox_leased) every claim, renewal and release wrote a new entry
# into every index of the table (20-24 us of Postgres CPU a row, probe). Renewals and releases
# now find a claim's rows by outbox_pk (the relay keeps them) with the token checked on the
# row, so no index names a column a claim changes. A HOT update also needs room on the row's
# page for the new version, and a claim updates every row of a page in one statement (a pass
# takes the oldest rows, written together): half of each page is left free. The outbox holds
# rows until they are delivered, so the free half costs a backlog's pages, not history.
# Claims of 500 draining a 20,000-row backlog (probe, a cluster of its own, docs/performance.md
# session 37): fillfactor 50 all HOT, 4.2-4.6 us a row of backend CPU; 60: 67%, 7.7-7.8 us;
# 70: 44%, 9.3-9.8 us; 100: 1%, 10.5-10.8 us; outbox_leased kept: none, 11.1-12.0 us.
# DROP INDEX takes the table's exclusive lock for a moment (no build); the fillfactor is a
# catalogue change (pages written from now on) under a lock that lets reads and writes go on.
OUTBOX_HOT_DDL = """
DROP INDEX IF EXISTS outbox_leased;
ALTER TABLE outbox SET (fillfactor = 50);
"""

# Builds the index again: locks writes to the outbox while it scans the table.
OUTBOX_HOT_DOWN = """
ALTER TABLE outbox RESET (fillfactor);
CREATE INDEX IF NOT EXISTS outbox_leased ON outbox (lease_token) WHERE lease_token IS NOT NULL;
"""

# The table as it is now (tests create it in scratch schemas).
OUTBOX_DDL = OUTBOX_DDL_V1 + OUTBOX_LEASES_DDL + OUTBOX_LANES_DDL + OUTBOX_HOT_DDL

# Answers that will not change on retry.
PERMANENT_FAILURES = frozenset(
    {"INVALID_ARGUMENT", "FAILED_PRECONDITION", "ALREADY_EXISTS", "OUT_OF_RANGE", "NOT_FOUND"}
)
# Answers that say the peer could not be asked (down, shedding load, too slow): retried with
# backoff for as long as they last, not counted towards the attempt limit, never split.
OUTAGE_STATUSES = frozenset(
    {"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "CANCELLED", "ABORTED"}
)
BASE_DELAY_S = 0.5
MAX_DELAY_S = 300.0
# Counted failures before a message becomes a dead letter. With the backoff above (0.5 s
# doubling up to 5 min, jittered to half) 20 attempts span about 25 to 50 minutes.
DEFAULT_MAX_ATTEMPTS = 20
# A crashed relay's rows wait at most this long for another relay (issue #15: within 15 s).
DEFAULT_LEASE_S = 10.0
# Error texts kept on a row: the status and the peer's short message, never a payload.
MAX_ERROR_CHARS = 300


# Outages back off to this at most: a peer that is back gets its backlog within seconds. With the
# 5 min cap the kill -9 profile fault scenario drained 6-86 s after the restart (retries of
# the outage had backed off to minutes); a failing call to a down peer costs little.
MAX_OUTAGE_DELAY_S = 5.0
# Backoff jitter from a generator of the relays' own, not the random module's global state
# (see own_random).
_JITTER = own_random()


def retry_delay(
    attempts: int, rng: random.Random | None = None, cap_s: float = MAX_DELAY_S
) -> float:
    """Exponential backoff with jitter, capped; ``attempts`` counts failures so far (from 1)."""
    ceiling = min(cap_s, BASE_DELAY_S * 2 ** max(0, min(attempts, 64) - 1))
    return (rng or _JITTER).uniform(ceiling / 2, ceiling)


class DeliveryError(Exception):
    """A peer's refusal; ``status`` is the gRPC status name (e.g. ``UNAVAILABLE``)."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status

    @property
    def permanent(self) -> bool:
        return self.status in PERMANENT_FAILURES

    @property
    def outage(self) -> bool:
        """The peer could not be asked: says nothing about the message."""
        return self.status in OUTAGE_STATUSES


def _error_text(error: DeliveryError) -> str:
    return str(error)[:MAX_ERROR_CHARS]


@dataclass(frozen=True)
class OutboxMessage:
    outbox_pk: int
    topic: str
    key: str
    payload: bytes
    trace_carrier: dict[str, str]
    attempts: int
    # Counted failures so far (see OUTAGE_STATUSES) and the claim holding the row.
    failed_attempts: int = 0
    lease_token: uuid.UUID | None = None


# A topic's handler delivers one message; raising DeliveryError reports the peer's answer.
Handler = Callable[[OutboxMessage], Awaitable[None]]
# A batch handler delivers several messages of its topic in one call (in outbox order, so a
# key's messages keep their order) and answers for each: None when delivered, else the
# peer's refusal. Raising DeliveryError answers for all of them, and so does answering several
# messages with one and the same DeliveryError object: the call failed as a whole, and the
# relay splits those messages in halves until each has a verdict of its own (unless the
# error is an outage). Each message's trace_carrier is that of its own delivery span, to send
# along with it. A retried message may then arrive after a later one of its key: only for
# receivers that tolerate that (e.g. changes carrying a version).
BatchHandler = Callable[[list[OutboxMessage]], Awaitable[list["DeliveryError | None"]]]
# Called when a message is given up on (dead letter), to record it where users look.
FailureHook = Callable[[OutboxMessage, str], Awaitable[None]]


async def enqueue(
    conn: AsyncConnection,
    topic: str,
    key: str,
    payload: bytes = b"",
    lane: OutboxLane = OutboxLane.INTERACTIVE,
) -> None:
    """Adds a message inside the caller's transaction, carrying the current trace context."""
    await enqueue_many(conn, topic, [(key, payload, current_trace_carrier())], lane)


async def enqueue_many(
    conn: AsyncConnection,
    topic: str,
    messages: list[tuple[str, bytes, dict[str, str]]],
    lane: OutboxLane = OutboxLane.INTERACTIVE,
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
        {
            "t": topic,
            "lane": int(lane),
            "rows": dump_json(rows),
        },
    )


_ENQUEUE = (
    "INSERT INTO outbox (topic, key, payload, trace_carrier, lane) "
    "SELECT %(t)s, x.r->>0, decode(x.r->>1, 'base64'), x.r->2, %(lane)s "
    "FROM jsonb_array_elements(CAST(%(rows)s AS jsonb)) WITH ORDINALITY AS x(r, n) ORDER BY x.n"
)


# Planned afresh at every claim (run unprepared, see claim_due): a plan cached while the
# outbox was nearly empty joined the claimed rows to the outbox by a scan of the whole
# outbox_pkey index, each entry tested against every claimed row - up to a second a claim
# once a backlog had built up (auto_explain in the pipeline benchmark: profile's relay,
# whose claim names no lane; docs/performance.md, "Plans that scanned whole tables").
# Planning one costs 0.13-0.31 ms (probe), once a pass.
_CLAIM = """
    WITH due AS (
        SELECT outbox_pk FROM outbox
        WHERE failed_at IS NULL AND next_attempt_at <= now()
          AND (locked_until IS NULL OR locked_until < now()) {lane}
        ORDER BY next_attempt_at, outbox_pk
        LIMIT %(n)s FOR UPDATE SKIP LOCKED
    )
    UPDATE outbox o SET locked_until = now() + make_interval(secs => %(lease)s),
        lease_token = %(tok)s
    FROM due WHERE o.outbox_pk = due.outbox_pk
    RETURNING o.outbox_pk, o.topic, o.key, o.payload, o.trace_carrier, o.attempts,
              o.failed_attempts
"""
_CLAIM_ALL = _CLAIM.format(lane="")
_CLAIM_LANE = _CLAIM.format(lane="AND lane = %(lane)s")


# A claim's rows by primary key, each with the token it must still carry (renewals and
# releases; see OUTBOX_HOT_DDL for why not by token alone).
_HELD_ROWS = "unnest(CAST(:o AS bigint[]), CAST(:t AS uuid[])) AS x(pk, tok)"


def _claimed_rows(
    claims: Mapping[uuid.UUID, Sequence[int]],
) -> tuple[list[int], list[uuid.UUID]]:
    pks: list[int] = []
    tokens: list[uuid.UUID] = []
    for token, rows in claims.items():
        pks.extend(rows)
        tokens.extend([token] * len(rows))
    return pks, tokens


class OutboxStore:
    """The relay's side of the outbox table. Every completion is fenced by the claim's token
    and says whether it applied (False: the relay had lost the row to another claim)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def claim_due(
        self, limit: int, lease_s: float, lane: OutboxLane | None = None
    ) -> list[OutboxMessage]:
        """Leases due rows (of one lane, or of all) to this relay under a new token; other
        relays skip them."""
        token = uuid.uuid4()
        async with self.engine.begin() as conn:
            rows = await fetch_direct(
                conn,
                _CLAIM_ALL if lane is None else _CLAIM_LANE,
                {"n": limit, "lease": lease_s, "tok": token, "lane": int(lane or 0)},
                prepare=False,
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
                        r.failed_attempts,
                        token,
                    )
                    for r in rows
                ),
                key=lambda m: m.outbox_pk,
            )

    async def renew(self, claims: Mapping[uuid.UUID, Sequence[int]], lease_s: float) -> int:
        """Extends the lease of the rows these claims (token: the rows' outbox_pk) still hold
        (the heartbeat)."""
        pks, tokens = _claimed_rows(claims)
        if not pks:
            return 0

        async def work(conn: AsyncConnection) -> int:
            result = await conn.execute(
                text(
                    "UPDATE outbox o SET locked_until = now() + make_interval(secs => :lease) "
                    f"FROM {_HELD_ROWS} WHERE o.outbox_pk = x.pk AND o.lease_token = x.tok "
                    "AND o.failed_at IS NULL"
                ),
                {"o": pks, "t": tokens, "lease": lease_s},
            )
            return int(result.rowcount or 0)

        # A renewal and a `delivered` DELETE lock many of the same rows in no common order and
        # can deadlock (seen under the pipeline benchmark, docs/performance.md): the loser
        # changed nothing and runs again, instead of failing the pass.
        return await run_in_transaction(self.engine.begin, work)

    async def release_claims(self, claims: Mapping[uuid.UUID, Sequence[int]]) -> int:
        """Hands back every row these claims (token: the rows' outbox_pk) still hold (a
        graceful stop)."""
        pks, tokens = _claimed_rows(claims)
        if not pks:
            return 0
        async with self.engine.begin() as conn:
            result = await conn.execute(
                text(
                    "UPDATE outbox o SET locked_until = NULL, lease_token = NULL "
                    f"FROM {_HELD_ROWS} WHERE o.outbox_pk = x.pk AND o.lease_token = x.tok"
                ),
                {"o": pks, "t": tokens},
            )
        return int(result.rowcount or 0)

    async def delivered(self, messages: list[OutboxMessage]) -> list[OutboxMessage]:
        """Removes delivered rows still held by their claim, in one statement; returns those
        removed (a row another relay claimed since stays for it)."""
        if not messages:
            return []

        tokens = {m.lease_token for m in messages}

        async def work(conn: AsyncConnection) -> set[int]:
            if len(tokens) == 1:
                # A pass's rows share its claim's token: it goes once, not once a row (psycopg
                # dumps an array parameter element by element in Python).
                rows = await conn.execute(
                    text(
                        "DELETE FROM outbox WHERE outbox_pk = ANY(CAST(:o AS bigint[])) "
                        "AND lease_token = :t RETURNING outbox_pk"
                    ),
                    {"o": [m.outbox_pk for m in messages], "t": next(iter(tokens))},
                )
                return {r.outbox_pk for r in rows}
            rows = await conn.execute(
                text(
                    "DELETE FROM outbox o USING unnest(CAST(:o AS bigint[]), CAST(:t AS uuid[])) "
                    "AS x(pk, tok) WHERE o.outbox_pk = x.pk AND o.lease_token = x.tok "
                    "RETURNING o.outbox_pk"
                ),
                {
                    "o": [m.outbox_pk for m in messages],
                    "t": [m.lease_token for m in messages],
                },
            )
            return {r.outbox_pk for r in rows}

        # Run again after a deadlock with a renewal (see ``renew``).
        gone = await run_in_transaction(self.engine.begin, work)
        return [m for m in messages if m.outbox_pk in gone]

    async def retry_later(
        self, message: OutboxMessage, error: str, delay_s: float, *, counted: bool = True
    ) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                text(
                    "UPDATE outbox SET attempts = attempts + 1, "
                    "failed_attempts = failed_attempts + :c, last_error = :e, "
                    "locked_until = NULL, lease_token = NULL, "
                    "next_attempt_at = now() + make_interval(secs => :d) "
                    "WHERE outbox_pk = :o AND lease_token = :t"
                ),
                {
                    "c": 1 if counted else 0,
                    "e": error[:MAX_ERROR_CHARS],
                    "d": delay_s,
                    "o": message.outbox_pk,
                    "t": message.lease_token,
                },
            )
        return bool(result.rowcount)

    async def release(self, message: OutboxMessage) -> bool:
        """Hands a leased row back untouched (its predecessor has to go first)."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                text(
                    "UPDATE outbox SET locked_until = NULL, lease_token = NULL "
                    "WHERE outbox_pk = :o AND lease_token = :t"
                ),
                {"o": message.outbox_pk, "t": message.lease_token},
            )
        return bool(result.rowcount)

    async def give_up(self, message: OutboxMessage, error: str, *, counted: bool = True) -> bool:
        """Makes the row a dead letter."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                text(
                    "UPDATE outbox SET attempts = attempts + 1, "
                    "failed_attempts = failed_attempts + :c, last_error = :e, "
                    "failed_at = now(), locked_until = NULL, lease_token = NULL "
                    "WHERE outbox_pk = :o AND lease_token = :t"
                ),
                {
                    "c": 1 if counted else 0,
                    "e": error[:MAX_ERROR_CHARS],
                    "o": message.outbox_pk,
                    "t": message.lease_token,
                },
            )
        return bool(result.rowcount)


@dataclass
class _HeldClaim:
    """A claim a relay is working on: when its lease was last set (time.monotonic(), taken
    before the statement that set it) and its rows (outbox_pk), which renewals and releases
    name."""

    leased_at: float
    rows: list[int] = field(default_factory=list)


class OutboxRelay:
    """Delivers due outbox rows by topic.

    Messages of one key are delivered in the order they were written (within one relay): the
    first of each key goes concurrently with other keys, later ones follow it one by one, and
    wait for a later pass if it did not get through. A topic with a batch handler gets all of
    a pass's messages in one call instead (the receiver keeps their order). With ``lane`` set
    the relay serves that lane's rows only (see the module's note on lanes).
    """

    def __init__(  # noqa: PLR0913
        self,
        store: OutboxStore,
        handlers: Mapping[str, Handler],
        tracer: trace.Tracer,
        *,
        on_failure: Mapping[str, FailureHook] | None = None,
        batch_handlers: Mapping[str, BatchHandler] | None = None,
        batch_size: int = 64,
        concurrency: int = 16,
        lease_s: float = DEFAULT_LEASE_S,
        poll_s: float = 0.5,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        topic_max_attempts: Mapping[str, int] | None = None,
        lane: OutboxLane | None = None,
    ) -> None:
        self.store = store
        self.lane = lane
        self.handlers = dict(handlers)
        self.on_failure = dict(on_failure or {})
        self.batch_handlers = dict(batch_handlers or {})
        self.tracer = tracer
        self.batch_size = batch_size
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.max_attempts = max_attempts
        self.topic_max_attempts = dict(topic_max_attempts or {})
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrency)
        # The claims this relay is working on (renewed, released on stop), by lease token.
        self._held: dict[uuid.UUID, _HeldClaim] = {}

    @property
    def topics(self) -> list[str]:
        """The topics this relay delivers."""
        return sorted({*self.handlers, *self.batch_handlers})

    def attempt_limit(self, topic: str) -> int:
        return self.topic_max_attempts.get(topic, self.max_attempts)

    def wake(self) -> None:
        """Called after a local commit, so delivery does not wait for the next poll."""
        self._wake.set()

    async def run(self) -> None:
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
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
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await heartbeat
            await self.release_held()

    async def release_held(self) -> None:
        """Hands back the rows of the passes running (a graceful stop): another relay, or
        this one restarted, delivers them at once instead of after the lease."""
        claims = {token: claim.rows for token, claim in self._held.items()}
        self._held = {}
        if not claims:
            return
        try:
            released = await self.store.release_claims(claims)
        except Exception:  # the database is gone: the leases run out instead
            log.warning(
                "outbox relay could not release its leases; they expire in %ss",
                self.lease_s,
                exc_info=True,
            )
            return
        if released:
            log.info("outbox relay released %d leased messages", released)

    async def _heartbeat(self) -> None:
        """Renews the leases of the passes running once a third of the lease has gone by:
        each is renewed with at least half of it left.

        Only the claims that old: renewing every claim held at each tick (three ticks a
        lease) rewrote a row of most passes' messages - under the pipeline benchmark 20,000
        row updates for 20,500 events delivered, 15 MB of WAL, the third most costly statement
        of ingestion's relay (pg_stat_statements; issue #20) - while a pass mostly ends well
        within its lease."""
        while True:
            await asyncio.sleep(self.lease_s / 6)
            started = time.monotonic()
            due = {
                token: claim
                for token, claim in self._held.items()
                if started - claim.leased_at >= self.lease_s / 3
            }
            if not due:
                continue
            try:
                await self.store.renew(
                    {token: claim.rows for token, claim in due.items()}, self.lease_s
                )
            except Exception:  # fencing keeps a late relay from completing anything
                log.warning("outbox lease renewal failed", exc_info=True)
                continue
            for claim in due.values():
                claim.leased_at = started

    async def run_once(self) -> int:
        claimed_at = time.monotonic()
        messages = await self.store.claim_due(self.batch_size, self.lease_s, self.lane)
        if not messages:
            return 0
        for message in messages:
            if message.lease_token is not None:
                claim = self._held.setdefault(message.lease_token, _HeldClaim(claimed_at))
                claim.rows.append(message.outbox_pk)
        tokens = {m.lease_token for m in messages if m.lease_token is not None}
        try:
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
            done = [m for part in parts for m in part]
            removed = await self.store.delivered(done)
            if len(removed) < len(done):
                # Their lease ran out and another relay claimed them (or they were erased):
                # that relay completes them; the receivers take the second delivery.
                log.warning(
                    "outbox relay no longer held %d of the messages it delivered",
                    len(done) - len(removed),
                )
        except asyncio.CancelledError:
            raise  # a stop: the tokens stay held, and run() hands their rows back
        except BaseException:
            self._forget(tokens)
            raise
        self._forget(tokens)
        return len(messages)

    def _forget(self, tokens: set[uuid.UUID]) -> None:
        for token in tokens:
            self._held.pop(token, None)

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
        """Delivers a topic's messages in as few calls as possible, each message in a delivery
        span of its own trace, and finds the poison ones by splitting a call that failed as a
        whole (each split half is one more call, in order)."""
        spans = [
            item_span(
                self.tracer,
                f"outbox deliver {topic}",
                m.trace_carrier,
                kind=trace.SpanKind.CONSUMER,
                attributes={"svod.outbox.attempt": m.attempts + 1, "svod.outbox.batch": True},
            )
            for m in messages
        ]
        # Built directly: dataclasses.replace looks every field up by name (4% of a batch's
        # delivery in ingestion's py-spy samples, issue #20).
        sent = [
            OutboxMessage(
                m.outbox_pk,
                m.topic,
                m.key,
                m.payload,
                trace_carrier_of(span),
                m.attempts,
                m.failed_attempts,
                m.lease_token,
            )
            for m, span in zip(messages, spans, strict=True)
        ]
        verdicts: dict[int, DeliveryError | None] = {}
        pending = [list(range(len(messages)))]
        while pending:
            indices = pending.pop(0)
            answers = await self._call_batch(
                topic, [sent[i] for i in indices], [spans[i] for i in indices]
            )
            shared: dict[int, list[int]] = {}
            for i, answer in zip(indices, answers, strict=True):
                if answer is not None and not answer.outage:
                    shared.setdefault(id(answer), []).append(i)
                verdicts[i] = answer
            splits = [group for group in shared.values() if len(group) > 1]
            for group in splits:
                # One answer for several messages: the call failed as a whole. Halves are
                # sent next (before the rest of the queue), in outbox order.
                middle = len(group) // 2
                pending[:0] = [group[:middle], group[middle:]]
        delivered = []
        for i, (message, span) in enumerate(zip(messages, spans, strict=True)):
            answer = verdicts[i]
            if answer is None:
                delivered.append(message)
            else:
                span.set_status(trace.StatusCode.ERROR, answer.status)
                await self._failed(message, answer)
            span.end()
        return delivered

    async def _call_batch(
        self, topic: str, messages: list[OutboxMessage], spans: list[trace.Span]
    ) -> list[DeliveryError | None]:
        try:
            # The call serves every message: a child of the first one's delivery (so a lone
            # message stays one trace end to end), linked to the others'.
            with self.tracer.start_as_current_span(
                f"outbox deliver batch {topic}",
                context=trace.set_span_in_context(spans[0]),
                links=[trace.Link(span.get_span_context()) for span in spans[1:]]
                if spans[0].is_recording()
                else None,
                attributes={"svod.outbox.batch_size": len(messages)},
            ):
                answers = await self.batch_handlers[topic](messages)
        except DeliveryError as error:
            return [error] * len(messages)
        except Exception as error:  # a bug or an unreachable peer: retry later, never drop
            log.exception("outbox batch handler for %s failed", topic)
            return [_internal(error)] * len(messages)
        if len(answers) != len(messages):
            log.error(
                "outbox batch handler for %s answered %d of %d", topic, len(answers), len(messages)
            )
            return [DeliveryError("INTERNAL", "handler answered the wrong count")] * len(messages)
        return answers

    async def _failed(self, message: OutboxMessage, error: DeliveryError) -> None:
        """Gives up on a permanent refusal or at the attempt limit (dead letter), else
        schedules a retry."""
        counted = not error.outage
        limit = self.attempt_limit(message.topic)
        exhausted = counted and message.failed_attempts + 1 >= limit
        if error.permanent or exhausted:
            reason = _error_text(error)
            if not error.permanent:
                suffix = f" (gave up after {limit} attempts)"
                reason = reason[: MAX_ERROR_CHARS - len(suffix)] + suffix
            log.warning(
                "outbox message %d (%s) is a dead letter: %s",
                message.outbox_pk,
                message.topic,
                error.status,
            )
            if not await self.store.give_up(message, reason, counted=counted):
                return  # another relay holds it now
            hook = self.on_failure.get(message.topic)
            if hook is not None:
                await hook(message, reason)
        else:
            # Outages back off by all attempts (capped low), counted failures by theirs.
            delay = (
                retry_delay(message.failed_attempts + 1)
                if counted
                else retry_delay(message.attempts + 1, cap_s=MAX_OUTAGE_DELAY_S)
            )
            await self.store.retry_later(message, _error_text(error), delay, counted=counted)

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
                except Exception as error:  # a bug: counted, so it ends as a dead letter
                    log.exception("outbox handler for %s failed", message.topic)
                    span.set_status(trace.StatusCode.ERROR, "INTERNAL")
                    await self._failed(message, _internal(error))
                    return False
                return True


def _internal(error: BaseException) -> DeliveryError:
    """A handler's own failure, named by its type only (its text may carry payload values).
    Its database out of reach is an outage (not counted, retried within seconds): after a
    Postgres restart profile's relay counted every pass as a failure and backed off for a
    minute (tests/faults/test_postgres_restart)."""
    if database_unavailable(error) is not None:
        return DeliveryError("UNAVAILABLE", f"database unavailable ({type(error).__name__})")
    return DeliveryError("INTERNAL", f"delivery failed ({type(error).__name__})")


# -- dead letters ------------------------------------------------------------------------------

# Bounds of the dead-letter RPCs (documented on their proto fields).
DEFAULT_DEAD_LETTER_PAGE = 100
MAX_DEAD_LETTER_PAGE = 500
MAX_REDRIVE_IDS = 1_000


@dataclass(frozen=True)
class DeadLetter:
    """A message refused for good, as the API shows it: no payload (it may be personal)."""

    dead_letter_id: int
    topic: str
    key: str
    attempts: int
    last_error: str
    failed_at: dt.datetime
    created_at: dt.datetime
    redrive_count: int


@dataclass(frozen=True)
class Redriven:
    """A dead letter sent again."""

    dead_letter_id: int
    topic: str
    key: str


# Runs in the redrive's transaction with the messages sent again: a service puts what it
# shows about them back to pending (ingestion's record states).
RedriveHook = Callable[[AsyncConnection, list[Redriven]], Awaitable[None]]

_DEAD_COLUMNS = (
    "outbox_pk, topic, key, attempts, coalesce(last_error, '') AS last_error, failed_at, "
    "created_at, redrive_count"
)


def _dead(row: object) -> DeadLetter:
    return DeadLetter(
        int(row.outbox_pk),  # type: ignore[attr-defined]
        row.topic,  # type: ignore[attr-defined]
        row.key,  # type: ignore[attr-defined]
        int(row.attempts),  # type: ignore[attr-defined]
        row.last_error,  # type: ignore[attr-defined]
        row.failed_at,  # type: ignore[attr-defined]
        row.created_at,  # type: ignore[attr-defined]
        int(row.redrive_count),  # type: ignore[attr-defined]
    )


class DeadLetterStore:
    """Lists, shows and redrives a service's dead letters (its outbox rows with failed_at)."""

    def __init__(self, engine: AsyncEngine, on_redrive: RedriveHook | None = None) -> None:
        self.engine = engine
        self.on_redrive = on_redrive

    async def list(
        self, topic: str | None, after_id: int, limit: int
    ) -> tuple[list[DeadLetter], int]:
        """One page of dead letters (oldest first) after ``after_id``, and how many dead
        letters match in all."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        f"SELECT {_DEAD_COLUMNS} FROM outbox WHERE failed_at IS NOT NULL "
                        "AND outbox_pk > :a AND (CAST(:t AS text) IS NULL OR topic = :t) "
                        "ORDER BY outbox_pk LIMIT :n"
                    ),
                    {"a": after_id, "t": topic, "n": limit},
                )
            ).all()
            total = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM outbox WHERE failed_at IS NOT NULL "
                        "AND (CAST(:t AS text) IS NULL OR topic = :t)"
                    ),
                    {"t": topic},
                )
            ).scalar_one()
        return [_dead(r) for r in rows], int(total)

    async def get(self, dead_letter_id: int) -> DeadLetter | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        f"SELECT {_DEAD_COLUMNS} FROM outbox "
                        "WHERE failed_at IS NOT NULL AND outbox_pk = :o"
                    ),
                    {"o": dead_letter_id},
                )
            ).first()
        return None if row is None else _dead(row)

    async def redrive(
        self, ids: Sequence[int] | None, topic: str | None
    ) -> tuple[builtins.list[Redriven], builtins.list[int]]:  # `list` is a method here
        """Sends dead letters again: the named ones (all or none: when some are not dead
        letters, nothing changes and they are returned as missing) or all of a topic. Their
        attempts start again from 0; the relay delivers them as new."""
        async with self.engine.begin() as conn:
            where = "failed_at IS NOT NULL AND (CAST(:t AS text) IS NULL OR topic = :t)"
            params: dict[str, object] = {"t": topic}
            if ids is not None:
                wanted = sorted(set(ids))
                found = {
                    r.outbox_pk
                    for r in await conn.execute(
                        text(
                            f"SELECT outbox_pk FROM outbox WHERE {where} "
                            "AND outbox_pk = ANY(:o) FOR UPDATE"
                        ),
                        {**params, "o": wanted},
                    )
                }
                missing = [i for i in wanted if i not in found]
                if missing:
                    return [], missing
                where += " AND outbox_pk = ANY(:o)"
                params["o"] = wanted
            rows = (
                await conn.execute(
                    text(
                        "UPDATE outbox SET failed_at = NULL, attempts = 0, failed_attempts = 0, "
                        "last_error = NULL, next_attempt_at = now(), locked_until = NULL, "
                        "lease_token = NULL, redrive_count = redrive_count + 1 "
                        f"WHERE {where} RETURNING outbox_pk, topic, key"
                    ),
                    params,
                )
            ).all()
            redriven = sorted(
                (Redriven(int(r.outbox_pk), r.topic, r.key) for r in rows),
                key=lambda d: d.dead_letter_id,
            )
            if redriven and self.on_redrive is not None:
                await self.on_redrive(conn, redriven)
        return redriven, []
