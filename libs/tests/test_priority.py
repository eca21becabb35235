"""Bulk work gives the event loop back every few milliseconds (svod_runtime.priority)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from svod_runtime.priority import BulkSlicer, sliced


class _WorkClock:
    """Time as bulk work spends it: each unit of work moves it on by ``unit_s``. A wall clock
    made this test fail on a loaded machine (preemption stretched the units)."""

    def __init__(self, unit_s: float) -> None:
        self.now = 0.0
        self.unit_s = unit_s

    def __call__(self) -> float:
        return self.now

    def work(self) -> None:
        self.now += self.unit_s


async def _turns_of_another_task(bulk: Callable[[], Awaitable[None]]) -> int:
    """How many turns a task that only waits for the loop (a single call) got while ``bulk``
    ran."""
    other_turns = 0
    stop = False

    async def single_call() -> None:
        nonlocal other_turns
        while not stop:
            other_turns += 1
            await asyncio.sleep(0)

    other = asyncio.create_task(single_call())
    await asyncio.sleep(0)
    turns_before = other_turns
    await bulk()
    stop = True
    await other
    return other_turns - turns_before


def test_bulk_work_yields_once_a_slice_has_gone_by_and_not_at_every_step() -> None:
    clock = _WorkClock(unit_s=0.0005)
    slicer = BulkSlicer(slice_s=0.01, clock=clock)

    async def bulk() -> None:
        for _ in range(200):  # 100 ms of bulk work in units of 0.5 ms
            clock.work()
            await slicer.step_aside()

    # 100 ms / 10 ms slices: the other task ran ten times (once a slice), not at each of the
    # 200 steps; and it did run (a slicer that never yields would starve it).
    assert asyncio.run(_turns_of_another_task(bulk)) == 10


def test_a_sliced_loop_keeps_its_order_and_lets_other_calls_run_between_its_items() -> None:
    clock = _WorkClock(unit_s=0.002)
    slicer = BulkSlicer(slice_s=0.01, clock=clock)
    seen: list[int] = []

    async def bulk() -> None:
        async for item in sliced(range(50), slicer):  # 100 ms of work in 2 ms items
            clock.work()
            seen.append(item)

    turns = asyncio.run(_turns_of_another_task(bulk))
    assert seen == list(range(50))
    # The other task got a turn once per 10 ms slice that ended between two items (at items
    # 5, 10, ..., 45: nine; the last slice ends with the loop), not only after the loop.
    assert turns == 9
