"""Which segments a customer is in, asked of the segmentation service: what a principal limited
to some segments may see of the profile service (docs/security.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import grpc

from svod.segmentation.v1 import segmentation_pb2, segmentation_pb2_grpc
from svod_runtime.clients import peer_error

# Membership questions of one call in flight at once (a page of search results).
IN_FLIGHT = 16


class SegmentMembership:
    def __init__(self, channel: grpc.aio.Channel, timeout_s: float) -> None:
        self.stub = segmentation_pb2_grpc.SegmentationServiceStub(channel)
        self.timeout_s = timeout_s

    async def segments_of(self, customer_id: str) -> set[str]:
        """The customer's segments now (none for a customer segmentation does not know)."""
        try:
            reply = await self.stub.GetCustomerSegments(
                segmentation_pb2.GetCustomerSegmentsRequest(customer_id=customer_id),
                timeout=self.timeout_s,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return set()
            raise peer_error(error, "segmentation service") from None
        return set(reply.segment_ids)

    async def members(self, customer_ids: Iterable[str], segments: frozenset[str]) -> set[str]:
        """The customers among these that are in at least one of the segments."""
        limit = asyncio.Semaphore(IN_FLIGHT)

        async def member(customer_id: str) -> str | None:
            async with limit:
                return customer_id if await self.segments_of(customer_id) & segments else None

        found = await asyncio.gather(*(member(c) for c in dict.fromkeys(customer_ids)))
        return {c for c in found if c is not None}
