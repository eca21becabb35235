"""What every service offers: health reflecting the database, and server reflection."""

from __future__ import annotations

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from svod_runtime.config import SERVICES

FULL_NAMES = {
    "ingestion": "svod.ingestion.v1.IngestionService",
    "identity": "svod.identity.v1.IdentityService",
    "profile": "svod.profile.v1.ProfileService",
    "segmentation": "svod.segmentation.v1.SegmentationService",
    "quality": "svod.quality.v1.QualityService",
}


@pytest.mark.parametrize("service", SERVICES)
def test_health_reports_serving_for_server_and_service(suite, service) -> None:
    stub = health_pb2_grpc.HealthStub(suite.channels[service])
    for name in ("", FULL_NAMES[service]):
        reply = stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("service", SERVICES)
def test_reflection_lists_the_service(suite, service) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(suite.channels[service])
    replies = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
    )
    names = {s.name for reply in replies for s in reply.list_services_response.service}
    assert FULL_NAMES[service] in names
    assert "grpc.health.v1.Health" in names


def test_array_literals_reach_postgres_unchanged(postgres_admin_url) -> None:
    import psycopg

    from svod_runtime.db import array_literal, libpq_url

    values = ["plain", 'with "quotes"', "back\\slash", "comma, brace {}", "", "NULL", "ё ü"]
    with psycopg.connect(libpq_url(postgres_admin_url)) as conn:
        row = conn.execute("SELECT CAST(%s AS text[])", (array_literal(values),)).fetchone()
        assert row is not None and row[0] == values
        ids = ["6f1c1f9c-1111-4111-8111-111111111111", "00000000-0000-4000-8000-000000000000"]
        row = conn.execute("SELECT CAST(%s AS uuid[])::text[]", (array_literal(ids),)).fetchone()
        assert row is not None and row[0] == ids


def test_direct_statements_keep_casts_and_percent_signs_and_are_traced_inside_a_trace(
    postgres_admin_url,
) -> None:
    import asyncio

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from svod_runtime.db import (
        create_engine,
        direct_statement,
        fetch_direct,
        trace_direct_statements,
    )

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    statement = direct_statement(
        "SELECT CAST(:n AS int) + 1 AS next, '10:30'::text AS at, "
        "'50%' LIKE '%\\%' AS percent, CAST(:tags AS text[]) AS tags"
    )

    async def run() -> tuple[list, list]:
        engine = create_engine(postgres_admin_url)
        trace_direct_statements(engine, tracer)
        try:
            async with engine.begin() as conn:
                outside = await fetch_direct(conn, statement, {"n": 41, "tags": ["a", "b"]})
                with tracer.start_as_current_span("request"):
                    inside = await fetch_direct(conn, statement, {"n": 1, "tags": []})
        finally:
            await engine.dispose()
        return outside, inside

    outside, inside = asyncio.run(run())
    assert outside[0].next == 42 and outside[0].at == "10:30" and outside[0].percent
    assert outside[0].tags == ["a", "b"] and inside[0].tags == []
    spans = exporter.get_finished_spans()
    # One database span, for the statement run inside the request's trace; none outside one.
    db_spans = [s for s in spans if s.attributes.get("db.system") == "postgresql"]
    assert [s.name for s in db_spans] == ["SELECT"]
    request = next(s for s in spans if s.name == "request")
    assert db_spans[0].parent.span_id == request.context.span_id


def test_pipelined_statements_run_in_order_each_seeing_what_committed_before_it(
    postgres_admin_url,
) -> None:
    """The property identity's resolve relies on: a lock and the read it guards, sent in one
    round trip, still read what the lock's previous holder committed while they waited."""
    import asyncio
    import threading
    import time
    import uuid

    import psycopg

    from svod_runtime.db import create_engine, fetch_direct_pipelined, libpq_url

    table = f"pipeline_{uuid.uuid4().hex[:8]}"
    lock = 424242
    admin = psycopg.connect(libpq_url(postgres_admin_url), autocommit=True)
    admin.execute(f"CREATE TABLE {table} (n int)")
    holder = psycopg.connect(libpq_url(postgres_admin_url))
    holder.execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
    holder.execute(f"INSERT INTO {table} VALUES (1)")

    def commit_later() -> None:
        time.sleep(0.5)
        holder.commit()  # releases the lock with the row committed

    async def run() -> list[list]:
        engine = create_engine(postgres_admin_url)
        try:
            async with engine.begin() as conn:
                return await fetch_direct_pipelined(
                    conn,
                    [
                        ("SELECT pg_advisory_xact_lock(%(k)s) AS locked", {"k": lock}),
                        (f"SELECT count(*) AS n FROM {table}", None),
                        (f"INSERT INTO {table} VALUES (2)", None),
                    ],
                )
        finally:
            await engine.dispose()

    try:
        committer = threading.Thread(target=commit_later)
        committer.start()
        started = time.perf_counter()
        locked, counted, inserted = asyncio.run(run())
        waited = time.perf_counter() - started
        committer.join()
        assert len(locked) == 1  # each statement's rows come back, in order
        assert waited >= 0.4  # the lock was waited for ...
        assert counted[0].n == 1  # ... and the read after it saw the holder's row
        assert inserted == []  # a statement returning no rows gives an empty list
        rows = admin.execute(f"SELECT n FROM {table} ORDER BY n").fetchall()
        assert rows == [(1,), (2,)]  # the pipelined transaction committed
    finally:
        holder.close()
        admin.execute(f"DROP TABLE {table}")
        admin.close()
