"""Bulk work gives the event loop back every few milliseconds (svod_runtime.priority)."""

from __future__ import annotations

import asyncio
import time

from svod_runtime.priority import BulkSlicer


def test_bulk_work_yields_once_a_slice_has_gone_by_and_not_at_every_step() -> None:
    async def scenario() -> tuple[int, int]:
        slicer = BulkSlicer(slice_s=0.01)
        other_turns = 0
        stop = False

        async def single_call() -> None:
            nonlocal other_turns
            while not stop:
                other_turns += 1
                await asyncio.sleep(0)

        other = asyncio.create_task(single_call())
        await asyncio.sleep(0)
        steps = 0
        started = time.monotonic()
        while time.monotonic() - started < 0.1:  # 100 ms of bulk work in small units
            busy_until = time.monotonic() + 0.0005
            while time.monotonic() < busy_until:
                pass
            await slicer.step_aside()
            steps += 1
        stop = True
        await other
        return steps, other_turns

    steps, other_turns = asyncio.run(scenario())
    # About 100 ms / 10 ms slices: the other task ran about ten times, not at every step.
    assert 5 <= other_turns <= 20
    assert steps > 5 * other_turns
