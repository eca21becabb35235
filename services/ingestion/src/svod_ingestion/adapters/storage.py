"""The only module that touches the ``ingestion`` schema."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from svod_ingestion.domain.model import RecordStatus, StoredRecord
from svod_runtime.outbox import enqueue


class IngestionTransaction:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def insert_record(
        self,
        *,
        record_id: str,
        source: str,
        message_id: str,
        kind: str,
        channel: str,
        payload: bytes,
        payload_hash: bytes,
    ) -> StoredRecord | None:
        """Stores a new message; None when (source, message_id) is already taken."""
        row = (
            await self.conn.execute(
                text(
                    """
                    INSERT INTO records (record_id, source, message_id, kind, channel, payload,
                                         payload_hash)
                    VALUES (:rid, :s, :m, :k, :ch, :p, :h)
                    ON CONFLICT (source, message_id) DO NOTHING
                    RETURNING record_pk, received_at
                    """
                ),
                {
                    "rid": record_id,
                    "s": source,
                    "m": message_id,
                    "k": kind,
                    "ch": channel,
                    "p": payload,
                    "h": payload_hash,
                },
            )
        ).first()
        if row is None:
            return None
        return StoredRecord(row.record_pk, record_id, payload_hash, row.received_at)

    async def existing(self, source: str, message_id: str) -> StoredRecord | None:
        row = (
            await self.conn.execute(
                text(
                    "SELECT record_pk, record_id, payload_hash, received_at FROM records "
                    "WHERE source = :s AND message_id = :m"
                ),
                {"s": source, "m": message_id},
            )
        ).first()
        if row is None:
            return None
        return StoredRecord(
            row.record_pk, str(row.record_id), bytes(row.payload_hash), row.received_at
        )

    async def enqueue(self, record_pk: int, kind: str) -> None:
        await enqueue(self.conn, f"record.{kind}", str(record_pk))


class IngestionStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[IngestionTransaction]:
        async with self.engine.begin() as conn:
            yield IngestionTransaction(conn)

    async def payload(self, record_pk: int) -> tuple[bytes, dt.datetime] | None:
        """The stored request and when it was received; None once erased."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    text("SELECT payload, received_at FROM records WHERE record_pk = :r"),
                    {"r": record_pk},
                )
            ).first()
        if row is None or row.payload is None:
            return None
        return bytes(row.payload), row.received_at

    async def payloads(self, record_pks: list[int]) -> dict[int, tuple[bytes, dt.datetime]]:
        """Stored requests and receive times by record pk, in one query (erased ones left out)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT record_pk, payload, received_at FROM records "
                    "WHERE record_pk = ANY(:r) AND payload IS NOT NULL"
                ),
                {"r": record_pks},
            )
            return {int(r.record_pk): (bytes(r.payload), r.received_at) for r in rows}

    async def mark_delivered_many(self, delivered: list[tuple[int, str, int]]) -> None:
        """(record pk, customer id, attempts) of delivered records, in one statement."""
        if not delivered:
            return
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE records r SET state = 'delivered', customer_id = x.c, attempts = x.a, "
                    "delivered_at = now(), last_error = NULL "
                    "FROM unnest(CAST(:r AS bigint[]), CAST(:c AS uuid[]), CAST(:a AS int[])) "
                    "AS x(r, c, a) WHERE r.record_pk = x.r"
                ),
                {
                    "r": [d[0] for d in delivered],
                    "c": [d[1] for d in delivered],
                    "a": [d[2] for d in delivered],
                },
            )

    async def mark_delivered(self, record_pk: int, customer_id: str, attempts: int) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE records SET state = 'delivered', customer_id = :c, attempts = :a, "
                    "delivered_at = now(), last_error = NULL WHERE record_pk = :r"
                ),
                {"c": customer_id, "a": attempts, "r": record_pk},
            )

    async def mark_failed(self, record_pk: int, error: str, attempts: int) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE records SET state = 'failed', attempts = :a, last_error = :e "
                    "WHERE record_pk = :r"
                ),
                {"a": attempts, "e": error, "r": record_pk},
            )

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
                    """
                ),
                {"refs": json.dumps([{"s": s, "m": m} for s, m in refs])},
            )
        return int(result.rowcount or 0)

    async def status(self, source: str, message_id: str) -> RecordStatus | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        """
                        SELECT r.record_id, r.state, r.customer_id, r.received_at,
                               r.delivered_at,
                               CASE WHEN r.state = 'pending' THEN coalesce(o.attempts, 0)
                                    ELSE r.attempts END AS attempts,
                               CASE WHEN r.state = 'pending' THEN o.last_error
                                    ELSE r.last_error END AS last_error
                        FROM records r
                        LEFT JOIN outbox o
                          ON o.topic = 'record.' || r.kind AND o.key = r.record_pk::text
                        WHERE r.source = :s AND r.message_id = :m
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
            state=row.state,
            customer_id=None if row.customer_id is None else str(row.customer_id),
            attempts=row.attempts,
            last_error=row.last_error,
            received_at=row.received_at,
            delivered_at=row.delivered_at,
        )
