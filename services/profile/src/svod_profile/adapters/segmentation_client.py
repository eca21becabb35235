"""Announces profile changes to the segmentation service (the outbox handler of profile)."""

from __future__ import annotations

import json

import grpc

from svod.segmentation.v1 import segmentation_pb2, segmentation_pb2_grpc
from svod_profile.adapters.storage import ProfileStore
from svod_runtime.outbox import DeliveryError, OutboxMessage


class SegmentationAnnouncer:
    def __init__(
        self, store: ProfileStore, channel: grpc.aio.Channel, timeout_s: float, currency: str
    ) -> None:
        self.store = store
        self.stub = segmentation_pb2_grpc.SegmentationServiceStub(channel)
        self.timeout_s = timeout_s
        self.currency = currency

    async def changed(self, message: OutboxMessage) -> None:
        # Imported here: the servicer module holds the proto mapping of a profile.
        from svod_profile.entrypoints.grpc_servicer import profile_proto, timeline_entry

        change = json.loads(message.payload)
        customer_id = message.key
        async with self.store.transaction() as tx:
            view = await tx.load(customer_id)
            events = await tx.events.events_by_ref([tuple(r) for r in change.get("events", [])])
        if view is None:  # merged away or erased since: nothing left to announce
            return
        request = segmentation_pb2.ApplyProfileChangeRequest(
            customer_id=customer_id,
            profile_version=view.version,
            profile=profile_proto(view, self.currency),
            new_events=[timeline_entry(e, self.currency) for e in events],
            merged_customer_ids=change.get("merged", []),
        )
        try:
            await self.stub.ApplyProfileChange(request, timeout=self.timeout_s)
        except grpc.aio.AioRpcError as error:
            raise DeliveryError(error.code().name, error.details() or "") from None
