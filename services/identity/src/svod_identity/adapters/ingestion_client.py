"""Tells ingestion which customers a merge, split or rules change touched, so events it holds
unattributed for them get another look at once (outbox handler of identity)."""

from __future__ import annotations

import json

import grpc

from svod.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from svod_runtime.clients import delivery_error
from svod_runtime.outbox import DeliveryError, OutboxMessage

# Customer ids per RecheckUnattributedEvents call (the RPC's limit).
IDS_PER_CALL = 1_000


class IngestionNotifier:
    def __init__(self, channel: grpc.aio.Channel, timeout_s: float) -> None:
        self.stub = ingestion_pb2_grpc.IngestionServiceStub(channel)
        self.timeout_s = timeout_s

    async def changed(self, messages: list[OutboxMessage]) -> list[DeliveryError | None]:
        """One relay pass's announcements as few calls as possible: all customers together,
        or one call for everything when a rules change is among them."""
        changes = [json.loads(m.payload) for m in messages]
        try:
            if any(change.get("all") for change in changes):
                await self._send(ingestion_pb2.RecheckUnattributedEventsRequest(all=True))
            else:
                ids = sorted({c for change in changes for c in change.get("customer_ids", ())})
                for start in range(0, len(ids), IDS_PER_CALL):
                    await self._send(
                        ingestion_pb2.RecheckUnattributedEventsRequest(
                            customer_ids=ids[start : start + IDS_PER_CALL]
                        )
                    )
        except DeliveryError as error:
            return [error] * len(messages)
        return [None] * len(messages)

    async def _send(self, request: ingestion_pb2.RecheckUnattributedEventsRequest) -> None:
        try:
            await self.stub.RecheckUnattributedEvents(request, timeout=self.timeout_s)
        except grpc.aio.AioRpcError as error:
            raise delivery_error(error) from None
