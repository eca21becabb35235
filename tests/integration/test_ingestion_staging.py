"""Ingestion's staging table for streamed chunks (adapters/storage.py): made when a pooled
connection opens, so a chunk skips the CREATE round trip; a connection that lacks it (opened
before, or after a failed creation) still stores its chunks, and a replaced connection gets
its own. Real Postgres, real COPY."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable

import pytest
from sqlalchemy import text

from svod_ingestion.adapters import storage
from svod_ingestion.adapters.storage import IngestionStore
from svod_ingestion.domain.model import Accepted, Incoming, MessageKind
from svod_ingestion.service_layer.use_cases import IngestionService
from svod_runtime.db import create_engine
from svod_runtime.errors import AlreadyExists


@pytest.fixture
def ingestion_url(scratch_databases: Callable[[str], dict[str, str]]) -> str:
    return scratch_databases("staging")["ingestion"]


def _messages(prefix: str, count: int) -> list[Incoming]:
    return [
        Incoming(MessageKind.TRACK, "shop", f"{prefix}-{n}", "web", b"p%d" % n, b"p%d" % n)
        for n in range(count)
    ]


def _service(store: IngestionStore) -> IngestionService:
    return IngestionService(store, lambda lane: None, None, identifiers_of=None)


async def _has_table(store: IngestionStore) -> tuple[bool, bool]:
    """(the flag in the pooled connection's info, the table in its session)."""
    async with store.engine.connect() as conn:
        found = (
            await conn.execute(text("SELECT to_regclass('pg_temp.incoming_records') IS NOT NULL"))
        ).scalar()
        return bool(conn.info.get(storage._STAGING_READY)), bool(found)


def test_a_new_connection_has_the_staging_table_and_chunks_store_through_it(
    ingestion_url: str,
) -> None:
    async def scenario() -> None:
        engine = create_engine(ingestion_url, pool_size=1)
        store = IngestionStore(engine)
        service = _service(store)
        try:
            assert await _has_table(store) == (True, True)
            chunk = _messages("a", storage.COPY_FROM_ROWS * 2)
            outcomes = await service.accept_many(chunk)
            assert all(isinstance(o, Accepted) and not o.duplicate for o in outcomes)
            # Again, with one payload changed: duplicates, and the reused id refused.
            changed = Incoming(MessageKind.TRACK, "shop", "a-3", "web", b"other", b"other")
            again = await service.accept_many([*chunk[:3], changed, *chunk[4:]])
            assert isinstance(again[3], AlreadyExists)
            assert all(
                isinstance(o, Accepted) and o.duplicate for i, o in enumerate(again) if i != 3
            )
            async with engine.connect() as conn:
                counts = (
                    await conn.execute(
                        text(
                            "SELECT (SELECT count(*) FROM records), (SELECT count(*) FROM outbox), "
                            "(SELECT count(*) FROM records WHERE payload_hash = :h)"
                        ),
                        {"h": hashlib.sha256(b"p3").digest()},
                    )
                ).one()
            assert tuple(counts) == (len(chunk), len(chunk), 1)
        finally:
            await engine.dispose()

    asyncio.run(scenario())


def test_a_connection_without_the_table_creates_it_in_its_first_chunk(
    ingestion_url: str,
) -> None:
    async def scenario() -> None:
        engine = create_engine(ingestion_url, pool_size=1)
        try:
            # Opened (and pooled) before the store registered its hook: no table, no flag.
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            store = IngestionStore(engine)
            assert await _has_table(store) == (False, False)
            outcomes = await _service(store).accept_many(_messages("b", storage.COPY_FROM_ROWS))
            assert all(isinstance(o, Accepted) and not o.duplicate for o in outcomes)
            assert await _has_table(store) == (False, True)
            # A replaced connection (the old one invalidated) gets its table when it opens.
            async with engine.connect() as conn:
                await conn.invalidate()
            assert await _has_table(store) == (True, True)
            outcomes = await _service(store).accept_many(_messages("c", storage.COPY_FROM_ROWS))
            assert all(isinstance(o, Accepted) and not o.duplicate for o in outcomes)
        finally:
            await engine.dispose()

    asyncio.run(scenario())


def test_a_counted_chunk_answers_as_a_chunk_with_receipts(ingestion_url: str) -> None:
    # A stream's chunk (accept_counted) reads back only which rows were new: its outcomes are
    # accept_many's without the receipts, through COPY and through the arrays alike.
    async def scenario() -> None:
        engine = create_engine(ingestion_url, pool_size=1)
        store = IngestionStore(engine)
        service = _service(store)
        try:
            for size in (storage.COPY_FROM_ROWS * 2, 4):
                prefix = f"d{size}"
                chunk = _messages(prefix, size)
                await service.accept_many(chunk[:2])  # stored before
                taken = Incoming(MessageKind.TRACK, "shop", f"{prefix}-1", "web", b"x", b"x")
                reused = Incoming(MessageKind.TRACK, "shop", f"{prefix}-2", "web", b"y", b"y")
                sent = [*chunk, taken, chunk[2], reused]
                counted = await service.accept_counted(sent)
                assert counted[:2] == [False, False]  # retries of messages stored before
                assert counted[2:size] == [True] * (size - 2)
                assert isinstance(counted[size], AlreadyExists)  # an earlier id, other payload
                assert counted[size + 1] is False  # a repeat inside the chunk: a retry
                assert isinstance(counted[size + 2], AlreadyExists)  # a repeat, other payload
                # The same messages through accept_many: the same answers.
                again = await service.accept_many(sent)
                assert [o.duplicate if isinstance(o, Accepted) else None for o in again] == [
                    *[True] * size,
                    None,
                    True,
                    None,
                ]
            async with engine.connect() as conn:
                counts = (
                    await conn.execute(
                        text("SELECT (SELECT count(*) FROM records), (SELECT count(*) FROM outbox)")
                    )
                ).one()
            assert tuple(counts) == (storage.COPY_FROM_ROWS * 2 + 4, storage.COPY_FROM_ROWS * 2 + 4)
        finally:
            await engine.dispose()

    asyncio.run(scenario())
