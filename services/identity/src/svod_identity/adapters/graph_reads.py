"""Reads of the identity graph one at a time: customers (following merges), their records and
identifiers, what a customer looks like and what explains it."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from svod_identity.adapters.encoding import KEYS_TABLE, key_rows, known_record_of, to_json
from svod_identity.domain.engine import KnownRecord
from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.ledger import PLACEMENT_KINDS
from svod_identity.domain.lookup import Fact
from svod_identity.domain.model import CustomerView, Owner, RecordRef
from svod_runtime.db import direct_statement, fetch_direct

# The keys go in as three JSON arrays of strings (types, namespaces, values: one json.dumps each,
# in C; psycopg dumps a list parameter element by element in Python) and come back by position
# (WITH ORDINALITY): no key rebuilt from each row, ids and sharers as text (no UUID or JSON
# object per row). Issue #22: for an event import's BatchLookupCustomers the earlier form
# (a JSON object per key, IdentifierKey and UUID objects per row) cost 11% of identity's py-spy
# samples, a list parameter per field 14.5%.
_IDENTIFIER_FACTS = direct_statement(
    """
SELECT x.i, i.customer_id::text AS c,
       CASE WHEN i.sharers <> '[]'::jsonb
            THEN ARRAY(SELECT jsonb_array_elements_text(i.sharers)) END AS sharers,
       bl.reason
FROM ROWS FROM (
    jsonb_array_elements_text(CAST(:t AS jsonb)),
    jsonb_array_elements_text(CAST(:n AS jsonb)),
    jsonb_array_elements_text(CAST(:v AS jsonb))
) WITH ORDINALITY AS x(t, n, v, i)
LEFT JOIN identifiers i ON i.id_type = x.t AND i.namespace = x.n AND i.value = x.v
LEFT JOIN blocked_identifiers bl ON bl.id_type = x.t AND bl.namespace = x.n AND bl.value = x.v
WHERE i.customer_id IS NOT NULL OR bl.reason IS NOT NULL
"""
)


def _strings(values: list[str]) -> str:
    return json.dumps(values, ensure_ascii=False)


class GraphReads:
    """Customers, records and identifiers, inside one transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def canonical_id(self, customer_id: str, *, include_erased: bool = False) -> str | None:
        """The current id of a customer, following merges; None when unknown (or erased)."""
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
                    SELECT chain.id, c.erased_at IS NOT NULL AS erased FROM chain
                    JOIN customers c ON c.customer_id = chain.id WHERE chain.next IS NULL
                    """
                ),
                {"c": customer_id},
            )
        ).first()
        if row is None or (row.erased and not include_erased):
            return None
        return str(row[0])

    async def current_ids(self, customer_ids: Iterable[str]) -> dict[str, str]:
        """Each known id -> its current id (following merges); unknown ids are left out."""
        ids = sorted(set(customer_ids))
        if not ids:
            return {}
        rows = await self.conn.execute(
            text(
                """
                WITH RECURSIVE chain(start, id, next, depth) AS (
                    SELECT customer_id, customer_id, merged_into, 0 FROM customers
                    WHERE customer_id = ANY(CAST(:c AS uuid[]))
                    UNION ALL
                    SELECT chain.start, c.customer_id, c.merged_into, chain.depth + 1
                    FROM customers c JOIN chain ON c.customer_id = chain.next
                    WHERE chain.depth < 64
                )
                SELECT start, id FROM chain WHERE next IS NULL
                """
            ),
            {"c": ids},
        )
        return {str(r[0]): str(r[1]) for r in rows}

    async def merged_ids(self, customer_id: str) -> list[str]:
        """Every id merged into this customer, directly or through others."""
        rows = await self.conn.execute(
            text(
                """
                WITH RECURSIVE merged(id) AS (
                    SELECT customer_id FROM customers WHERE merged_into = CAST(:c AS uuid)
                    UNION SELECT c.customer_id FROM customers c
                    JOIN merged ON c.merged_into = merged.id
                ) SELECT id FROM merged ORDER BY id
                """
            ),
            {"c": customer_id},
        )
        return [str(r[0]) for r in rows]

    async def alias_tree(self, customer_id: str) -> dict[str, str]:
        """Every id merged (directly or not) into ``customer_id`` -> the id it was merged into."""
        rows = await self.conn.execute(
            text(
                """
                WITH RECURSIVE a(id, parent, depth) AS (
                    SELECT customer_id, merged_into, 0 FROM customers WHERE merged_into = :c
                    UNION ALL
                    SELECT c.customer_id, c.merged_into, a.depth + 1
                    FROM customers c JOIN a ON c.merged_into = a.id WHERE a.depth < 64
                )
                SELECT id, parent FROM a
                """
            ),
            {"c": customer_id},
        )
        return {str(r[0]): str(r[1]) for r in rows}

    async def alias_ids(self, customer_id: str) -> list[str]:
        """The customer and every id merged into it."""
        return [customer_id, *(await self.alias_tree(customer_id))]

    async def record_customer(self, ref: RecordRef) -> str | None:
        row = (
            await self.conn.execute(
                text("SELECT customer_id FROM records WHERE source = :s AND message_id = :m"),
                {"s": ref.source, "m": ref.message_id},
            )
        ).first()
        return None if row is None else await self.canonical_id(str(row[0]))

    async def identifier_facts(self, keys: Sequence[IdentifierKey]) -> dict[IdentifierKey, Fact]:
        """(holder, customers recorded as sharing it, stored block reason) of each key that is
        held or on the stored blocklist, in one statement; the others are left out."""
        found = await self.facts_by_position(keys)
        return {keys[position]: fact for position, fact in found.items()}

    async def facts_by_position(self, keys: Sequence[IdentifierKey]) -> dict[int, Fact]:
        """As ``identifier_facts``, by the key's position in ``keys``."""
        if not keys:
            return {}
        rows = await fetch_direct(
            self.conn,
            _IDENTIFIER_FACTS,
            {
                "t": _strings([k.type for k in keys]),
                "n": _strings([k.namespace for k in keys]),
                "v": _strings([k.value for k in keys]),
            },
        )
        return {r.i - 1: (r.c, r.sharers or (), r.reason) for r in rows}

    async def owners(self, keys: Sequence[IdentifierKey]) -> dict[IdentifierKey, Owner]:
        if not keys:
            return {}
        rows = await self.conn.execute(
            text(
                f"""
                SELECT i.id_type, i.namespace, i.value, i.customer_id, c.created_at
                FROM identifiers i JOIN customers c USING (customer_id)
                JOIN {KEYS_TABLE} ON i.id_type = x.t AND i.namespace = x.n AND i.value = x.v
                """
            ),
            {"keys": key_rows(keys)},
        )
        return {
            IdentifierKey(r.id_type, r.value, r.namespace): Owner(str(r.customer_id), r.created_at)
            for r in rows
        }

    async def records_by_pk(self, pks: Iterable[int]) -> dict[int, KnownRecord]:
        pks = sorted(set(pks))
        if not pks:
            return {}
        rows = await self.conn.execute(
            text(
                "SELECT record_pk, source, message_id, customer_id, identifiers, attributes "
                "FROM records WHERE record_pk = ANY(CAST(:p AS bigint[]))"
            ),
            {"p": pks},
        )
        return {r.record_pk: known_record_of(r) for r in rows}

    async def records_by_ref(self, refs: Sequence[RecordRef]) -> dict[RecordRef, tuple[int, str]]:
        if not refs:
            return {}
        rows = await self.conn.execute(
            text(
                """
                SELECT r.record_pk, r.source, r.message_id, r.customer_id FROM records r
                JOIN jsonb_to_recordset(CAST(:refs AS jsonb)) AS x(s text, m text)
                  ON r.source = x.s AND r.message_id = x.m
                """
            ),
            {"refs": to_json([{"s": r.source, "m": r.message_id} for r in refs])},
        )
        return {RecordRef(r[1], r[2]): (int(r[0]), str(r[3])) for r in rows}

    async def record_refs_by_pk(self, pks: Iterable[int]) -> dict[int, RecordRef]:
        pks = sorted(set(pks))
        if not pks:
            return {}
        rows = await self.conn.execute(
            text(
                "SELECT record_pk, source, message_id FROM records "
                "WHERE record_pk = ANY(CAST(:p AS bigint[]))"
            ),
            {"p": pks},
        )
        return {int(r[0]): RecordRef(r[1], r[2]) for r in rows}

    async def customer_records(self, customer_id: str) -> list[tuple[int, RecordRef]]:
        rows = await self.conn.execute(
            text(
                "SELECT record_pk, source, message_id FROM records WHERE customer_id = :c "
                "ORDER BY record_pk"
            ),
            {"c": customer_id},
        )
        return [(int(r[0]), RecordRef(r[1], r[2])) for r in rows]

    async def customers_created(self, ids: Sequence[str]) -> dict[str, dt.datetime]:
        rows = await self.conn.execute(
            text(
                "SELECT customer_id, created_at FROM customers "
                "WHERE customer_id = ANY(CAST(:c AS uuid[]))"
            ),
            {"c": sorted(set(ids))},
        )
        return {str(r[0]): r[1] for r in rows}

    async def recent_records(self, customer_id: str, limit: int) -> list[KnownRecord]:
        """A customer's most recent records, newest first."""
        rows = await self.conn.execute(
            text(
                "SELECT record_pk, source, message_id, customer_id, identifiers, attributes "
                "FROM records WHERE customer_id = :c ORDER BY record_pk DESC LIMIT :n"
            ),
            {"c": customer_id, "n": limit},
        )
        return [known_record_of(r) for r in rows]

    async def customer_view(self, customer_id: str) -> CustomerView | None:
        row = (
            await self.conn.execute(
                text(
                    "SELECT created_at, (SELECT count(*) FROM records r WHERE r.customer_id = "
                    ":c) AS n FROM customers WHERE customer_id = :c AND merged_into IS NULL "
                    "AND erased_at IS NULL"
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

    async def explain_material(self, customer_id: str) -> dict[str, Any]:
        """A customer's records (with evidence), the identifiers each carries, and its ledger."""
        records = await self.conn.execute(
            text(
                "SELECT record_pk, source, message_id, evidence, rule, resolved_at "
                "FROM records WHERE customer_id = :c ORDER BY record_pk LIMIT 5000"
            ),
            {"c": customer_id},
        )
        carried = await self.conn.execute(
            text(
                """
                SELECT ri.record_pk, ri.id_type, ri.namespace, ri.value,
                       (i.customer_id = :c AND b.value IS NULL) AS linking
                FROM records r JOIN record_identifiers ri USING (record_pk)
                LEFT JOIN identifiers i USING (id_type, namespace, value)
                LEFT JOIN blocked_identifiers b USING (id_type, namespace, value)
                WHERE r.customer_id = :c
                """
            ),
            {"c": customer_id},
        )
        aliases = await self.conn.execute(
            text(
                "WITH RECURSIVE a(id) AS (SELECT CAST(:c AS uuid) UNION "
                "SELECT c.customer_id FROM customers c JOIN a ON c.merged_into = a.id) "
                "SELECT id FROM a"
            ),
            {"c": customer_id},
        )
        ids = [str(r[0]) for r in aliases]
        ledger = await self.conn.execute(
            text(
                "SELECT entry_id, at, kind, customer_id, other_customer_id, source, message_id, "
                "detail, actor, reason FROM ledger WHERE customer_id = ANY(CAST(:c AS uuid[])) "
                "AND kind <> ALL(CAST(:k AS text[])) ORDER BY entry_id"
            ),
            {"c": ids, "k": [k.value for k in PLACEMENT_KINDS]},
        )
        return {
            "records": list(records),
            "carried": list(carried),
            "ledger": list(ledger),
        }
