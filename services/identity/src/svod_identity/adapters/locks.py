"""The locks serialising writers of the same identifiers, records and customers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from svod_runtime.db import array_literal, direct_statement, fetch_direct

_LOCK = direct_statement(
    "SELECT count(pg_advisory_xact_lock(h)) FROM (SELECT DISTINCT "
    "hashtextextended(k, 0) AS h FROM unnest(CAST(:k AS text[])) AS k ORDER BY 1) s"
)

_LOCK_CUSTOMERS = direct_statement(
    "SELECT 1 FROM customers WHERE customer_id = ANY(CAST(:c AS uuid[])) "
    "ORDER BY customer_id FOR UPDATE"
)


def lock_statement(lock_keys: Iterable[str]) -> list[tuple[str, dict[str, Any]]]:
    """The statement serialising work on the same identifiers and records (none for no
    keys), to run before the reads it guards.

    Locks are taken in the order of their hashes, the same order in every transaction, so
    two transactions cannot deadlock on them. This is what keeps parallel resolves carrying
    one new identifier from creating two customers: the second waits, then sees the first
    one's customer.
    """
    keys = sorted(set(lock_keys))
    return [(_LOCK, {"k": array_literal(keys)})] if keys else []


async def lock_customers(conn: AsyncConnection, customer_ids: Iterable[str]) -> None:
    """Row locks on customers about to gain identifiers or be merged (sorted: no deadlock)."""
    ids = sorted(set(customer_ids))
    if ids:
        await fetch_direct(conn, _LOCK_CUSTOMERS, {"c": array_literal(ids)})
