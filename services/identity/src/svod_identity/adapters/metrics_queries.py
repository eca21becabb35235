"""The queries behind identity's polled gauges (see entrypoints/metrics.py)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

_OPEN_REVIEW_ITEMS = text("SELECT count(*) FROM review_items WHERE state = 'open'")
# Customers by how many identifiers they hold (those holding none are not counted).
_IDENTIFIER_COUNTS = text(
    "SELECT n, count(*) AS customers "
    "FROM (SELECT count(*) AS n FROM identifiers GROUP BY customer_id) AS per_customer "
    "GROUP BY n"
)


class IdentityGaugeQueries:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def open_review_items(self) -> int:
        async with self.engine.connect() as conn:
            return int((await conn.execute(_OPEN_REVIEW_ITEMS)).scalar_one())

    async def identifier_counts(self) -> dict[int, int]:
        """{identifiers held: customers holding that many}; reads every identifier (slow poll)."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(_IDENTIFIER_COUNTS)).all()
        return {int(r.n): int(r.customers) for r in rows}
