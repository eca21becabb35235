"""The only module that touches the ``ingestion`` schema."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from svod_ingestion.domain.model import OutboxItem, RecordStatus, StoredRecord


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

    async def enqueue(self, record_pk: int, trace_carrier: dict[str, str]) -> None:
        await self.conn.execute(
            text("INSERT INTO outbox (record_pk, trace_carrier) VALUES (:r, CAST(:t AS jsonb))"),
            {"r": record_pk, "t": json.dumps(trace_carrier)},
        )


class IngestionStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[IngestionTransaction]:
        async with self.engine.begin() as conn:
            yield IngestionTransaction(conn)

    async def claim_due(self, limit: int, lease_s: float) -> list[OutboxItem]:
        """Leases due outbox rows to this relay; other relays skip them (SKIP LOCKED)."""
        async with self.engine.begin() as conn:
            rows = await conn.execute(
                text(
                    """
                    WITH due AS (
                        SELECT outbox_pk FROM outbox
                        WHERE next_attempt_at <= now()
                          AND (locked_until IS NULL OR locked_until < now())
                        ORDER BY next_attempt_at, outbox_pk
                        LIMIT :n FOR UPDATE SKIP LOCKED
                    )
                    UPDATE outbox o SET locked_until = now() + make_interval(secs => :lease)
                    FROM due, records r
                    WHERE o.outbox_pk = due.outbox_pk AND r.record_pk = o.record_pk
                    RETURNING o.outbox_pk, o.record_pk, o.trace_carrier, r.kind, r.payload,
                              r.attempts
                    """
                ),
                {"n": limit, "lease": lease_s},
            )
            return [
                OutboxItem(
                    r.outbox_pk,
                    r.record_pk,
                    r.kind,
                    bytes(r.payload or b""),
                    dict(r.trace_carrier),
                    r.attempts,
                )
                for r in rows
            ]

    async def mark_delivered(self, item: OutboxItem, customer_id: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE records SET state = 'delivered', customer_id = :c, "
                    "attempts = attempts + 1, delivered_at = now(), last_error = NULL "
                    "WHERE record_pk = :r"
                ),
                {"c": customer_id, "r": item.record_pk},
            )
            await conn.execute(
                text("DELETE FROM outbox WHERE outbox_pk = :o"), {"o": item.outbox_pk}
            )

    async def mark_failed(self, item: OutboxItem, error: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE records SET state = 'failed', attempts = attempts + 1, "
                    "last_error = :e WHERE record_pk = :r"
                ),
                {"e": error, "r": item.record_pk},
            )
            await conn.execute(
                text("DELETE FROM outbox WHERE outbox_pk = :o"), {"o": item.outbox_pk}
            )

    async def schedule_retry(self, item: OutboxItem, error: str, delay_s: float) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE records SET attempts = attempts + 1, last_error = :e "
                    "WHERE record_pk = :r"
                ),
                {"e": error, "r": item.record_pk},
            )
            await conn.execute(
                text(
                    "UPDATE outbox SET locked_until = NULL, "
                    "next_attempt_at = now() + make_interval(secs => :d) WHERE outbox_pk = :o"
                ),
                {"d": delay_s, "o": item.outbox_pk},
            )

    async def status(self, source: str, message_id: str) -> RecordStatus | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT record_id, state, customer_id, attempts, last_error, "
                        "received_at, delivered_at FROM records "
                        "WHERE source = :s AND message_id = :m"
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
