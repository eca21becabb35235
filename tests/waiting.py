"""One way for a test to wait for the system to get somewhere (asynchronous hops settle later).

``wait_until(check)`` calls ``check`` until it returns something truthy and returns that value;
with ``until``, until ``until(value)`` is true (so ``check`` can return the whole state, a
status or a profile, and a timeout shows it). After ``timeout_s`` it fails the test naming
``what`` and the last value seen, so a stuck hop says where it stood, and writes every
thread's stack and every other running event loop's tasks to stderr (pytest shows them with
the failure): an in-process suite that stops making progress - seen twice in clean-clone runs,
never locally - then shows where its services were waiting. Deadlines are generous:
the suite shares two cores with Postgres and five services, and a wait that ends early costs
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import gc
import sys
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
            _dump_stacks(what)
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
            _dump_stacks(what)
            raise AssertionError(f"{what} not reached in {timeout_s:g} s (last: {result!r})")
        await asyncio.sleep(interval_s)


def _dump_stacks(what: str) -> None:
    """Every thread's stack, then the tasks of every event loop running in another thread (an
    in-process suite's services), to stderr."""
    print(f"--- {what}: not reached; stacks at the timeout", file=sys.stderr, flush=True)
    # A stderr without a file descriptor (pytest's sys capture) gets the tasks alone.
    with contextlib.suppress(AttributeError, ValueError, OSError):
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    try:
        here = asyncio.get_running_loop()
    except RuntimeError:
        here = None
    loops = [
        o
        for o in gc.get_objects()
        if isinstance(o, asyncio.AbstractEventLoop) and o.is_running() and o is not here
    ]
    for loop in loops:
        tasks = asyncio.all_tasks(loop)
        print(f"--- {len(tasks)} tasks of loop {id(loop):#x}", file=sys.stderr)
        for task in tasks:
            task.print_stack(limit=6, file=sys.stderr)
    sys.stderr.flush()
