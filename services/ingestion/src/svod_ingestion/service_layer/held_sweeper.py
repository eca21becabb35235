"""Hands held and waiting events back to the outbox when a look at them is due."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from svod_ingestion.service_layer.ports import HeldEventRequeue

log = logging.getLogger(__name__)
# Events handed back per pass (one relay pass's worth).
REQUEUE_BATCH = 2_000
# How often one event waiting for identity is looked at, due or not.
PROBE_S = 1.0


class HeldEventSweeper:
    def __init__(
        self, store: HeldEventRequeue, on_requeued: Callable[[], None], poll_s: float = 0.5
    ) -> None:
        self.store = store
        self.on_requeued = on_requeued
        self.poll_s = poll_s
        self._wake = asyncio.Event()
        self._next_probe = 0.0

    def wake(self) -> None:
        """Something made held events due now (an identify, a merge, identity back)."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                requeued = await self.store.requeue_due(REQUEUE_BATCH)
                if time.monotonic() >= self._next_probe:
                    # While identity is down its waiters back off up to 30 s between looks;
                    # one of them is looked at every PROBE_S so its return is noticed at once.
                    self._next_probe = time.monotonic() + PROBE_S
                    requeued += await self.store.requeue_probe()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database may be down: try again on the next tick
                log.exception("held-event sweep failed")
                requeued = 0
            if requeued:
                self.on_requeued()
            if requeued < REQUEUE_BATCH:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_s)
