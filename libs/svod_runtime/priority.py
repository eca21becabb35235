"""Bulk work in a service process gives the event loop back every few milliseconds.

A bulk import keeps every service's event loop busy with stretches of Python (placing records
in identity, working out shown values in profile, checking streamed messages in ingestion). A
single call that arrives meanwhile is not even read until the stretch ends. Bulk loops call
``await step_aside()`` between units of work (a record, a customer, a message): it yields to
the event loop once ``SLICE_S`` of work has gone by since the last yield (by any task), so a
single call waits at most about that long for each turn. A yield costs about 10 microseconds.

Before, identity and profile yielded every 25 records; a chunk's 25 records took 5-70 ms
depending on the records and the load.

Tried and removed (issue #20; docs/performance.md, "Interactive calls first: tried"): bulk
work *waiting* while any interactive call ran in the process, with bulk calls marked by their
callers. On a quiet machine it lowered neither the single Identify's p99 (887-927 ms against
713-1,089 ms without) nor GetProfile's (167-239 ms against 137-148 ms), and bulk identify ran at
0.35 of ResolveBatch against 0.45-0.46. What those p99s measure is mostly the garbage
collector's full passes (100-285 ms each in every service process during the import).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")

# Longest stretch of bulk Python between two looks at the event loop.
SLICE_S = 0.005


class BulkSlicer:
    """When bulk work last gave the event loop back."""

    def __init__(
        self, slice_s: float = SLICE_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.slice_s = slice_s
        self._clock = clock
        self._last_yield = clock()

    async def step_aside(self) -> None:
        """Called by bulk work between units: yields once ``slice_s`` has gone by."""
        if self._clock() - self._last_yield >= self.slice_s:
            await asyncio.sleep(0)
            self._last_yield = self._clock()


# The process's one clock of bulk stretches.
BULK_SLICER = BulkSlicer()


async def step_aside() -> None:
    """``BULK_SLICER.step_aside()``: call it between units of bulk work."""
    await BULK_SLICER.step_aside()


async def sliced(items: Iterable[T], slicer: BulkSlicer = BULK_SLICER) -> AsyncIterator[T]:
    """``items`` one by one, stepping aside between them: for a loop over a batch's rows or
    messages (``async for``, async comprehensions) that would otherwise run as one stretch.

    Under a pipeline import such loops ran 15-42 ms at a time in profile and segmentation,
    and a GetProfile arriving meanwhile waited for them (docs/performance.md, "Long
    stretches")."""
    for item in items:
        await slicer.step_aside()
        yield item
