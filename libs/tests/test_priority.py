"""Interactive calls first (svod_runtime.priority): bulk work in a process waits while a single
call runs, a caller's bulk mark is honoured, and bulk peer calls carry the mark."""

from __future__ import annotations

import asyncio

import grpc

from svod.segmentation.v1 import segmentation_pb2, segmentation_pb2_grpc
from svod_runtime.clients import _StreamUnaryOutgoing, _UnaryUnaryOutgoing
from svod_runtime.interceptors import CoreInterceptor
from svod_runtime.priority import (
    INTERACTIVE_FIRST,
    LANE_HEADER,
    InteractiveFirst,
    Lane,
    current_lane,
    in_lane,
    is_bulk_call,
    step_aside,
)


def test_bulk_work_waits_while_an_interactive_call_runs_and_goes_on_after() -> None:
    async def scenario() -> tuple[int, int, int]:
        gate = InteractiveFirst(slice_s=0.0, max_wait_s=5.0)
        steps = 0
        stop = False

        async def bulk() -> None:
            nonlocal steps
            while not stop:
                await gate.step_aside()
                steps += 1

        task = asyncio.create_task(bulk())
        await asyncio.sleep(0.01)
        with gate.interactive():
            before = steps
            await asyncio.sleep(0.05)  # the call awaits its database, say
            during = steps - before
        await asyncio.sleep(0.01)
        after = steps - before - during
        stop = True
        await task
        return before, during, after

    before, during, after = asyncio.run(scenario())
    assert before > 0
    assert during <= 1  # at most the step already past its look at the gate
    assert after > 0


def test_an_interactive_call_running_bulk_code_does_not_wait_for_itself() -> None:
    async def scenario() -> None:
        gate = InteractiveFirst(max_wait_s=5.0)
        with gate.interactive():
            await asyncio.wait_for(gate.step_aside(), 0.5)

    asyncio.run(scenario())


def test_a_wait_that_runs_out_gives_bulk_work_a_turn_before_it_waits_again() -> None:
    """The interactive call may wait for a lock the bulk work holds: bulk must reach its
    commit, not wait max_wait_s before every record."""

    async def scenario() -> tuple[float, int]:
        gate = InteractiveFirst(slice_s=0.0, max_wait_s=0.05)
        loop = asyncio.get_running_loop()
        with gate.interactive():
            started = loop.time()
            steps = 0
            while loop.time() - started < 0.09:  # one wait, then a turn
                await gate.step_aside()
                steps += 1
            return loop.time() - started, steps

    elapsed, steps = asyncio.run(scenario())
    assert elapsed < 0.2
    assert steps > 10


def test_streams_and_calls_marked_bulk_are_bulk_other_unary_calls_interactive() -> None:
    assert is_bulk_call(True, None)
    assert is_bulk_call(False, [("x", "y"), (LANE_HEADER, "bulk")])
    assert not is_bulk_call(False, [(LANE_HEADER, "interactive")])
    assert not is_bulk_call(False, None)


class _Probe(segmentation_pb2_grpc.SegmentationServiceServicer):
    """GetSegment: how many steps a bulk loop of this process made while the call ran, and
    the lane the call ran in."""

    def __init__(self) -> None:
        self.steps = 0

    async def GetSegment(
        self, request: segmentation_pb2.GetSegmentRequest, context: grpc.aio.ServicerContext
    ) -> segmentation_pb2.Segment:
        before = self.steps
        await asyncio.sleep(0.05)
        lane = current_lane()
        return segmentation_pb2.Segment(
            segment_id=request.segment_id,
            display_name=f"{self.steps - before}",
            description="bulk" if lane is Lane.BULK else "interactive",
        )


def test_through_grpc_a_single_call_stops_bulk_work_a_marked_call_does_not() -> None:
    async def scenario() -> tuple[segmentation_pb2.Segment, segmentation_pb2.Segment]:
        probe = _Probe()
        stop = asyncio.Event()

        async def bulk() -> None:
            with in_lane(Lane.BULK):
                while not stop.is_set():
                    await step_aside()
                    probe.steps += 1
                    await asyncio.sleep(0.001)  # bulk work awaiting its database

        server = grpc.aio.server(interceptors=[CoreInterceptor("test", max_request_s=30)])
        segmentation_pb2_grpc.add_SegmentationServiceServicer_to_server(probe, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        task = asyncio.create_task(bulk())
        try:
            # A peer client: plain from interactive work, marked from bulk work.
            async with grpc.aio.insecure_channel(
                f"127.0.0.1:{port}",
                interceptors=[_UnaryUnaryOutgoing(None), _StreamUnaryOutgoing(None)],
            ) as channel:
                stub = segmentation_pb2_grpc.SegmentationServiceStub(channel)
                single = await stub.GetSegment(segmentation_pb2.GetSegmentRequest(segment_id="a"))
                with in_lane(Lane.BULK):
                    marked = await stub.GetSegment(
                        segmentation_pb2.GetSegmentRequest(segment_id="b")
                    )
        finally:
            stop.set()
            await task
            await server.stop(0)
        return single, marked

    single, marked = asyncio.run(scenario())
    assert single.description == "interactive"
    assert int(single.display_name) <= 1
    assert marked.description == "bulk"
    assert int(marked.display_name) >= 5
    assert INTERACTIVE_FIRST.running == 0
