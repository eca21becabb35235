"""Interactive calls first: inside one service process, bulk work steps aside for single calls.

A bulk import keeps every service's event loop busy with stretches of Python (placing records in
identity, folding them in profile, parsing streams in ingestion). A single call that arrives
meanwhile - an Identify somebody waits on, a GetProfile - queues behind those stretches at every
``await`` of its own, once per bulk task ready to run. Outbox lanes (``svod_runtime.outbox``)
already keep it out of the bulk backlog; this module keeps it out of the bulk *CPU* of the
processes on its path:

* **Which calls are bulk.** A streaming RPC, or a call whose metadata says
  ``svod-lane: bulk`` (``LANE_HEADER``). Peer clients (``svod_runtime.clients.peer_channel``)
  send that header when they call from bulk work: from a bulk-lane outbox relay's pass or from
  a bulk call's handler (``current_lane``). Every other unary call is interactive.
* **Stepping aside.** Bulk loops call ``await step_aside()`` between units of work (a record,
  a customer). While an interactive call runs in the process, it waits for the interactive
  calls to finish (at most ``MAX_WAIT_S`` at a time, so bulk work is slowed, never stopped);
  otherwise it yields to the event loop once every ``SLICE_S`` of bulk work, so a call that
  arrives is read within that time and can announce itself. A wait that runs out is followed
  by as long a turn of bulk work without waiting: the interactive call may be waiting for a
  row lock the bulk work holds, and the bulk work must get to its commit to release it.

Why not only ``asyncio.sleep(0)`` every N records (what identity and profile did before): a
yield lets every *other* bulk task run its next stretch before the single call's next step;
with several bulk tasks per process the single call waited for each of them at each of its own
awaits (issue #20's probe: p99 1,184 ms accept -> in the profile while 10,000 records were
streamed).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from enum import IntEnum


class Lane(IntEnum):
    """Interactive or bulk: of a call, of the work it does, of the outbox rows it writes
    (stored in ``outbox.lane``; ``svod_runtime.outbox.OutboxLane`` is this enum)."""

    # Single calls somebody waits on (and every row of a service that runs one relay).
    INTERACTIVE = 0
    # Bulk streams and imports: throughput over latency.
    BULK = 1


# gRPC metadata key a caller sets to ``bulk`` for a unary call made from bulk work.
LANE_HEADER = "svod-lane"
BULK_LANE_VALUE = "bulk"
# Longest stretch of bulk Python between two looks at the event loop. 5 ms keeps a GetProfile
# (about 2 ms of its own work) within the 10 ms the interactive floor allows; a yield costs
# about 10 microseconds, so 5 ms slices cost bulk work about 0.2%.
SLICE_S = 0.005
# Longest a bulk task waits for interactive calls in one go: a flood of single calls slows an
# import down but never stops it.
MAX_WAIT_S = 0.1

_lane: ContextVar[Lane | None] = ContextVar("svod_lane", default=None)


def current_lane() -> Lane | None:
    """The lane of the work running in this task (None: not said; a unary call's default)."""
    return _lane.get()


@contextlib.contextmanager
def in_lane(lane: Lane | None) -> Iterator[None]:
    """Runs the block as work of ``lane`` (peer calls made in it carry the lane)."""
    token = _lane.set(lane)
    try:
        yield
    finally:
        _lane.reset(token)


class InteractiveFirst:
    """Counts the interactive calls running in this process; bulk work waits for them."""

    def __init__(self, slice_s: float = SLICE_S, max_wait_s: float = MAX_WAIT_S) -> None:
        self.slice_s = slice_s
        self.max_wait_s = max_wait_s
        self.running = 0
        self._last_yield = time.monotonic()
        # After waiting MAX_WAIT_S in vain, bulk work runs this long without waiting again.
        self._bulk_turn_until = 0.0
        # One per event loop (tests run several loops in one process, one after another).
        self._idle: asyncio.Event | None = None
        self._idle_loop: asyncio.AbstractEventLoop | None = None

    def _idle_event(self) -> asyncio.Event:
        loop = asyncio.get_running_loop()
        if self._idle is None or self._idle_loop is not loop:
            self._idle, self._idle_loop = asyncio.Event(), loop
            if not self.running:
                self._idle.set()
        return self._idle

    @contextlib.contextmanager
    def interactive(self) -> Iterator[None]:
        """Runs the block as an interactive call: bulk work in this process waits for it."""
        idle = self._idle_event()
        self.running += 1
        idle.clear()
        try:
            with in_lane(Lane.INTERACTIVE):
                yield
        finally:
            self.running -= 1
            if not self.running:
                idle.set()

    async def step_aside(self) -> None:
        """Called by bulk work between units: gives the event loop to interactive calls."""
        if _lane.get() is Lane.INTERACTIVE:
            return  # an interactive call running shared (bulk) code: it is the one to serve
        now = time.monotonic()
        if self.running and now >= self._bulk_turn_until:
            try:
                await asyncio.wait_for(self._idle_event().wait(), self.max_wait_s)
            except TimeoutError:
                # The interactive call may be waiting for this bulk work (a row lock it
                # holds): bulk runs its turn before it waits again.
                self._bulk_turn_until = time.monotonic() + self.max_wait_s
            self._last_yield = time.monotonic()
            return
        if now - self._last_yield >= self.slice_s:
            await asyncio.sleep(0)
            self._last_yield = time.monotonic()


# The process's one gate: the server interceptor counts interactive calls in it.
INTERACTIVE_FIRST = InteractiveFirst()


async def step_aside() -> None:
    """``INTERACTIVE_FIRST.step_aside()``: call it between units of bulk work."""
    await INTERACTIVE_FIRST.step_aside()


def is_bulk_call(streaming: bool, metadata: Iterable[tuple[str, str | bytes]] | None) -> bool:
    """Whether a server call is bulk: streaming, or marked so by its caller."""
    if streaming:
        return True
    return any(key == LANE_HEADER and value == BULK_LANE_VALUE for key, value in metadata or ())
