"""Erasing a person from the identity graph."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from svod_identity.domain.model import Erasure, RecordRef
from svod_runtime.erasure import scrub_outbox

__all__ = ["CustomerErasure", "Erasure"]


class CustomerErasure:
    """Erasures, inside one transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def erase(self, customer_id: str) -> Erasure:
        """Forgets the person: identifiers deleted, records kept only as (source, message id),
        the customer and every id merged into it marked erased (NOT_FOUND from now on)."""
        ids = [
            str(r[0])
            for r in await self.conn.execute(
                text(
                    """
                    WITH RECURSIVE gone(id) AS (
                        SELECT CAST(:c AS uuid)
                        UNION SELECT c.customer_id FROM customers c
                        JOIN gone ON c.merged_into = gone.id
                    ) SELECT id FROM gone ORDER BY id
                    """
                ),
                {"c": customer_id},
            )
        ]
        params = {"c": customer_id, "ids": ids}
        mine = "SELECT record_pk FROM records WHERE customer_id = ANY(CAST(:ids AS uuid[]))"
        refs = [
            RecordRef(r.source, r.message_id)
            for r in await self.conn.execute(
                text(
                    "SELECT source, message_id FROM records "
                    "WHERE customer_id = ANY(CAST(:ids AS uuid[]))"
                ),
                params,
            )
        ]
        values = [
            str(r[0])
            for r in await self.conn.execute(
                text("SELECT value FROM identifiers WHERE customer_id = ANY(CAST(:ids AS uuid[]))"),
                params,
            )
        ]
        for statement in (
            f"DELETE FROM blocking_keys WHERE record_pk IN ({mine})",
            f"DELETE FROM record_identifiers WHERE record_pk IN ({mine})",
            # Review items show both sides' names and values: the person's go entirely.
            f"DELETE FROM review_items WHERE record_pk IN ({mine}) "
            f"OR candidate_record_pk IN ({mine}) "
            "OR candidate_customer_id = ANY(CAST(:ids AS uuid[]))",
            "UPDATE records SET identifiers = '[]', attributes = '{}', evidence = '{}' "
            "WHERE customer_id = ANY(CAST(:ids AS uuid[]))",
            "UPDATE customers SET erased_at = now() "
            "WHERE customer_id = ANY(CAST(:ids AS uuid[])) AND erased_at IS NULL",
        ):
            await self.conn.execute(text(statement), params)
        deleted = await self.conn.execute(
            text("DELETE FROM identifiers WHERE customer_id = ANY(CAST(:ids AS uuid[]))"), params
        )
        # The person is no candidate for anyone's identifiers any more (nor are the ids merged
        # into them).
        await self.conn.execute(
            text(
                """
                UPDATE identifiers SET sharers = sharers - CAST(:ids AS text[])
                WHERE sharers <> CAST('[]' AS jsonb) AND sharers ?| CAST(:ids AS text[])
                """
            ),
            params,
        )
        # Announcements and reports about the person not delivered yet (or refused for good).
        await scrub_outbox(self.conn, ids, values)
        return Erasure(refs, int(deleted.rowcount or 0), ids, values)
