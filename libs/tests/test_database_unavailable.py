"""Database trouble is UNAVAILABLE (retried by every Svod client), never INTERNAL (#15 item 4).

A real gRPC server with the services' interceptor and a real engine on the suite's Postgres:
the server end of a pooled connection is terminated (what a Postgres restart does to every
connection), and an engine pointed at a port nobody listens on stands for a database that is
down. The full restart (`pg_ctl restart -m immediate` under load) is in
tests/faults/test_crash_recovery.py.
"""

from __future__ import annotations

import asyncio
import json

import grpc
import psycopg
import psycopg.errors
import pytest
import sqlalchemy.exc

from svod.segmentation.v1 import segmentation_pb2, segmentation_pb2_grpc
from svod_cli.suite import free_ports
from svod_runtime.db import create_engine, database_refusal, database_unavailable, libpq_url
from svod_runtime.errors import Unavailable
from svod_runtime.interceptors import CoreInterceptor
from svod_runtime.retries import SERVICE_CONFIG, retry_options


def test_connection_errors_map_to_unavailable_and_others_do_not() -> None:
    refused = psycopg.OperationalError("connection failed: Connection refused")
    shutdown = psycopg.errors.AdminShutdown("terminating connection due to administrator command")
    starting = psycopg.errors.CannotConnectNow("the database system is starting up")
    crashed = psycopg.errors.CrashShutdown("terminating connection because of crash")
    closed = psycopg.InterfaceError("the connection is closed")
    standby = psycopg.errors.ReadOnlySqlTransaction("cannot execute INSERT in a read-only tx")
    wrapped = sqlalchemy.exc.OperationalError("SELECT 1", {}, shutdown)
    pool = sqlalchemy.exc.TimeoutError("QueuePool limit of size 10 overflow 10 reached")
    chained = RuntimeError("while saving")
    chained.__cause__ = wrapped
    for error in (refused, shutdown, starting, crashed, closed, standby, wrapped, pool, chained):
        refusal = database_unavailable(error)
        assert isinstance(refusal, Unavailable), error
        assert refusal.code == "UNAVAILABLE"
    assert isinstance(database_unavailable(ConnectionResetError()), Unavailable)
    # Not the database's trouble: a bug stays INTERNAL, a bad value INVALID_ARGUMENT.
    for error in (
        ValueError("x"),
        psycopg.errors.UniqueViolation("duplicate key"),
        sqlalchemy.exc.IntegrityError("INSERT", {}, psycopg.errors.UniqueViolation("dup")),
    ):
        assert database_refusal(error) is None, error
    overflow = psycopg.errors.NumericValueOutOfRange("numeric field overflow")
    assert database_refusal(overflow).code == "INVALID_ARGUMENT"  # type: ignore[union-attr]


def test_the_retry_policy_retries_only_unavailable() -> None:
    (method,) = SERVICE_CONFIG["methodConfig"]
    assert method["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    options = dict(retry_options())
    assert options["grpc.enable_retries"] == 1
    assert json.loads(options["grpc.service_config"]) == SERVICE_CONFIG


class _Backend(segmentation_pb2_grpc.SegmentationServiceServicer):
    """GetSegment answers the pid of the database backend that served it; the first
    ``failures`` calls of ListSegments answer UNAVAILABLE."""

    def __init__(self, engine, failures: int = 0) -> None:
        self.engine = engine
        self.failures = failures
        self.calls = 0

    async def GetSegment(self, request, context):
        async with self.engine.connect() as conn:
            pid = (await conn.exec_driver_sql("SELECT pg_backend_pid()")).scalar_one()
        return segmentation_pb2.Segment(segment_id=str(pid))

    async def ListSegments(self, request, context):
        self.calls += 1
        if self.calls <= self.failures:
            raise Unavailable("the database cannot be reached now")
        return segmentation_pb2.ListSegmentsResponse()


async def _serve(servicer) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server(interceptors=[CoreInterceptor("test", max_request_s=10)])
    segmentation_pb2_grpc.add_SegmentationServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


async def _terminate(admin_url: str, pid: int) -> None:
    with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    await asyncio.sleep(0.1)


async def _get(stub) -> tuple[grpc.StatusCode, str]:
    try:
        reply = await stub.GetSegment(
            segmentation_pb2.GetSegmentRequest(segment_id="s"), timeout=10
        )
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, reply.segment_id


def test_a_connection_dropped_by_the_server_is_unavailable_then_replaced(
    postgres_admin_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def run() -> None:
        # Pings only after an hour idle: the dropped connection is used and fails.
        monkeypatch.setenv("SVOD_DB_PING_IDLE_S", "3600")
        engine = create_engine(postgres_admin_url, pool_size=1)
        server, port = await _serve(_Backend(engine))
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = segmentation_pb2_grpc.SegmentationServiceStub(channel)
                code, pid = await _get(stub)
                assert code == grpc.StatusCode.OK
                await _terminate(postgres_admin_url, int(pid))
                code, details = await _get(stub)
                assert code == grpc.StatusCode.UNAVAILABLE, (code, details)
                assert "database" in details
                # The pool dropped its dead connections: the next call gets a fresh one.
                code, again = await _get(stub)
                assert code == grpc.StatusCode.OK and again != pid
        finally:
            await server.stop(0)
            await engine.dispose()

    asyncio.run(run())


def test_an_idle_connection_is_pinged_and_replaced_before_use(
    postgres_admin_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def run() -> None:
        monkeypatch.setenv("SVOD_DB_PING_IDLE_S", "0")
        engine = create_engine(postgres_admin_url, pool_size=1)
        server, port = await _serve(_Backend(engine))
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = segmentation_pb2_grpc.SegmentationServiceStub(channel)
                code, pid = await _get(stub)
                assert code == grpc.StatusCode.OK
                await _terminate(postgres_admin_url, int(pid))
                code, again = await _get(stub)
                assert code == grpc.StatusCode.OK, again
                assert again != pid
        finally:
            await server.stop(0)
            await engine.dispose()

    asyncio.run(run())


def test_a_database_that_is_down_is_unavailable_never_internal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def run() -> None:
        (nobody,) = free_ports(1)
        engine = create_engine(f"postgresql+psycopg://svod@127.0.0.1:{nobody}/svod", pool_size=1)
        server, port = await _serve(_Backend(engine))
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                code, details = await _get(segmentation_pb2_grpc.SegmentationServiceStub(channel))
                assert code == grpc.StatusCode.UNAVAILABLE, (code, details)
        finally:
            await server.stop(0)
            await engine.dispose()

    asyncio.run(run())


def test_svod_clients_retry_unavailable_with_backoff() -> None:
    async def run() -> None:
        servicer = _Backend(engine=None, failures=2)
        server, port = await _serve(servicer)
        try:
            async with grpc.aio.insecure_channel(
                f"127.0.0.1:{port}", options=retry_options()
            ) as channel:
                stub = segmentation_pb2_grpc.SegmentationServiceStub(channel)
                await stub.ListSegments(segmentation_pb2.ListSegmentsRequest(), timeout=20)
            assert servicer.calls == 3  # two UNAVAILABLE answers retried by gRPC itself
            servicer.calls, servicer.failures = 0, 10
            async with grpc.aio.insecure_channel(
                f"127.0.0.1:{port}", options=retry_options()
            ) as channel:
                stub = segmentation_pb2_grpc.SegmentationServiceStub(channel)
                with pytest.raises(grpc.aio.AioRpcError) as gave_up:
                    await stub.ListSegments(segmentation_pb2.ListSegmentsRequest(), timeout=20)
            assert gave_up.value.code() == grpc.StatusCode.UNAVAILABLE
            assert servicer.calls == 5  # gRPC's ceiling of attempts
        finally:
            await server.stop(0)

    asyncio.run(run())
