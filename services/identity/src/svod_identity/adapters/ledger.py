"""The append-only ledger: writing its entries and the reads over it (pages, a person's
decisions, where records were first placed). What an entry may hold: ``domain/ledger.py``."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from svod_identity.adapters.encoding import to_json
from svod_identity.domain.ledger import APART_KINDS, HUMAN_MERGE_KINDS, PLACEMENT_KINDS, LedgerKind
from svod_identity.domain.model import RecordRef

# The actor of the entries the service makes on its own.
SYSTEM_ACTOR = "svod-identity"


class Ledger:
    """Ledger entries, inside one transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def append(
        self,
        kind: LedgerKind,
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
                "k": kind.value,
                "c": customer_id,
                "o": other_customer_id,
                "s": ref.source if ref else None,
                "m": ref.message_id if ref else None,
                "d": to_json(detail or {}),
                "a": actor,
                "r": reason,
            },
        )
        return int(entry.scalar_one())

    async def page(
        self, customer_ids: Sequence[str] | None, kinds: Sequence[str], after: int, limit: int
    ) -> list[Any]:
        """Ledger entries after ``after``, oldest first: about these customers (as either side)
        when given, of these kinds when given."""
        where = ["entry_id > :a"]
        params: dict[str, Any] = {"a": after, "n": limit}
        if kinds:
            where.append("kind = ANY(:k)")
            params["k"] = list(kinds)
        if customer_ids is None:
            clause = " AND ".join(where)
            statement = f"SELECT * FROM ledger WHERE {clause} ORDER BY entry_id LIMIT :n"
        else:
            params["c"] = list(customer_ids)
            clause = " AND ".join(where)
            # Two index scans (customer, other side) merged: an OR would read the whole ledger.
            statement = f"""
                SELECT * FROM (
                    (SELECT * FROM ledger WHERE customer_id = ANY(CAST(:c AS uuid[]))
                         AND {clause} ORDER BY entry_id LIMIT :n)
                    UNION
                    (SELECT * FROM ledger WHERE other_customer_id = ANY(CAST(:c AS uuid[]))
                         AND {clause} ORDER BY entry_id LIMIT :n)
                ) e ORDER BY entry_id LIMIT :n
            """
        return list(await self.conn.execute(text(statement), params))

    async def decisions_between(self, side_a: Sequence[str], side_b: Sequence[str]) -> list[Any]:
        """A person's decisions keeping the two sides (each: a customer and its merged-away
        ids) apart: rejected reviews and splits, oldest first."""
        rows = await self.conn.execute(
            text(
                """
                SELECT kind, actor, reason, at FROM ledger
                WHERE kind = ANY(CAST(:k AS text[])) AND (
                    (customer_id = ANY(CAST(:a AS uuid[]))
                     AND other_customer_id = ANY(CAST(:b AS uuid[])))
                    OR (customer_id = ANY(CAST(:b AS uuid[]))
                        AND other_customer_id = ANY(CAST(:a AS uuid[]))))
                ORDER BY entry_id
                """
            ),
            {"a": list(side_a), "b": list(side_b), "k": [k.value for k in APART_KINDS]},
        )
        return list(rows)

    async def human_decisions(self) -> tuple[list[list[int]], list[frozenset[str]]]:
        """A person's decisions: the merges they made (manual merges, accepted reviews), each
        as one record of each side, and the customer pairs they kept apart."""
        merges: list[list[int]] = []
        rows = await self.conn.execute(
            text(
                "SELECT kind, detail FROM ledger WHERE kind = ANY(CAST(:k AS text[])) "
                "ORDER BY entry_id"
            ),
            {"k": [k.value for k in HUMAN_MERGE_KINDS]},
        )
        for kind, detail in rows:
            detail = detail or {}
            if kind == LedgerKind.MANUAL_MERGE:
                anchors = [pks[0] for pks in (detail.get("anchors") or {}).values() if pks]
            else:
                anchors = [p for p in detail.get("anchors_pair") or () if p]
            merges.append([int(pk) for pk in anchors])
        apart = await self.conn.execute(text("SELECT customer_a, customer_b FROM kept_apart"))
        return merges, [frozenset((str(a), str(b))) for a, b in apart]

    async def first_placed_holdings(self, customer_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """For each id: where the records first placed under it (the ledger's record entries)
        are now, as current customer -> how many."""
        if not customer_ids:
            return {}
        rows = await self.conn.execute(
            text(
                """
                SELECT l.customer_id, r.customer_id AS now, count(*) AS n
                FROM ledger l JOIN records r ON r.source = l.source AND r.message_id = l.message_id
                WHERE l.customer_id = ANY(CAST(:c AS uuid[]))
                  AND l.kind = ANY(CAST(:k AS text[]))
                GROUP BY 1, 2
                """
            ),
            {"c": list(customer_ids), "k": [k.value for k in PLACEMENT_KINDS]},
        )
        holdings: dict[str, dict[str, int]] = defaultdict(dict)
        for row in rows:
            holdings[str(row[0])][str(row[1])] = int(row[2])
        return dict(holdings)
