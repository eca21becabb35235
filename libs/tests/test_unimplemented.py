"""RPCs a servicer does not implement answer UNIMPLEMENTED and name themselves."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from svod.segmentation.v1 import segmentation_pb2, segmentation_pb2_grpc
from svod_runtime.server import fill_unimplemented


class Partial(segmentation_pb2_grpc.SegmentationServiceServicer):
    async def GetSegment(self, request, context):
        return segmentation_pb2.Segment(segment_id=request.segment_id)


async def _exercise() -> tuple[str, grpc.StatusCode, str, grpc.StatusCode]:
    server = grpc.aio.server()
    servicer = Partial()
    fill_unimplemented(
        servicer,
        segmentation_pb2_grpc.SegmentationServiceServicer,
        segmentation_pb2.DESCRIPTOR.services_by_name["SegmentationService"],
    )
    segmentation_pb2_grpc.add_SegmentationServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = segmentation_pb2_grpc.SegmentationServiceStub(channel)
            found = await stub.GetSegment(
                segmentation_pb2.GetSegmentRequest(segment_id="s"), timeout=5
            )
            with pytest.raises(grpc.aio.AioRpcError) as unary:
                await stub.ListSegments(segmentation_pb2.ListSegmentsRequest(), timeout=5)
            with pytest.raises(grpc.aio.AioRpcError) as streaming:
                async for _ in stub.WatchMemberships(
                    segmentation_pb2.WatchMembershipsRequest(), timeout=5
                ):
                    pass
    finally:
        await server.stop(0)
    return (
        found.segment_id,
        unary.value.code(),
        unary.value.details() or "",
        streaming.value.code(),
    )


def test_missing_methods_answer_unimplemented_with_their_name() -> None:
    segment_id, unary_code, unary_details, streaming_code = asyncio.run(_exercise())
    assert segment_id == "s"
    assert unary_code == grpc.StatusCode.UNIMPLEMENTED
    assert "SegmentationService/ListSegments" in unary_details
    assert streaming_code == grpc.StatusCode.UNIMPLEMENTED
