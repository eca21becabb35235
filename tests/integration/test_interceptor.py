"""The shared server interceptor over a real gRPC server on loopback: what a caller sees when a
call runs without a deadline for too long, and how a domain error reaches it."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from svod.profile.v1 import profile_pb2, profile_pb2_grpc
from svod_runtime.errors import FieldViolation, InvalidArgument
from svod_runtime.interceptors import STATUS_DETAILS_KEY, CoreInterceptor


class _Slow(profile_pb2_grpc.ProfileServiceServicer):
    async def GetProfile(self, request, context):
        if request.customer_id == "bad":
            raise InvalidArgument([FieldViolation("customer_id", "must be a UUID")])
        await asyncio.sleep(float(request.customer_id))
        return profile_pb2.Profile(customer_id=request.customer_id)


async def _with_server(scenario, tracer=None, *, raw: bool = False) -> None:
    """Runs ``scenario(stub)`` against a server with a 0.3 s bound on deadline-less calls."""
    server = grpc.aio.server(
        interceptors=[CoreInterceptor("test", max_request_s=0.3, tracer=tracer)]
    )
    profile_pb2_grpc.add_ProfileServiceServicer_to_server(_Slow(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await scenario(channel if raw else profile_pb2_grpc.ProfileServiceStub(channel))
    finally:
        await server.stop(None)


def test_a_call_without_a_deadline_is_bounded_by_the_server() -> None:
    async def scenario(stub) -> None:
        reply = await stub.GetProfile(profile_pb2.GetProfileRequest(customer_id="0.01"))
        assert reply.customer_id == "0.01"
        with pytest.raises(grpc.aio.AioRpcError) as slow:
            await stub.GetProfile(profile_pb2.GetProfileRequest(customer_id="1.0"))
        assert slow.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "longer than 0.3s" in (slow.value.details() or "")
        # A caller's own deadline is the one that counts.
        request = profile_pb2.GetProfileRequest(customer_id="0.5")
        assert (await stub.GetProfile(request, timeout=5)).customer_id == "0.5"

    asyncio.run(_with_server(scenario))


def test_a_domain_error_arrives_as_a_status_with_field_violations() -> None:
    async def scenario(stub) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await stub.GetProfile(profile_pb2.GetProfileRequest(customer_id="bad"), timeout=5)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        details = dict(bad.value.trailing_metadata() or ())[STATUS_DETAILS_KEY]
        status = status_pb2.Status.FromString(details)
        violations = error_details_pb2.BadRequest()
        assert status.details[0].Unpack(violations)
        assert [(v.field, v.description) for v in violations.field_violations] == [
            ("customer_id", "must be a UUID")
        ]

    asyncio.run(_with_server(scenario))


def test_each_call_is_a_server_span_in_the_callers_trace() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind, StatusCode

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    async def scenario(stub) -> None:
        await stub.GetProfile(
            profile_pb2.GetProfileRequest(customer_id="0.01"),
            timeout=5,
            metadata=(("traceparent", caller),),
        )
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.GetProfile(profile_pb2.GetProfileRequest(customer_id="bad"), timeout=5)

    asyncio.run(_with_server(scenario, provider.get_tracer("test")))
    ok, bad = sorted(exporter.get_finished_spans(), key=lambda s: s.start_time)
    assert ok.name == bad.name == "/svod.profile.v1.ProfileService/GetProfile"
    assert ok.kind == SpanKind.SERVER and ok.attributes["rpc.method"] == "GetProfile"
    assert format(ok.context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    assert ok.parent is not None and format(ok.parent.span_id, "016x") == "b7ad6b7169203331"
    assert ok.attributes["rpc.grpc.status_code"] == 0 and ok.status.status_code != StatusCode.ERROR
    # A call without a trace starts its own; a refused one is marked failed.
    assert bad.parent is None and bad.context.trace_id != ok.context.trace_id
    assert bad.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert bad.status.status_code == StatusCode.ERROR


def test_a_request_that_does_not_parse_is_invalid_argument() -> None:
    """Bytes no protobuf client would send (a string field that is not UTF-8, a corrupt wire
    format) were UNKNOWN; they are refused as the client's error."""
    good = profile_pb2.GetProfileRequest(customer_id="0.01AAAA").SerializeToString()

    async def scenario(channel) -> None:
        raw = channel.unary_unary("/svod.profile.v1.ProfileService/GetProfile")
        for payload, reason in (
            (good.replace(b"AAAA", b"\xff\xfe\xfd\xfc"), "UTF-8"),
            (b"\xff\xff\xff", "corrupt"),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as bad:
                await raw(payload, timeout=5)
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert reason in (bad.value.details() or "")

    asyncio.run(_with_server(scenario, raw=True))
