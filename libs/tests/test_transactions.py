"""The shared transaction runner: a transaction that loses a real deadlock on PostgreSQL is run
again and commits; other errors are not retried; attempts are bounded; every unary RPC of a
service runs this way (the runtime's interceptor), so two calls that deadlock are both answered."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import psycopg.errors
import pytest
import sqlalchemy.exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from svod.segmentation.v1 import segmentation_pb2, segmentation_pb2_grpc
from svod_runtime.db import create_engine
from svod_runtime.interceptors import CoreInterceptor
from svod_runtime.transactions import is_retryable, run_in_transaction


def test_deadlocks_and_serialisation_failures_are_retryable_and_nothing_else() -> None:
    deadlock = psycopg.errors.DeadlockDetected("deadlock detected")
    conflict = psycopg.errors.SerializationFailure("could not serialize access")
    wrapped = sqlalchemy.exc.DBAPIError("UPDATE", {}, deadlock)
    assert all(is_retryable(e) for e in (deadlock, conflict, wrapped))
    unique = psycopg.errors.UniqueViolation("duplicate key")
    for error in (unique, sqlalchemy.exc.IntegrityError("INSERT", {}, unique), ValueError()):
        assert not is_retryable(error)


def test_a_transaction_that_loses_a_deadlock_runs_again_and_both_commit(
    postgres_admin_url: str,
) -> None:
    table = f"deadlock_{uuid.uuid4().hex[:8]}"

    async def scenario() -> tuple[list[int], list[tuple[int, int]]]:
        engine = create_engine(postgres_admin_url, pool_size=4)
        runs: list[int] = []
        both_locked_first = asyncio.Barrier(2)
        try:
            async with engine.begin() as conn:
                await conn.execute(text(f"CREATE TABLE {table} (id int PRIMARY KEY, n int)"))
                await conn.execute(text(f"INSERT INTO {table} VALUES (1, 0), (2, 0)"))

            def transfer(first: int, second: int):  # type: ignore[no-untyped-def]
                async def work(conn: AsyncConnection) -> None:
                    runs.append(first)
                    await conn.execute(
                        text(f"UPDATE {table} SET n = n + 1 WHERE id = :i"), {"i": first}
                    )
                    if runs.count(first) == 1:  # the first attempt: meet the other one
                        await both_locked_first.wait()
                    await conn.execute(
                        text(f"UPDATE {table} SET n = n + 1 WHERE id = :i"), {"i": second}
                    )

                return work

            await asyncio.wait_for(
                asyncio.gather(
                    run_in_transaction(engine.begin, transfer(1, 2)),
                    run_in_transaction(engine.begin, transfer(2, 1)),
                ),
                timeout=30,
            )
            async with engine.connect() as conn:
                rows = (await conn.execute(text(f"SELECT id, n FROM {table} ORDER BY id"))).all()
        finally:
            async with engine.begin() as conn:
                await conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
            await engine.dispose()
        return runs, [tuple(r) for r in rows]

    runs, rows = asyncio.run(scenario())
    # Each transfer added 1 to both rows exactly once; one of them ran twice (it lost).
    assert rows == [(1, 2), (2, 2)]
    assert sorted(runs) in ([1, 1, 2], [1, 2, 2])


def test_other_errors_are_raised_at_once_and_attempts_are_bounded() -> None:
    calls: list[str] = []

    class Begin:
        async def __aenter__(self) -> str:
            return "tx"

        async def __aexit__(self, *exc: object) -> None:
            return None

    async def broken(tx: str) -> None:
        calls.append(tx)
        raise psycopg.errors.UniqueViolation("duplicate key")

    async def always_deadlocked(tx: str) -> None:
        calls.append(tx)
        raise psycopg.errors.DeadlockDetected("deadlock detected")

    with pytest.raises(psycopg.errors.UniqueViolation):
        asyncio.run(run_in_transaction(Begin, broken))
    assert len(calls) == 1
    with pytest.raises(psycopg.errors.DeadlockDetected):
        asyncio.run(run_in_transaction(Begin, always_deadlocked, attempts=3, pause_s=0))
    assert len(calls) == 4


class _Transfers(segmentation_pb2_grpc.SegmentationServiceServicer):
    """GetSegment "a>b" adds 1 to row a, then to row b, in one transaction (no retry of its
    own): two calls in opposite directions meet after their first update and deadlock."""

    def __init__(self, engine: AsyncEngine, table: str) -> None:
        self.engine, self.table = engine, table
        self.runs: list[str] = []
        self.meet = asyncio.Barrier(2)

    async def GetSegment(self, request, context):  # type: ignore[no-untyped-def]
        first, second = request.segment_id.split(">")
        self.runs.append(request.segment_id)
        async with self.engine.begin() as conn:
            update = text(f"UPDATE {self.table} SET n = n + 1 WHERE id = :i")
            await conn.execute(update, {"i": int(first)})
            if self.runs.count(request.segment_id) == 1:
                await self.meet.wait()
            await conn.execute(update, {"i": int(second)})
        return segmentation_pb2.Segment(segment_id=request.segment_id)


def test_two_unary_calls_that_deadlock_are_both_answered(postgres_admin_url: str) -> None:
    table = f"rpc_deadlock_{uuid.uuid4().hex[:8]}"

    async def scenario() -> tuple[list[str], list[tuple[int, int]]]:
        engine = create_engine(postgres_admin_url, pool_size=4)
        async with engine.begin() as conn:
            await conn.execute(text(f"CREATE TABLE {table} (id int PRIMARY KEY, n int)"))
            await conn.execute(text(f"INSERT INTO {table} VALUES (1, 0), (2, 0)"))
        servicer = _Transfers(engine, table)
        server = grpc.aio.server(interceptors=[CoreInterceptor("test", max_request_s=30)])
        segmentation_pb2_grpc.add_SegmentationServiceServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = segmentation_pb2_grpc.SegmentationServiceStub(channel)
                replies = await asyncio.gather(
                    stub.GetSegment(segmentation_pb2.GetSegmentRequest(segment_id="1>2")),
                    stub.GetSegment(segmentation_pb2.GetSegmentRequest(segment_id="2>1")),
                )
            assert sorted(r.segment_id for r in replies) == ["1>2", "2>1"]
            async with engine.connect() as conn:
                rows = (await conn.execute(text(f"SELECT id, n FROM {table} ORDER BY id"))).all()
        finally:
            await server.stop(0)
            async with engine.begin() as conn:
                await conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
            await engine.dispose()
        return servicer.runs, [tuple(r) for r in rows]

    runs, rows = asyncio.run(scenario())
    # Each call's transfer counted once; the loser's handler ran a second time.
    assert rows == [(1, 2), (2, 2)]
    assert len(runs) == 3
