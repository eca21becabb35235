"""One transaction runner for every service: a transaction that lost a deadlock or a
serialisation conflict is run again from the start.

PostgreSQL aborts one of two transactions that wait on each other (SQLSTATE 40P01) or whose
serialisable snapshots conflict (40001); the other commits. The loser did nothing (its
transaction rolled back), so running its work again is safe and is what the caller would have
to do anyway: the caller gets the answer, not an internal error. Any other error is raised at
once. Pure: it runs any ``begin()`` that gives an async context manager (a port's
``transaction``), and recognises the conflict by the SQLSTATE that SQLAlchemy's and psycopg's
errors carry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Final, TypeVar

from svod_runtime.own_random import own_random

# deadlock_detected, serialization_failure
RETRY_SQLSTATES: Final = frozenset({"40P01", "40001"})
ATTEMPTS: Final = 5
# Pause before attempt n+1: about n * PAUSE_S (the winner usually commits within
# milliseconds), drawn between half and one and a half of it: losers that paused alike met
# again in the same order (four TrackStreams of the same 300 messages in turned orders lost
# all five attempts once in a clean-clone CI at load 15, tests/e2e/test_events_and_metrics).
PAUSE_S: Final = 0.01
# The pauses' own generator, not the random module's global state (see own_random).
_JITTER: Final = own_random()

U = TypeVar("U")
T = TypeVar("T")


def sqlstate_of(error: BaseException) -> str | None:
    """The SQLSTATE of a database error: SQLAlchemy wraps the driver's (``orig``), statements
    run directly raise psycopg's own."""
    found = getattr(getattr(error, "orig", error), "sqlstate", None)
    return found if isinstance(found, str) else None


def is_retryable(error: BaseException) -> bool:
    return sqlstate_of(error) in RETRY_SQLSTATES


async def run_in_transaction(
    begin: Callable[[], AbstractAsyncContextManager[U]],
    work: Callable[[U], Awaitable[T]],
    *,
    attempts: int = ATTEMPTS,
    pause_s: float = PAUSE_S,
) -> T:
    """``work`` in a transaction from ``begin()``; run again from the start (in a new
    transaction) after a deadlock or serialisation failure, at most ``attempts`` times."""

    async def once() -> T:
        async with begin() as tx:
            return await work(tx)

    return await run_again_on_conflict(once, attempts=attempts, pause_s=pause_s)


async def run_again_on_conflict(
    work: Callable[[], Awaitable[T]],
    *,
    attempts: int = ATTEMPTS,
    pause_s: float = PAUSE_S,
) -> T:
    """``work`` (which opens its own transactions) run again from the start after one of them
    lost a deadlock or serialisation conflict, at most ``attempts`` times.

    The runtime's interceptor runs every unary RPC handler this way, so a use case that lost a
    conflict is answered, not refused, in every service. Safe for the same reason a client's
    retry is: the losing transaction rolled back, and every Svod write is idempotent under a
    retry of its call (a client retries the UNAVAILABLE that a conflict would otherwise give).
    """
    for attempt in range(1, attempts + 1):
        try:
            return await work()
        except Exception as error:
            if attempt == attempts or not is_retryable(error):
                raise
            await asyncio.sleep(pause_s * attempt * (0.5 + _JITTER.random()))
    raise AssertionError("unreachable: the last attempt returns or raises")
