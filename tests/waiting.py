"""One way for a test to wait for the system to get somewhere (asynchronous hops settle later).

``wait_until(check)`` calls ``check`` until it returns something truthy and returns that value;
with ``until``, until ``until(value)`` is true (so ``check`` can return the whole state, a
status or a profile, and a timeout shows it). After ``timeout_s`` it fails the test naming
``what`` and the last value seen, so a stuck hop says where it stood. Deadlines are generous:
the suite shares two cores with Postgres and five services, and a wait that ends early costs
nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

INTERVAL_S = 0.05


def wait_until(
    check: Callable[[], T],
    timeout_s: float = 30.0,
    what: str = "condition",
    interval_s: float = INTERVAL_S,
    until: Callable[[T], object] | None = None,
) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if until(result) if until is not None else result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not reached in {timeout_s:g} s (last: {result!r})")
        time.sleep(interval_s)


async def wait_until_async(
    check: Callable[[], Awaitable[T]],
    timeout_s: float = 30.0,
    what: str = "condition",
    interval_s: float = INTERVAL_S,
    until: Callable[[T], object] | None = None,
) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        result = await check()
        if until(result) if until is not None else result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not reached in {timeout_s:g} s (last: {result!r})")
        await asyncio.sleep(interval_s)
