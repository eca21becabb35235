"""Queueing a re-resolution job, inside any transaction of the service: ReresolveAll's own
(``job_storage``) and the one an automatic fit queues with the model it stores
(``rules_store``)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


async def queue_reresolve(
    conn: AsyncConnection, job_id: str, dry_run: bool, actor: str, reason: str
) -> None:
    """Queues a re-resolution named ``job_id`` in ``conn``'s transaction; nothing if a job of
    that name exists."""
    await conn.execute(
        text(
            "INSERT INTO resolution_jobs (job_id, kind, state, dry_run, actor, reason, "
            "queued_at) VALUES (:j, 'reresolve', 'queued', :d, :a, :r, now()) "
            "ON CONFLICT (job_id) DO NOTHING"
        ),
        {"j": job_id, "d": dry_run, "a": actor, "r": reason},
    )
