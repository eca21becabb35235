"""Erased customers and the locks that keep an erasure and a write about the same customer
apart: the write either finishes before the erasure (which then deletes what it wrote) or
starts after it (and finds the tombstone)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from svod_runtime.db import array_literal, fetch_direct, fetch_direct_pipelined

# Seed of the advisory lock keys of customer ids (hashtextextended).
ERASURE_LOCK_SEED = 170_901
_LOCK = (
    "SELECT {function}(k) FROM (SELECT hashtextextended(c, "
    + str(ERASURE_LOCK_SEED)
    + ") AS k FROM unnest(CAST(%(c)s AS text[])) AS c ORDER BY 1) AS ordered"
)


def erasure_lock_statement(*, shared: bool) -> str:
    """The statement taking the erasure locks of the ids in parameter ``c`` (array literal)."""
    return _LOCK.format(
        function="pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    )


async def lock_for_erasure(
    conn: AsyncConnection, customer_ids: Iterable[str], *, shared: bool
) -> None:
    """Transaction-level advisory locks on the ids, always in one order (no deadlocks): an
    erasure takes them alone, every write that could create or move a profile shared."""
    await fetch_direct(
        conn,
        erasure_lock_statement(shared=shared),
        {"c": array_literal(sorted(set(customer_ids)))},
    )


_ERASED = "SELECT customer_id FROM erased_customers WHERE customer_id = ANY(CAST(%(c)s AS uuid[]))"
_PRESENT = (
    "SELECT CAST(customer_id AS text) AS customer_id FROM profiles "
    "WHERE customer_id = ANY(CAST(%(c)s AS uuid[]))"
)


async def _read_after_locks(
    conn: AsyncConnection, ids: list[str], reads: list[str]
) -> list[list[Any]]:
    """The ids' erasure locks taken shared, then ``reads`` (statements over ``%(c)s``), in one
    round trip: the server takes the locks, then reads with a snapshot of its own (in a
    statement of its own: the reads must see an erasure that committed while this
    transaction waited for a lock)."""
    params = {"c": array_literal(ids)}
    _, *found = await fetch_direct_pipelined(
        conn,
        [(erasure_lock_statement(shared=True), params), *((read, params) for read in reads)],
    )
    return found


async def erased_among(conn: AsyncConnection, customer_ids: Iterable[str]) -> set[str]:
    """Which of the ids were erased; their locks are taken shared first."""
    ids = sorted(set(customer_ids))
    if not ids:
        return set()
    (erased,) = await _read_after_locks(conn, ids, [_ERASED])
    return {str(r.customer_id) for r in erased}


async def erased_and_absent(
    conn: AsyncConnection, customer_ids: Iterable[str]
) -> tuple[set[str], set[str]]:
    """``erased_among``, and which of the ids had no profile a moment later (read in the same
    round trip; a hint only: a profile may be made or dropped before the caller locks it)."""
    ids = sorted(set(customer_ids))
    if not ids:
        return set(), set()
    erased, present = await _read_after_locks(conn, ids, [_ERASED, _PRESENT])
    return {str(r.customer_id) for r in erased}, set(ids) - {r.customer_id for r in present}
