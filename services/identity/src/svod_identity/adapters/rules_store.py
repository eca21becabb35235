"""The stored matching rules and match models, both versioned."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from svod_identity.adapters.encoding import to_json
from svod_identity.adapters.job_queue import queue_reresolve


class RulesAndModels:
    """Rules and models, inside one transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def current_rules(self) -> tuple[int, dict[str, Any], dt.datetime, str] | None:
        row = (
            await self.conn.execute(
                text(
                    "SELECT version, body, created_at, actor FROM rules ORDER BY version DESC "
                    "LIMIT 1"
                )
            )
        ).first()
        return None if row is None else (int(row[0]), dict(row[1]), row[2], row[3])

    async def store_rules(self, version: int, body: dict[str, Any], actor: str) -> dt.datetime:
        row = await self.conn.execute(
            text(
                "INSERT INTO rules (version, body, actor) VALUES (:v, CAST(:b AS jsonb), :a) "
                "RETURNING created_at"
            ),
            {"v": version, "b": to_json(body), "a": actor},
        )
        return row.scalar_one()

    async def lock_rules(self) -> None:
        await self.conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended('rules', 0))"))

    async def lock_models(self) -> None:
        await self.conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended('match_models', 0))")
        )

    async def queue_reresolution(self, job_id: str, actor: str, reason: str) -> None:
        await queue_reresolve(self.conn, job_id, False, actor, reason)

    async def current_model(self) -> tuple[int, dict[str, Any], int, dt.datetime, str] | None:
        row = (
            await self.conn.execute(
                text(
                    "SELECT version, body, trained_pairs, created_at, actor FROM match_models "
                    "ORDER BY version DESC LIMIT 1"
                )
            )
        ).first()
        return None if row is None else (int(row[0]), dict(row[1]), int(row[2]), row[3], row[4])

    async def store_model(
        self, body: dict[str, Any], pairs: int, actor: str
    ) -> tuple[int, dt.datetime]:
        row = (
            await self.conn.execute(
                text(
                    "INSERT INTO match_models (body, trained_pairs, actor) "
                    "VALUES (CAST(:b AS jsonb), :p, :a) RETURNING version, created_at"
                ),
                {"b": to_json(body), "p": pairs, "a": actor},
            )
        ).one()
        return int(row[0]), row[1]
