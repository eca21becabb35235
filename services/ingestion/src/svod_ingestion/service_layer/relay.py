"""The outbox relay: delivers accepted messages downstream, at least once, with backoff.

Restartable: rows are leased, not removed, until delivered; a relay that dies leaves its rows
to be re-leased when the lease runs out. Each delivery continues the trace of the call that
accepted the message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from opentelemetry import trace

from svod_ingestion.adapters.storage import IngestionStore
from svod_ingestion.domain.delivery import is_permanent, retry_delay
from svod_ingestion.domain.model import OutboxItem
from svod_runtime.telemetry import context_from_carrier

log = logging.getLogger(__name__)


class DeliveryError(Exception):
    """A downstream refusal; ``status`` is the gRPC status name."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class Downstream(Protocol):
    async def deliver(self, kind: str, payload: bytes) -> str:
        """Delivers one message; returns the customer id it was resolved to."""
        ...


class OutboxRelay:
    def __init__(
        self,
        store: IngestionStore,
        downstream: Downstream,
        tracer: trace.Tracer,
        *,
        batch_size: int = 64,
        concurrency: int = 16,
        lease_s: float = 60.0,
        poll_s: float = 0.5,
    ) -> None:
        self.store = store
        self.downstream = downstream
        self.tracer = tracer
        self.batch_size = batch_size
        self.lease_s = lease_s
        self.poll_s = poll_s
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrency)

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                delivered = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay pass failed")
                delivered = 0
            if delivered < self.batch_size:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_s)

    async def run_once(self) -> int:
        items = await self.store.claim_due(self.batch_size, self.lease_s)
        await asyncio.gather(*(self._deliver(item) for item in items))
        return len(items)

    async def _deliver(self, item: OutboxItem) -> None:
        async with self._slots:
            parent = context_from_carrier(item.trace_carrier)
            with self.tracer.start_as_current_span(
                f"outbox deliver {item.kind}", context=parent, kind=trace.SpanKind.CONSUMER
            ) as span:
                span.set_attribute("svod.outbox.attempt", item.attempts + 1)
                try:
                    customer_id = await self.downstream.deliver(item.kind, item.payload)
                except DeliveryError as error:
                    span.set_status(trace.StatusCode.ERROR, error.status)
                    if is_permanent(error.status):
                        log.warning(
                            "outbox item %d failed for good: %s", item.outbox_pk, error.status
                        )
                        await self.store.mark_failed(item, str(error))
                    else:
                        await self.store.schedule_retry(
                            item, str(error), retry_delay(item.attempts + 1)
                        )
                    return
                await self.store.mark_delivered(item, customer_id)
