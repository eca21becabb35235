"""Suspected duplicates waiting for a person: the review queue."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from svod_identity.adapters.encoding import known_record_of
from svod_identity.domain.review import ReviewState, SideRecord


class ReviewQueue:
    """Review items, inside one transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def review_items(
        self,
        limit: int,
        after: tuple[dt.datetime, str] | None,
        include_decided: bool,
        customer_ids: Sequence[str] = (),
    ) -> list[Any]:
        """A page of review items; with ``customer_ids``, only those about these customers."""
        where = [] if include_decided else ["v.state = :open"]
        params: dict[str, Any] = {"n": limit, "open": ReviewState.OPEN.value}
        if customer_ids:
            where.append(
                "(r.customer_id = ANY(CAST(:ids AS uuid[])) "
                "OR v.candidate_customer_id = ANY(CAST(:ids AS uuid[])))"
            )
            params["ids"] = list(customer_ids)
        if after is not None:
            where.append("(v.created_at, v.review_item_id) > (:at, CAST(:id AS uuid))")
            params |= {"at": after[0], "id": after[1]}
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        rows = await self.conn.execute(
            text(
                f"""
                SELECT v.review_item_id, v.candidate_customer_id, v.score, v.probability,
                       v.explanation, v.state, v.created_at, r.source, r.message_id,
                       r.customer_id AS record_customer_id, cr.source AS candidate_source,
                       cr.message_id AS candidate_message_id
                FROM review_items v JOIN records r USING (record_pk)
                LEFT JOIN records cr ON cr.record_pk = v.candidate_record_pk
                {clause}
                ORDER BY v.created_at, v.review_item_id LIMIT :n
                """
            ),
            params,
        )
        return list(rows)

    async def review_item(self, review_item_id: str) -> Any:
        return (
            await self.conn.execute(
                text(
                    """
                    SELECT v.review_item_id, v.state, v.candidate_customer_id, v.probability,
                           r.customer_id AS record_customer_id, r.source, r.message_id,
                           r.record_pk, v.candidate_record_pk
                    FROM review_items v JOIN records r USING (record_pk)
                    WHERE v.review_item_id = :i FOR UPDATE OF v
                    """
                ),
                {"i": review_item_id},
            )
        ).first()

    async def decide_review(
        self, review_item_id: str, state: ReviewState, actor: str, reason: str
    ) -> None:
        await self.conn.execute(
            text(
                "UPDATE review_items SET state = :s, decided_by = :a, decision_reason = :r, "
                "decided_at = now() WHERE review_item_id = :i"
            ),
            {"s": state.value, "a": actor, "r": reason, "i": review_item_id},
        )

    async def side_records(
        self, customer_ids: Sequence[str], limit: int
    ) -> tuple[dict[str, list[SideRecord]], dict[str, int]]:
        """Each customer's ``limit`` most recent records (newest first), and its record count."""
        ids = sorted(set(customer_ids))
        if not ids:
            return {}, {}
        rows = await self.conn.execute(
            text(
                """
                SELECT r.record_pk, r.source, r.message_id, r.customer_id, r.identifiers,
                       r.attributes
                FROM unnest(CAST(:c AS uuid[])) AS c(id) CROSS JOIN LATERAL (
                    SELECT * FROM records WHERE customer_id = c.id
                    ORDER BY record_pk DESC LIMIT :n
                ) r
                ORDER BY r.customer_id, r.record_pk DESC
                """
            ),
            {"c": ids, "n": limit},
        )
        records: dict[str, list[SideRecord]] = defaultdict(list)
        for row in rows:
            known = known_record_of(row)
            records[str(row.customer_id)].append(
                SideRecord(known.ref, dict(row.attributes or {}), known.identifiers, known.person)
            )
        counts = await self.conn.execute(
            text(
                "SELECT customer_id, count(*) FROM records "
                "WHERE customer_id = ANY(CAST(:c AS uuid[])) GROUP BY customer_id"
            ),
            {"c": ids},
        )
        return dict(records), {str(r[0]): int(r[1]) for r in counts}

    async def open_reviews_between(self, side_a: Sequence[str], side_b: Sequence[str]) -> list[Any]:
        """Open review items between the two sides (either way round)."""
        rows = await self.conn.execute(
            text(
                """
                SELECT v.probability, v.created_at, v.explanation FROM review_items v
                JOIN records r USING (record_pk)
                WHERE v.state = :open AND (
                    (r.customer_id = ANY(CAST(:a AS uuid[]))
                     AND v.candidate_customer_id = ANY(CAST(:b AS uuid[])))
                    OR (r.customer_id = ANY(CAST(:b AS uuid[]))
                        AND v.candidate_customer_id = ANY(CAST(:a AS uuid[]))))
                ORDER BY v.created_at
                """
            ),
            {"a": list(side_a), "b": list(side_b), "open": ReviewState.OPEN.value},
        )
        return list(rows)
