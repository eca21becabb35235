"""The outbox relay never drops a message: a peer that is down means retries, not loss."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import text

from svod.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from svod_cli.suite import (
    InProcessSuite,
    create_database,
    drop_database,
    free_ports,
    prepare_database,
)
from svod_runtime.config import SERVICES
from svod_runtime.db import create_engine
from svod_runtime.outbox import (
    OUTBOX_DDL,
    DeliveryError,
    OutboxMessage,
    OutboxRelay,
    OutboxStore,
    enqueue,
)
from tests.builders import identify, random_phone
from tests.waiting import wait_until

PENDING = ingestion_pb2.RecordStatus.STATE_PENDING
DELIVERED = ingestion_pb2.RecordStatus.STATE_DELIVERED


@pytest.fixture
def private_database(postgres_admin_url):
    name = f"svod_relay_{time.monotonic_ns()}"
    url = create_database(postgres_admin_url, name)
    try:
        prepare_database(url)
        yield url
    finally:
        drop_database(postgres_admin_url, name)


def _status(stub, ref) -> ingestion_pb2.RecordStatus:
    return stub.GetRecordStatus(ingestion_pb2.GetRecordStatusRequest(record_ref=ref), timeout=5)


def test_message_waits_for_identity_and_is_delivered_when_it_comes_up(private_database) -> None:
    ports = dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True))
    front = InProcessSuite(private_database, ports=ports, services=["ingestion"]).start()
    back = None
    try:
        with grpc.insecure_channel(front.target("ingestion")) as channel:
            stub = ingestion_pb2_grpc.IngestionServiceStub(channel)
            request = identify("webshop", phones=(random_phone(),))
            stub.Identify(request, timeout=5)

            status = wait_until(
                lambda: _status(stub, request.record_ref),
                10,
                "two delivery attempts",
                0.1,
                until=lambda s: s.attempts >= 2,
            )
            assert status.state == PENDING
            assert "UNAVAILABLE" in status.last_error

            # Quality too: an identify accepted while it was unreachable is checked before
            # it is delivered.
            back = InProcessSuite(
                private_database, ports=ports, services=["identity", "profile", "quality"]
            ).start()
            status = wait_until(
                lambda: _status(stub, request.record_ref),
                20,
                "the record processed",
                0.1,
                until=lambda s: s.state != PENDING,
            )
            assert status.state == DELIVERED
            assert status.customer_id
            assert status.attempts >= 3
            assert status.last_error == ""
    finally:
        front.stop()
        if back is not None:
            back.stop()


def test_batch_topic_is_one_call_and_each_message_keeps_its_trace_and_answer(
    private_database,
) -> None:
    """A batch handler gets a pass's messages in outbox order, each with a carrier of its own
    trace; a refused one becomes a dead letter, a failed one is retried, the rest are gone."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    calls: list[list[OutboxMessage]] = []
    singles: list[str] = []
    dead: list[str] = []

    async def batch(messages: list[OutboxMessage]) -> list[DeliveryError | None]:
        calls.append(messages)
        return [None, DeliveryError("INVALID_ARGUMENT", "bad"), DeliveryError("UNAVAILABLE", "x")]

    async def single(message: OutboxMessage) -> None:
        singles.append(message.key)

    async def on_dead(message: OutboxMessage, error: str) -> None:
        dead.append(message.key)

    async def scenario() -> tuple[list[int], list[tuple]]:
        engine = create_engine(private_database)
        try:
            async with engine.begin() as conn:  # in the scratch database's public schema
                await conn.exec_driver_sql(OUTBOX_DDL)
            trace_ids = []
            for key in ("a", "b", "c"):
                with tracer.start_as_current_span(f"write {key}") as span:
                    trace_ids.append(span.get_span_context().trace_id)
                    async with engine.begin() as conn:
                        await enqueue(conn, "batched", key, key.encode())
            async with engine.begin() as conn:
                await enqueue(conn, "single", "s")
            relay = OutboxRelay(
                OutboxStore(engine),
                {"single": single},
                tracer,
                batch_handlers={"batched": batch},
                on_failure={"batched": on_dead},
            )
            assert await relay.run_once() == 4
            async with engine.connect() as conn:
                rows = (
                    await conn.execute(
                        text(
                            "SELECT key, attempts, failed_at IS NOT NULL, "
                            "next_attempt_at > now() FROM outbox ORDER BY key"
                        )
                    )
                ).all()
            return trace_ids, [tuple(r) for r in rows]
        finally:
            await engine.dispose()

    trace_ids, rows = asyncio.run(scenario())

    assert len(calls) == 1
    assert [m.key for m in calls[0]] == ["a", "b", "c"]
    assert [m.payload for m in calls[0]] == [b"a", b"b", b"c"]
    for message, trace_id in zip(calls[0], trace_ids, strict=True):
        # W3C traceparent: version-traceid-spanid-flags; the delivery span is in the writer's trace.
        assert message.trace_carrier["traceparent"].split("-")[1] == format(trace_id, "032x")
    assert singles == ["s"]
    assert dead == ["b"]
    # a and s delivered (gone); b is a dead letter; c waits for a retry.
    assert rows == [("b", 1, True, False), ("c", 1, False, True)]
    deliveries = [s for s in exporter.get_finished_spans() if s.name == "outbox deliver batched"]
    assert sorted(s.context.trace_id for s in deliveries) == sorted(trace_ids)
