"""Delivering accepted messages downstream: the outbox handlers of ingestion."""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from svod_ingestion.adapters.storage import IngestionStore
from svod_runtime.outbox import DeliveryError, OutboxMessage


class Downstream(Protocol):
    async def deliver_identify(self, payload: bytes) -> str:
        """Resolves and applies one identify call; returns the customer id."""
        ...

    async def deliver_track(self, payload: bytes) -> str | None:
        """Applies one event to its customer's profile; None when no customer matches."""
        ...


class RecordDelivery:
    def __init__(
        self, store: IngestionStore, downstream: Downstream, unknown_customer_grace_s: float
    ) -> None:
        self.store = store
        self.downstream = downstream
        self.grace = dt.timedelta(seconds=unknown_customer_grace_s)

    async def _payload(self, message: OutboxMessage) -> tuple[bytes, dt.datetime]:
        found = await self.store.payload(int(message.key))
        if found is None:
            raise DeliveryError("FAILED_PRECONDITION", "the record's payload was erased")
        return found

    async def identify(self, message: OutboxMessage) -> None:
        payload, _ = await self._payload(message)
        customer_id = await self.downstream.deliver_identify(payload)
        await self.store.mark_delivered(int(message.key), customer_id, message.attempts + 1)

    async def track(self, message: OutboxMessage) -> None:
        payload, received_at = await self._payload(message)
        customer_id = await self.downstream.deliver_track(payload)
        if customer_id is None:
            # The identify call may still be on its way: wait a while before giving up.
            if dt.datetime.now(dt.UTC) - received_at < self.grace:
                raise DeliveryError("UNAVAILABLE", "no customer has the event's identifiers yet")
            raise DeliveryError("NOT_FOUND", "no customer has any of the event's identifiers")
        await self.store.mark_delivered(int(message.key), customer_id, message.attempts + 1)

    async def failed(self, message: OutboxMessage, error: str) -> None:
        await self.store.mark_failed(int(message.key), error, message.attempts + 1)
