"""The only module that touches the ``identity`` schema."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.model import CustomerView, IncomingRecord, Owner, RecordRef
from svod_runtime.outbox import enqueue

SYSTEM_ACTOR = "svod-identity"


def _keys_json(keys: Sequence[IdentifierKey]) -> str:
    return json.dumps([[k.type, k.namespace, k.value] for k in keys], ensure_ascii=False)


class IdentityTransaction:
    """Repository operations inside one database transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def lock(self, lock_keys: Sequence[str]) -> None:
        """Serialises work on the same identifiers (sorted, so two transactions cannot deadlock).

        This is what keeps parallel resolves carrying one new identifier from creating two
        customers: the second waits, then sees the first one's customer.
        """
        for key in sorted(set(lock_keys)):
            await self.conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": key}
            )

    async def lock_customers(self, customer_ids: Sequence[str]) -> None:
        """Row locks on customers about to gain identifiers or be merged (sorted: no deadlock)."""
        if customer_ids:
            await self.conn.execute(
                text(
                    "SELECT 1 FROM customers WHERE customer_id = ANY(CAST(:c AS uuid[])) "
                    "ORDER BY customer_id FOR UPDATE"
                ),
                {"c": sorted(set(customer_ids))},
            )

    async def merge_customers(self, survivor: str, merged: Sequence[str]) -> None:
        """Moves everything of the merged customers to the survivor; their ids become aliases."""
        params = {"s": survivor, "m": list(merged)}
        for statement in (
            "UPDATE customers SET merged_into = :s WHERE customer_id = ANY(CAST(:m AS uuid[])) "
            "OR merged_into = ANY(CAST(:m AS uuid[]))",
            "UPDATE identifiers SET customer_id = :s WHERE customer_id = ANY(CAST(:m AS uuid[]))",
            "UPDATE records SET customer_id = :s WHERE customer_id = ANY(CAST(:m AS uuid[]))",
        ):
            await self.conn.execute(text(statement), params)

    async def announce(self, topic: str, key: str, payload: bytes) -> None:
        await enqueue(self.conn, topic, key, payload)

    async def record_customer(self, ref: RecordRef) -> str | None:
        row = (
            await self.conn.execute(
                text("SELECT customer_id FROM records WHERE source = :s AND message_id = :m"),
                {"s": ref.source, "m": ref.message_id},
            )
        ).first()
        return None if row is None else await self.canonical_id(str(row[0]))

    async def record_identifiers(self, ref: RecordRef) -> tuple[IdentifierKey, ...]:
        row = (
            await self.conn.execute(
                text("SELECT identifiers FROM records WHERE source = :s AND message_id = :m"),
                {"s": ref.source, "m": ref.message_id},
            )
        ).first()
        if row is None:
            return ()
        return tuple(IdentifierKey(t, v, n) for t, n, v in row[0])

    async def owners(self, keys: Sequence[IdentifierKey]) -> dict[IdentifierKey, Owner]:
        if not keys:
            return {}
        rows = await self.conn.execute(
            text(
                """
                SELECT i.id_type, i.namespace, i.value, i.customer_id, c.created_at
                FROM identifiers i JOIN customers c USING (customer_id)
                WHERE (i.id_type, i.namespace, i.value) IN (
                    SELECT t, n, v FROM jsonb_to_recordset(CAST(:keys AS jsonb))
                        AS x(t text, n text, v text))
                """
            ),
            {"keys": json.dumps([{"t": k.type, "n": k.namespace, "v": k.value} for k in keys])},
        )
        return {
            IdentifierKey(r.id_type, r.value, r.namespace): Owner(str(r.customer_id), r.created_at)
            for r in rows
        }

    async def create_customer(self) -> str:
        customer_id = str(uuid.uuid4())
        await self.conn.execute(
            text("INSERT INTO customers (customer_id) VALUES (:c)"), {"c": customer_id}
        )
        return customer_id

    async def link_identifiers(
        self, customer_id: str, keys: Sequence[IdentifierKey], source: str, seen: dt.datetime
    ) -> None:
        for key in keys:
            await self.conn.execute(
                text(
                    """
                    INSERT INTO identifiers (id_type, namespace, value, customer_id,
                                             first_source, first_seen, last_seen)
                    VALUES (:t, :n, :v, :c, :s, :seen, :seen)
                    ON CONFLICT (id_type, namespace, value) DO NOTHING
                    """
                ),
                {
                    "t": key.type,
                    "n": key.namespace,
                    "v": key.value,
                    "c": customer_id,
                    "s": source,
                    "seen": seen,
                },
            )

    async def touch_identifiers(self, keys: Sequence[IdentifierKey], seen: dt.datetime) -> None:
        if not keys:
            return
        await self.conn.execute(
            text(
                """
                UPDATE identifiers SET last_seen = greatest(last_seen, :seen)
                WHERE (id_type, namespace, value) IN (
                    SELECT t, n, v FROM jsonb_to_recordset(CAST(:keys AS jsonb))
                        AS x(t text, n text, v text))
                """
            ),
            {
                "seen": seen,
                "keys": json.dumps([{"t": k.type, "n": k.namespace, "v": k.value} for k in keys]),
            },
        )

    async def add_record(
        self, record: IncomingRecord, customer_id: str, outcome: str, rule: str
    ) -> None:
        await self.conn.execute(
            text(
                """
                INSERT INTO records (source, message_id, customer_id, channel, observed_at,
                                     identifiers, attributes, outcome, rule)
                VALUES (:s, :m, :c, :ch, :at, CAST(:ids AS jsonb), CAST(:attrs AS jsonb), :o, :r)
                """
            ),
            {
                "s": record.ref.source,
                "m": record.ref.message_id,
                "c": customer_id,
                "ch": record.channel,
                "at": record.observed_at,
                "ids": _keys_json(record.identifiers),
                "attrs": json.dumps(record.attributes, ensure_ascii=False, default=str),
                "o": outcome,
                "r": rule,
            },
        )

    async def append_ledger(
        self,
        kind: str,
        customer_id: str,
        *,
        ref: RecordRef | None = None,
        other_customer_id: str | None = None,
        detail: dict[str, Any] | None = None,
        actor: str = SYSTEM_ACTOR,
        reason: str = "",
    ) -> int:
        entry = await self.conn.execute(
            text(
                """
                INSERT INTO ledger (kind, customer_id, other_customer_id, source, message_id,
                                    detail, actor, reason)
                VALUES (:k, :c, :o, :s, :m, CAST(:d AS jsonb), :a, :r)
                RETURNING entry_id
                """
            ),
            {
                "k": kind,
                "c": customer_id,
                "o": other_customer_id,
                "s": ref.source if ref else None,
                "m": ref.message_id if ref else None,
                "d": json.dumps(detail or {}, ensure_ascii=False),
                "a": actor,
                "r": reason,
            },
        )
        return int(entry.scalar_one())

    async def erase(self, customer_id: str) -> tuple[list[RecordRef], int]:
        """Forgets the person: identifiers deleted, records kept only as (source, message id)."""
        refs = [
            RecordRef(r.source, r.message_id)
            for r in await self.conn.execute(
                text("SELECT source, message_id FROM records WHERE customer_id = :c"),
                {"c": customer_id},
            )
        ]
        await self.conn.execute(
            text("UPDATE records SET identifiers = '[]', attributes = '{}' WHERE customer_id = :c"),
            {"c": customer_id},
        )
        deleted = await self.conn.execute(
            text("DELETE FROM identifiers WHERE customer_id = :c"), {"c": customer_id}
        )
        return refs, int(deleted.rowcount or 0)

    async def canonical_id(self, customer_id: str) -> str | None:
        """The current id of a customer, following merges; None when unknown."""
        row = (
            await self.conn.execute(
                text(
                    """
                    WITH RECURSIVE chain(id, next, depth) AS (
                        SELECT customer_id, merged_into, 0 FROM customers WHERE customer_id = :c
                        UNION ALL
                        SELECT c.customer_id, c.merged_into, chain.depth + 1
                        FROM customers c JOIN chain ON c.customer_id = chain.next
                        WHERE chain.depth < 64
                    )
                    SELECT id FROM chain WHERE next IS NULL
                    """
                ),
                {"c": customer_id},
            )
        ).first()
        return None if row is None else str(row[0])

    async def customer_view(self, customer_id: str) -> CustomerView | None:
        row = (
            await self.conn.execute(
                text(
                    "SELECT created_at, (SELECT count(*) FROM records r WHERE r.customer_id = "
                    ":c) AS n FROM customers WHERE customer_id = :c AND merged_into IS NULL"
                ),
                {"c": customer_id},
            )
        ).first()
        if row is None:
            return None
        merged = await self.conn.execute(
            text("SELECT customer_id FROM customers WHERE merged_into = :c ORDER BY created_at"),
            {"c": customer_id},
        )
        idents = await self.conn.execute(
            text(
                "SELECT id_type, namespace, value, first_source, first_seen, last_seen "
                "FROM identifiers WHERE customer_id = :c ORDER BY id_type, value"
            ),
            {"c": customer_id},
        )
        return CustomerView(
            customer_id=customer_id,
            merged_ids=tuple(str(r[0]) for r in merged),
            identifiers=tuple(
                (
                    IdentifierKey(r.id_type, r.value, r.namespace),
                    r.first_source,
                    r.first_seen,
                    r.last_seen,
                )
                for r in idents
            ),
            created_at=row.created_at,
            record_count=int(row.n),
        )


class IdentityStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[IdentityTransaction]:
        async with self.engine.begin() as conn:
            yield IdentityTransaction(conn)
