"""The only module that touches the ``ingestion`` schema."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from svod_ingestion.domain.attribution import GraceClock, Issue
from svod_ingestion.domain.model import (
    RECORD_TOPICS,
    UNCHECKED,
    Incoming,
    MessageKind,
    RecordState,
    RecordStatus,
    StoredPayload,
    StoredRecord,
)
from svod_runtime.db import fetch_direct
from svod_runtime.outbox import (
    BatchHandler,
    DeliveryError,
    OutboxLane,
    OutboxMessage,
    Redriven,
)
from svod_runtime.telemetry import current_trace_carrier

# Relay passes hold this advisory lock shared while they deliver; an erasure takes it alone.
DELIVERY_LOCK = 0x5356_4F44_4552


# A connection's staging table for messages being stored (store_new): temporary, so each
# connection has its own, and emptied at every commit.
_INCOMING_TABLE = """
    CREATE TEMP TABLE IF NOT EXISTS incoming_records (
        n integer NOT NULL, source text NOT NULL, message_id text NOT NULL, kind text NOT NULL,
        channel text NOT NULL, payload bytea NOT NULL, payload_hash bytea NOT NULL,
        unchecked boolean NOT NULL
    ) ON COMMIT DELETE ROWS
"""
_COPY_INCOMING = (
    "COPY pg_temp.incoming_records (n, source, message_id, kind, channel, payload, "
    "payload_hash, unchecked) FROM STDIN (FORMAT BINARY)"
)
_INCOMING_TYPES = ["int4", "text", "text", "text", "text", "bytea", "bytea", "bool"]
# Set in a pooled connection's info once its staging table exists (made when the connection
# is opened, committed): a stream's chunk then skips the CREATE ... IF NOT EXISTS, one of the
# six round trips of a chunk (BEGIN, CREATE, COPY and its data, the statement, COMMIT).
_STAGING_READY = "svod_ingestion_staging_table"


def stage_on_connect(engine: AsyncEngine) -> None:
    """Creates the staging table of ``store_new`` in each connection ``engine`` opens. A
    connection opened before this (or in another engine) creates it in its first chunk."""
    if event.contains(engine.sync_engine, "connect", _create_staging_table):
        return
    event.listen(engine.sync_engine, "connect", _create_staging_table)


def _create_staging_table(dbapi_connection: Any, record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(_INCOMING_TABLE)
        dbapi_connection.commit()
    except psycopg.Error:  # the connection still serves; its first chunk tries again
        dbapi_connection.rollback()
        return
    finally:
        cursor.close()
    record.info[_STAGING_READY] = True


# The new messages, in their order (a message id taken - earlier, by a concurrent stream, or
# by a repeat in the same rows - is skipped), and their outbox entries in the same order;
# ``incoming`` is the rows (n, source, message_id, kind, channel, payload, payload_hash,
# unchecked), copied into the staging table or given as arrays.
_STORE = """
    WITH incoming AS ({incoming}), new AS (
        INSERT INTO records (record_id, source, message_id, kind, channel, payload,
                             payload_hash)
        SELECT gen_random_uuid(), source, message_id, kind, channel, payload, payload_hash
        FROM incoming ORDER BY n
        ON CONFLICT (source, message_id) DO NOTHING
        RETURNING record_pk, record_id, source, message_id, kind, payload_hash, received_at
    ), queued AS (
        INSERT INTO outbox (topic, key, payload, trace_carrier, lane)
        SELECT 'record.' || new.kind, new.record_pk::text,
               CASE WHEN u.source IS NULL THEN ''::bytea ELSE %(unchecked)s END,
               CAST(%(carrier)s AS jsonb), %(lane)s
        FROM new LEFT JOIN (SELECT DISTINCT source, message_id FROM incoming WHERE unchecked)
            AS u USING (source, message_id)
        ORDER BY new.record_pk
    )
    SELECT {returned} FROM new
"""
_COPIED = "SELECT * FROM pg_temp.incoming_records"
_LISTED = (
    "SELECT * FROM unnest(CAST(%(s)s AS text[]), CAST(%(m)s AS text[]), "
    "CAST(%(k)s AS text[]), CAST(%(ch)s AS text[]), CAST(%(p)s AS bytea[]), "
    "CAST(%(h)s AS bytea[]), CAST(%(u)s AS boolean[])) WITH ORDINALITY "
    "AS x(source, message_id, kind, channel, payload, payload_hash, unchecked, n)"
)
# What a stored message's answer needs: its record (a single call's receipt) ...
_RECEIPTS = "record_pk, record_id::text, source, message_id, payload_hash, received_at"
# ... or only which messages were new (a stream's answer counts them). Issue #20: loading the
# receipts' columns and building a StoredRecord of each was a quarter of ingestion's CPU for
# storing a chunk of 500 (py-spy of accept_many, 20,000 events: 26% in building the dict, 8.5%
# in fetchall).
_REFS = "source, message_id"
_STORE_STATEMENTS = {
    (copied, returned): _STORE.format(incoming=_COPIED if copied else _LISTED, returned=returned)
    for copied in (True, False)
    for returned in (_RECEIPTS, _REFS)
}
# Fewer rows than this go as array parameters in the statement itself: one round trip, where
# COPY takes three (the staging table's check, the COPY, the statement) - a single Track or
# Identify is one row. Dumping arrays element by element in Python costs only for big chunks.
COPY_FROM_ROWS = 32


class IngestionTransaction:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def store_new(
        self, rows: Sequence[tuple[Incoming, bytes]], lane: OutboxLane
    ) -> dict[tuple[str, str], StoredRecord]:
        """Stores new messages (message, payload hash) with their outbox entries, in their
        order, in ``lane`` (an unchecked identify call's entry carries UNCHECKED); returns
        those stored here by (source, message id). Taken ids are skipped: a repeat inside
        ``rows`` too (the first one is stored)."""
        stored = await self._store(rows, lane, _RECEIPTS)
        return {
            (source, message_id): StoredRecord(record_pk, record_id, payload_hash, received_at)
            for record_pk, record_id, source, message_id, payload_hash, received_at in stored
        }

    async def store_new_refs(
        self, rows: Sequence[tuple[Incoming, bytes]], lane: OutboxLane
    ) -> set[tuple[str, str]]:
        """As ``store_new``, returning only the (source, message id) of those stored here."""
        return set(await self._store(rows, lane, _REFS))

    async def _store(
        self, rows: Sequence[tuple[Incoming, bytes]], lane: OutboxLane, returned: str
    ) -> list[tuple[Any, ...]]:
        """One statement inserts the new messages and their outbox entries; it returns
        ``returned`` of each new one. A stream's chunk travels by binary COPY into a
        temporary table of the connection first; fewer than COPY_FROM_ROWS rows go as arrays
        in the statement. Issue #20: the arrays of the INSERT this replaces were dumped
        element by element in Python (psycopg's ListDumper), 7% of ingestion's samples during
        a TrackStream load, and its outbox JSON document another 3%; COPY rows are formatted
        in C."""
        if not rows:
            return []
        raw = await self.conn.get_raw_connection()
        driver: Any = raw.driver_connection
        params: dict[str, Any] = {
            "carrier": json.dumps(current_trace_carrier()),
            "lane": int(lane),
            "unchecked": UNCHECKED,
        }
        try:
            cursor = driver.cursor()
            if len(rows) < COPY_FROM_ROWS:
                params |= {
                    "s": [m.source for m, _ in rows],
                    "m": [m.message_id for m, _ in rows],
                    "k": [m.kind.value for m, _ in rows],
                    "ch": [m.channel for m, _ in rows],
                    "p": [m.payload for m, _ in rows],
                    "h": [h for _, h in rows],
                    "u": [not m.quality_checked for m, _ in rows],
                }
                await cursor.execute(_STORE_STATEMENTS[False, returned], params)
            else:
                if not self.conn.info.get(_STAGING_READY):
                    # Once per connection it creates the table (kept, emptied at each commit:
                    # no catalog churn per transaction); after that a catalog look-up.
                    await cursor.execute(_INCOMING_TABLE)
                await self._copy_incoming(cursor, rows)
                await cursor.execute(_STORE_STATEMENTS[True, returned], params)
            stored: list[tuple[Any, ...]] = await cursor.fetchall()
        except psycopg.OperationalError:
            if getattr(driver, "closed", False):
                await self.conn.invalidate()
            raise
        return stored

    @staticmethod
    async def _copy_incoming(cursor: Any, rows: Sequence[tuple[Incoming, bytes]]) -> None:
        async with cursor.copy(_COPY_INCOMING) as copy:
            copy.set_types(_INCOMING_TYPES)
            for n, (message, payload_hash) in enumerate(rows):
                await copy.write_row(
                    (
                        n,
                        message.source,
                        message.message_id,
                        message.kind.value,
                        message.channel,
                        message.payload,
                        payload_hash,
                        not message.quality_checked,
                    )
                )

    async def existing_many(
        self, refs: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], StoredRecord]:
        if not refs:
            return {}
        rows = await self.conn.execute(
            text(
                "SELECT r.record_pk, r.record_id, r.source, r.message_id, r.payload_hash, "
                "r.received_at FROM records r JOIN unnest(CAST(:s AS text[]), "
                "CAST(:m AS text[])) AS x(s, m) ON r.source = x.s AND r.message_id = x.m"
            ),
            {"s": [r[0] for r in refs], "m": [r[1] for r in refs]},
        )
        return {
            (r.source, r.message_id): StoredRecord(
                r.record_pk, str(r.record_id), bytes(r.payload_hash), r.received_at
            )
            for r in rows
        }


class IngestionStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        stage_on_connect(engine)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[IngestionTransaction]:
        async with self.engine.begin() as conn:
            yield IngestionTransaction(conn)

    async def payloads(self, record_pks: list[int]) -> dict[int, StoredPayload]:
        """Stored requests, receive times and grace clocks by record pk, in one query (erased
        ones left out)."""
        # Read past SQLAlchemy: its row handling was half of this read's CPU, and the read
        # 9% of the process's py-spy samples while the relay delivered events (issue #20).
        async with self.engine.connect() as conn:
            rows = await fetch_direct(
                conn,
                "SELECT record_pk, payload, received_at, unknown_for_s, unknown_since "
                "FROM records WHERE record_pk = ANY(CAST(%(r)s AS bigint[])) "
                "AND payload IS NOT NULL",
                {"r": record_pks},
            )
            return {
                int(r.record_pk): StoredPayload(
                    bytes(r.payload),
                    r.received_at,
                    GraceClock(float(r.unknown_for_s), r.unknown_since),
                )
                for r in rows
            }

    async def mark_delivered_many(self, delivered: list[tuple[int, str, int]]) -> None:
        """(record pk, customer id, attempts) of delivered records, in one statement."""
        if not delivered:
            return
        # The second test of record_pk is the first one's consequence, said so that Postgres
        # finds the records through records_pkey: with the join alone it hashed every row of
        # records on each relay pass of the pipeline benchmark (a scan that grows with the
        # table: 73 against 19-34 ms for 2,000 of 60,000 records, EXPLAIN ANALYZE, probe;
        # docs/performance.md, "Plans that scanned whole tables").
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE records r SET state = 'delivered', customer_id = x.c, attempts = x.a, "
                    "delivered_at = now(), last_error = NULL "
                    "FROM unnest(CAST(:r AS bigint[]), CAST(:c AS uuid[]), CAST(:a AS int[])) "
                    "AS x(r, c, a) WHERE r.record_pk = x.r "
                    "AND r.record_pk = ANY(CAST(:r AS bigint[]))"
                ),
                {
                    "r": [d[0] for d in delivered],
                    "c": [d[1] for d in delivered],
                    "a": [d[2] for d in delivered],
                },
            )

    async def mark_checked(self, checked: list[tuple[int, bytes]]) -> None:
        """(record pk, standardised payload) of records quality has now checked: the payload
        to deliver is quality's, and their outbox entries no longer ask for a check."""
        if not checked:
            return
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE records r SET payload = x.p "
                    "FROM unnest(CAST(:r AS bigint[]), CAST(:p AS bytea[])) AS x(r, p) "
                    "WHERE r.record_pk = x.r AND r.payload IS NOT NULL"
                ),
                {"r": [c[0] for c in checked], "p": [c[1] for c in checked]},
            )
            await conn.execute(
                text(
                    "UPDATE outbox SET payload = '' WHERE topic = 'record.identify' "
                    "AND key = ANY(:k) AND payload = :u"
                ),
                {"k": [str(c[0]) for c in checked], "u": UNCHECKED},
            )

    async def mark_failed(
        self, record_pk: int, error: str, attempts: int, *, erase_payload: bool = False
    ) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                text("DELETE FROM held_events WHERE record_pk = :r"), {"r": record_pk}
            )
            await conn.execute(
                text(
                    "UPDATE records SET state = 'failed', attempts = :a, last_error = :e, "
                    "payload = CASE WHEN :x THEN NULL ELSE payload END WHERE record_pk = :r"
                ),
                {"a": attempts, "e": error, "r": record_pk, "x": erase_payload},
            )

    def while_delivering(self, handler: BatchHandler) -> BatchHandler:
        """The relay's batch handler, run holding DELIVERY_LOCK shared: an erasure (which
        takes it alone) waits for the deliveries running, and none starts during it."""

        async def guarded(messages: list[OutboxMessage]) -> list[DeliveryError | None]:
            async with self.engine.begin() as conn:
                # A transaction-level lock: released however the pass ends. The transaction
                # does nothing else, so it holds no snapshot while the pass runs.
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": DELIVERY_LOCK}
                )
                return await handler(messages)

        return guarded

    async def erase_pending(
        self,
        matches: Callable[[MessageKind, bytes], bool],
        error: str,
        chunk: int = 2_000,
    ) -> int:
        """Erases the payloads of messages not delivered yet for which ``matches(kind,
        payload)`` holds, and fails them with ``error``: they will not be delivered. Waits for
        the deliveries running (DELIVERY_LOCK), so none of them carries such a payload on."""
        erased: list[int] = []
        async with self.engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": DELIVERY_LOCK})
            after = 0
            while True:
                rows = (
                    await conn.execute(
                        text(
                            "SELECT record_pk, kind, payload FROM records "
                            "WHERE state IN ('pending', 'unattributed') AND payload IS NOT NULL "
                            "AND record_pk > :a ORDER BY record_pk LIMIT :n"
                        ),
                        {"a": after, "n": chunk},
                    )
                ).all()
                erased += [
                    r.record_pk for r in rows if matches(MessageKind(r.kind), bytes(r.payload))
                ]
                if len(rows) < chunk:
                    break
                after = rows[-1].record_pk
            if not erased:
                return 0
            await conn.execute(
                text("DELETE FROM held_events WHERE record_pk = ANY(:p)"), {"p": erased}
            )
            await conn.execute(
                text(
                    "DELETE FROM outbox WHERE topic IN ('record.identify', 'record.track') "
                    "AND key = ANY(:k)"
                ),
                {"k": [str(pk) for pk in erased]},
            )
            await conn.execute(
                text(
                    "UPDATE records SET payload = NULL, state = 'failed', last_error = :e "
                    "WHERE record_pk = ANY(:p)"
                ),
                {"e": error, "p": erased},
            )
        return len(erased)

    async def purge_payloads(self, older_than: dt.timedelta, limit: int = 5_000) -> int:
        """Drops the payloads of messages delivered or failed longer ago than ``older_than``
        (at most ``limit`` per call); the message ids and fingerprints stay."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                text(
                    """
                    UPDATE records SET payload = NULL WHERE record_pk IN (
                        SELECT record_pk FROM records
                        WHERE payload IS NOT NULL AND state IN ('delivered', 'failed')
                          AND coalesce(delivered_at, received_at) < now() - :age
                        LIMIT :n)
                    """
                ),
                {"age": older_than, "n": limit},
            )
        return int(result.rowcount or 0)

    async def erase_payloads(self, refs: list[tuple[str, str]]) -> int:
        if not refs:
            return 0
        async with self.engine.begin() as conn:
            result = await conn.execute(
                text(
                    """
                    UPDATE records SET payload = NULL
                    WHERE payload IS NOT NULL AND (source, message_id) IN (
                        SELECT s, m FROM jsonb_to_recordset(CAST(:refs AS jsonb))
                            AS x(s text, m text))
                    RETURNING record_pk
                    """
                ),
                {"refs": json.dumps([{"s": s, "m": m} for s, m in refs])},
            )
            erased = [int(r[0]) for r in result]
            # What a held event keeps of its identifiers goes with the payload, and its next
            # look (at once) finds it can never be delivered: it fails, saying so.
            await conn.execute(
                text("DELETE FROM held_event_keys WHERE record_pk = ANY(:p)"), {"p": erased}
            )
            await conn.execute(
                text(
                    "UPDATE held_events SET next_check_at = now() "
                    "WHERE record_pk = ANY(:p) AND queued_at IS NULL"
                ),
                {"p": erased},
            )
        return len(erased)

    async def status(self, source: str, message_id: str) -> RecordStatus | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        """
                        SELECT r.record_id, r.state, r.customer_id, r.received_at,
                               r.delivered_at, r.unknown_for_s, h.issue, h.candidates,
                               CASE WHEN h.record_pk IS NOT NULL AND o.attempts IS NULL
                                        THEN h.checks
                                    WHEN r.state = 'pending' THEN coalesce(o.attempts, 0)
                                    ELSE r.attempts END AS attempts,
                               CASE WHEN h.record_pk IS NOT NULL THEN h.detail
                                    WHEN r.state = 'pending' THEN o.last_error
                                    ELSE r.last_error END AS last_error
                        FROM records r
                        LEFT JOIN outbox o
                          ON o.topic = 'record.' || r.kind AND o.key = r.record_pk::text
                        LEFT JOIN held_events h
                          ON h.record_pk = r.record_pk AND r.state IN ('pending', 'unattributed')
                        WHERE r.source = :s AND r.message_id = :m
                        ORDER BY o.outbox_pk DESC NULLS LAST LIMIT 1
                        """
                    ),
                    {"s": source, "m": message_id},
                )
            ).first()
        if row is None:
            return None
        return RecordStatus(
            record_id=str(row.record_id),
            source=source,
            message_id=message_id,
            state=RecordState(row.state),
            customer_id=None if row.customer_id is None else str(row.customer_id),
            attempts=row.attempts,
            last_error=row.last_error,
            received_at=row.received_at,
            delivered_at=row.delivered_at,
            issue=None if row.issue is None else Issue(row.issue),
            candidates=tuple(str(c) for c in row.candidates or ()),
            unknown_for_s=float(row.unknown_for_s),
        )


async def redriven_records(conn: AsyncConnection, messages: list[Redriven]) -> None:
    """Records whose dead letters are sent again are pending again (in the redrive's
    transaction): GetRecordStatus shows them waiting, then delivered."""
    pks = [int(m.key) for m in messages if m.topic in RECORD_TOPICS]
    if pks:
        await conn.execute(
            text(
                "UPDATE records SET state = 'pending', last_error = NULL "
                "WHERE record_pk = ANY(:p) AND state = 'failed'"
            ),
            {"p": pks},
        )
