"""Delivering accepted messages downstream: the outbox handlers of ingestion."""

from __future__ import annotations

from typing import Protocol

from svod_ingestion.adapters.storage import IngestionStore
from svod_runtime.outbox import DeliveryError, OutboxMessage


class Downstream(Protocol):
    async def deliver_identify(self, payload: bytes) -> str:
        """Resolves and applies one identify call; returns the customer id."""
        ...


class RecordDelivery:
    def __init__(self, store: IngestionStore, downstream: Downstream) -> None:
        self.store = store
        self.downstream = downstream

    async def identify(self, message: OutboxMessage) -> None:
        record_pk = int(message.key)
        payload = await self.store.payload(record_pk)
        if payload is None:
            raise DeliveryError("FAILED_PRECONDITION", "the record's payload was erased")
        customer_id = await self.downstream.deliver_identify(payload)
        await self.store.mark_delivered(record_pk, customer_id, message.attempts + 1)

    async def failed(self, message: OutboxMessage, error: str) -> None:
        await self.store.mark_failed(int(message.key), error, message.attempts + 1)
