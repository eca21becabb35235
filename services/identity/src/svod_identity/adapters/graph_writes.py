"""Changes to the identity graph: what the engine decided (``apply``), merges, the moves of a
split, customers kept apart."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from svod_identity.adapters.announcements import MERGED_TOPIC, Announcements
from svod_identity.adapters.apply_columns import ApplyColumns
from svod_identity.adapters.encoding import to_json
from svod_identity.adapters.ledger import SYSTEM_ACTOR, Ledger
from svod_identity.adapters.locks import lock_customers
from svod_identity.domain.engine import Changes
from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.ledger import LedgerKind, merge_reason
from svod_identity.domain.model import RecordRef, new_customer_id
from svod_runtime.db import direct_statement, fetch_direct

_APPLY = direct_statement(
    """
WITH new_customers AS (
    INSERT INTO customers (customer_id, created_at)
    SELECT * FROM unnest(CAST(:cid AS uuid[]), CAST(:cat AS timestamptz[]))
), new_records AS (
    INSERT INTO records (record_pk, source, message_id, customer_id, channel,
                         observed_at, identifiers, attributes, outcome,
                         rule, evidence)
    SELECT p, s, m, c, ch, at, CAST(ids AS jsonb), CAST(attrs AS jsonb), o,
           r, CAST(ev AS jsonb)
    FROM unnest(CAST(:p AS bigint[]), CAST(:s AS text[]),
                CAST(:m AS text[]), CAST(:c AS uuid[]),
                CAST(:ch AS text[]), CAST(:at AS timestamptz[]),
                CAST(:ids AS text[]), CAST(:attrs AS text[]),
                CAST(:o AS text[]), CAST(:r AS text[]),
                CAST(:ev AS text[]))
         AS x(p, s, m, c, ch, at, ids, attrs, o, r, ev)
), new_record_identifiers AS (
    INSERT INTO record_identifiers (id_type, namespace, value, record_pk)
    SELECT * FROM unnest(CAST(:rit AS text[]), CAST(:rin AS text[]),
                         CAST(:riv AS text[]), CAST(:rip AS bigint[]))
    ON CONFLICT DO NOTHING
), new_blocking_keys AS (
    INSERT INTO blocking_keys (key, record_pk)
    SELECT * FROM unnest(CAST(:bk AS text[]), CAST(:bp AS bigint[]))
    ON CONFLICT DO NOTHING
), new_identifiers AS (
    INSERT INTO identifiers (id_type, namespace, value, customer_id,
                             first_source, first_seen, last_seen)
    SELECT t, n, v, c, s, seen, last FROM unnest(
        CAST(:lt AS text[]), CAST(:ln AS text[]), CAST(:lv AS text[]),
        CAST(:lc AS uuid[]), CAST(:ls AS text[]),
        CAST(:lseen AS timestamptz[]), CAST(:llast AS timestamptz[]))
        AS x(t, n, v, c, s, seen, last)
    ON CONFLICT (id_type, namespace, value) DO NOTHING
), touched AS (
    UPDATE identifiers i SET last_seen = greatest(i.last_seen, x.seen)
    FROM unnest(CAST(:tt AS text[]), CAST(:tn AS text[]),
                CAST(:tv AS text[]), CAST(:tseen AS timestamptz[]))
         AS x(t, n, v, seen)
    WHERE i.id_type = x.t AND i.namespace = x.n AND i.value = x.v
), new_ledger AS (
    INSERT INTO ledger (kind, customer_id, source, message_id, detail, actor)
    SELECT k, c, s, m, CAST(d AS jsonb), :a FROM unnest(
        CAST(:gk AS text[]), CAST(:c AS uuid[]), CAST(:s AS text[]),
        CAST(:m AS text[]), CAST(:gd AS text[])) AS x(k, c, s, m, d)
)
SELECT 1
"""
)


async def insert_blocked(
    conn: AsyncConnection, blocked: Iterable[tuple[IdentifierKey, str, int]]
) -> list[IdentifierKey]:
    """Blocks identifiers (key, reason, people sharing it); returns those newly blocked, in
    order (one already blocked keeps its first reason)."""
    added: list[IdentifierKey] = []
    for key, reason, people in blocked:
        inserted = await conn.execute(
            text(
                "INSERT INTO blocked_identifiers (id_type, namespace, value, reason, "
                "people_count) VALUES (:t, :n, :v, :r, :p) ON CONFLICT DO NOTHING"
            ),
            {"t": key.type, "n": key.namespace, "v": key.value, "r": reason, "p": people},
        )
        if inserted.rowcount:
            added.append(key)
    return added


class GraphWrites:
    """Writes of the graph, inside one transaction, with the ledger entries and announcements
    that go with them."""

    def __init__(self, conn: AsyncConnection, ledger: Ledger, announcements: Announcements) -> None:
        self.conn = conn
        self.ledger = ledger
        self.announcements = announcements

    async def lock_customers(self, customer_ids: Iterable[str]) -> None:
        """Row locks on customers about to gain identifiers or be merged (sorted: no deadlock)."""
        await lock_customers(self.conn, customer_ids)

    async def create_customer(self) -> str:
        customer_id = new_customer_id()
        await self.conn.execute(
            text("INSERT INTO customers (customer_id) VALUES (:c)"), {"c": customer_id}
        )
        return customer_id

    async def apply(self, changes: Changes, free_pks: Sequence[int] = ()) -> dict[int, int]:
        """Writes what the engine decided; returns engine record pk -> stored record pk.

        New customers, records, their identifiers and blocking keys, newly owned identifiers,
        last-seen times and the ledger entries go in one statement; merges, review items and
        blocklist entries (rare) follow. ``free_pks`` are record pks allocated beforehand.
        """
        conn = self.conn
        pks: dict[int, int] = {}
        recs = changes.records
        pool = list(free_pks)
        if len(pool) < len(recs):
            allocated = await fetch_direct(
                conn,
                "SELECT nextval('records_record_pk_seq') FROM generate_series(1, %(n)s)",
                {"n": len(recs) - len(pool)},
            )
            pool += [int(pk) for (pk,) in allocated]
        for n, pk in zip(recs, pool, strict=False):
            pks[n.pk] = pk
        for n in recs:
            if n.evidence.get("record_pk", 0) < 0:
                n.evidence["record_pk"] = pks[n.evidence["record_pk"]]
        columns = ApplyColumns.of(changes, pks)
        if not columns.is_empty():
            await fetch_direct(conn, _APPLY, columns.params(SYSTEM_ACTOR))
        for key, sharers in changes.sharers.items():
            await conn.execute(
                text(
                    "UPDATE identifiers SET sharers = sharers || CAST(:s AS jsonb) "
                    "WHERE id_type = :t AND namespace = :n AND value = :v"
                ),
                {"s": to_json(sorted(sharers)), "t": key.type, "n": key.namespace, "v": key.value},
            )
        for key in await insert_blocked(conn, changes.blocked):
            await self.announcements.report_quality(blocked=[key])
        # Merges after the records' ledger entries, in the order made.
        for merge in changes.merges:
            await self.merge_customers(merge.survivor, merge.merged)
            record_pk = pks.get(merge.record_pk or 0)
            await self.record_merge(
                merge.survivor,
                merge.merged,
                kind=LedgerKind.CUSTOMERS_MERGED,
                ref=merge.ref,
                detail={"rule": merge.rule, "record_pk": record_pk},
                reason=merge_reason(merge.ref),
            )
        if changes.reviews:
            reviews = changes.reviews
            await conn.execute(
                text(
                    """
                    INSERT INTO review_items (review_item_id, record_pk, candidate_record_pk,
                        candidate_customer_id, score, probability, explanation)
                    SELECT i, p, cp, c, s, pr, CAST(e AS jsonb) FROM unnest(
                        CAST(:i AS uuid[]), CAST(:p AS bigint[]), CAST(:cp AS bigint[]),
                        CAST(:c AS uuid[]), CAST(:s AS float8[]), CAST(:pr AS float8[]),
                        CAST(:e AS text[])) AS x(i, p, cp, c, s, pr, e)
                    """
                ),
                {
                    "i": [r.review_item_id for r in reviews],
                    "p": [pks.get(r.record_pk, r.record_pk) for r in reviews],
                    "cp": [pks.get(r.candidate_record_pk, r.candidate_record_pk) for r in reviews],
                    "c": [r.candidate_customer_id for r in reviews],
                    "s": [r.score for r in reviews],
                    "pr": [r.probability for r in reviews],
                    "e": [to_json(r.explanation) for r in reviews],
                },
            )
            customer_of = {n.pk: n.customer_id for n in changes.records}
            await self.announcements.report_quality(
                pairs=[
                    (customer_of.get(r.record_pk, ""), r.candidate_customer_id, r.probability)
                    for r in reviews
                ]
            )
        return pks

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

    async def record_merge(
        self,
        survivor: str,
        merged: Sequence[str],
        *,
        kind: LedgerKind,
        ref: RecordRef | None = None,
        detail: dict[str, Any] | None = None,
        actor: str = SYSTEM_ACTOR,
        reason: str = "",
    ) -> int:
        """Ledger entry and the announcement to profile (outbox) of one merge."""
        change_id = await self.ledger.append(
            kind,
            survivor,
            ref=ref,
            other_customer_id=merged[0],
            detail={"merged": list(merged), **(detail or {})},
            actor=actor,
            reason=reason,
        )
        await self.announcements.announce(
            MERGED_TOPIC,
            survivor,
            to_json(
                {"change_id": str(change_id), "survivor": survivor, "merged": list(merged)}
            ).encode(),
        )
        await self.announcements.report_quality(resolved=[(survivor, m) for m in merged])
        await self.announcements.announce_changed([survivor, *merged])
        return change_id

    async def move_records(
        self, source: str, target: str, pks: Sequence[int]
    ) -> list[IdentifierKey]:
        """Moves records, and the identifiers only they carry, from ``source`` to ``target``."""
        await self.conn.execute(
            text("UPDATE records SET customer_id = :t WHERE record_pk = ANY(CAST(:p AS bigint[]))"),
            {"t": target, "p": list(pks)},
        )
        rows = await self.conn.execute(
            text(
                """
                UPDATE identifiers i SET customer_id = :t
                WHERE i.customer_id = :s
                  AND EXISTS (SELECT 1 FROM record_identifiers ri
                              WHERE ri.id_type = i.id_type AND ri.namespace = i.namespace
                                AND ri.value = i.value AND ri.record_pk = ANY(CAST(:p AS bigint[])))
                  AND NOT EXISTS (SELECT 1 FROM record_identifiers ri JOIN records r
                                    USING (record_pk)
                                  WHERE ri.id_type = i.id_type AND ri.namespace = i.namespace
                                    AND ri.value = i.value AND r.customer_id = :s)
                RETURNING i.id_type, i.namespace, i.value
                """
            ),
            {"t": target, "s": source, "p": list(pks)},
        )
        return sorted(IdentifierKey(r[0], r[2], r[1]) for r in rows)

    async def point_aliases(self, sides: Mapping[str, str]) -> None:
        """Sets each merged-away id to answer for the given customer."""
        if not sides:
            return
        await self.conn.execute(
            text(
                "UPDATE customers c SET merged_into = x.t FROM unnest(CAST(:a AS uuid[]), "
                "CAST(:t AS uuid[])) AS x(a, t) WHERE c.customer_id = x.a"
            ),
            {"a": list(sides), "t": list(sides.values())},
        )

    async def share_left_identifiers(self, source: str, target: str, pks: Sequence[int]) -> int:
        """After a split: the identifiers ``source`` keeps that moved records carry too are
        shared with ``target`` (both sides' records carry them); returns how many."""
        result = await self.conn.execute(
            text(
                """
                UPDATE identifiers i SET sharers = i.sharers || to_jsonb(CAST(:t AS text))
                WHERE i.customer_id = :s AND NOT i.sharers ? CAST(:t AS text)
                  AND EXISTS (SELECT 1 FROM record_identifiers ri
                              WHERE ri.id_type = i.id_type AND ri.namespace = i.namespace
                                AND ri.value = i.value AND ri.record_pk = ANY(CAST(:p AS bigint[])))
                """
            ),
            {"t": target, "s": source, "p": list(pks)},
        )
        return int(result.rowcount or 0)

    async def keep_apart(self, a: str, b: str) -> None:
        first, second = sorted((a, b))
        await self.conn.execute(
            text(
                "INSERT INTO kept_apart (customer_a, customer_b) VALUES (:a, :b) "
                "ON CONFLICT DO NOTHING"
            ),
            {"a": first, "b": second},
        )
