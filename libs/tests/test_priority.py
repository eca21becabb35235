"""Bulk work gives the event loop back every few milliseconds (svod_runtime.priority)."""

from __future__ import annotations

import asyncio

from svod_runtime.priority import BulkSlicer


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


def test_bulk_work_yields_once_a_slice_has_gone_by_and_not_at_every_step() -> None:
    async def scenario() -> int:
        clock = _WorkClock(unit_s=0.0005)
        slicer = BulkSlicer(slice_s=0.01, clock=clock)
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
        for _ in range(200):  # 100 ms of bulk work in units of 0.5 ms
            clock.work()
            await slicer.step_aside()
        stop = True
        await other
        return other_turns - turns_before

    # 100 ms / 10 ms slices: the other task ran ten times (once a slice), not at each of the
    # 200 steps; and it did run (a slicer that never yields would starve it).
    assert asyncio.run(scenario()) == 10
