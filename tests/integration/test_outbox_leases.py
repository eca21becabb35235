"""Poison messages fail alone, leases hold and are fenced, dead letters come back on redrive,
lanes are served apart.

Each test runs a relay (or two) on a scratch database holding only an outbox table, on the
real Postgres of the test session.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from svod_cli.suite import create_database, drop_database
from svod_runtime.db import create_engine
from svod_runtime.outbox import (
    OUTBOX_DDL,
    DeadLetterStore,
    DeliveryError,
    OutboxLane,
    OutboxMessage,
    OutboxRelay,
    OutboxStore,
    enqueue,
    enqueue_many,
)
from tests.waiting import wait_until_async

TRACER = TracerProvider().get_tracer("test")


@pytest.fixture
def scratch_url(postgres_admin_url: str) -> Iterator[str]:
    name = f"svod_leases_{time.monotonic_ns()}"
    url = create_database(postgres_admin_url, name)
    try:
        yield url
    finally:
        drop_database(postgres_admin_url, name)


async def _engine(url: str) -> AsyncEngine:
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.exec_driver_sql(OUTBOX_DDL)
    return engine


async def _add(engine: AsyncEngine, topic: str, keys: list[str]) -> None:
    async with engine.begin() as conn:
        for key in keys:
            await enqueue(conn, topic, key, key.encode())


async def _rows(engine: AsyncEngine) -> list[tuple]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT key, attempts, failed_attempts, failed_at IS NOT NULL AS dead, "
                "coalesce(last_error, '') FROM outbox ORDER BY outbox_pk"
            )
        )
        return [tuple(r) for r in rows]


def _claims(messages: list[OutboxMessage]) -> dict[uuid.UUID, list[int]]:
    """The claims holding these messages, as the relay keeps them (token: rows)."""
    claims: dict[uuid.UUID, list[int]] = {}
    for m in messages:
        assert m.lease_token is not None
        claims.setdefault(m.lease_token, []).append(m.outbox_pk)
    return claims


async def _due_now(engine: AsyncEngine) -> None:
    """Skips the backoff, as if its time had come."""
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE outbox SET next_attempt_at = now()"))


def test_counted_failures_end_as_a_dead_letter_and_outages_do_not_count(scratch_url) -> None:
    dead: list[tuple[str, str]] = []

    async def broken(message: OutboxMessage) -> None:
        if message.key == "bug":
            raise ValueError(f"payload {message.payload!r} broke it")  # text must not be kept
        raise DeliveryError("UNAVAILABLE", "peer down")

    async def on_dead(message: OutboxMessage, error: str) -> None:
        dead.append((message.key, error))

    async def scenario() -> list[tuple]:
        engine = await _engine(scratch_url)
        try:
            await _add(engine, "t", ["bug", "outage"])
            relay = OutboxRelay(
                OutboxStore(engine),
                {"t": broken},
                TRACER,
                on_failure={"t": on_dead},
                max_attempts=3,
            )
            for _ in range(5):
                await relay.run_once()
                await _due_now(engine)
            return await _rows(engine)
        finally:
            await engine.dispose()

    rows = asyncio.run(scenario())
    bug, outage = rows
    assert bug[:4] == ("bug", 3, 3, True)
    assert bug[4] == "INTERNAL: delivery failed (ValueError) (gave up after 3 attempts)"
    assert "payload" not in bug[4]
    # An outage is retried for as long as it lasts, never counted.
    assert outage == ("outage", 5, 0, False, "UNAVAILABLE: peer down")
    assert dead == [("bug", bug[4])]


def _poison_batch(calls: list[list[str]], delivered: list[str], status: str):  # type: ignore[no-untyped-def]
    async def batch(messages: list[OutboxMessage]) -> list[DeliveryError | None]:
        keys = [m.key for m in messages]
        calls.append(keys)
        if "poison" in keys:
            # The receiver refuses the whole call (e.g. a numeric overflow in one row).
            raise DeliveryError(status, "internal error")
        delivered.extend(keys)
        return [None] * len(messages)

    return batch


@pytest.mark.parametrize("status", ["INVALID_ARGUMENT", "INTERNAL"])
def test_a_batch_failing_as_a_whole_is_split_until_the_poison_message_fails_alone(
    scratch_url, status: str
) -> None:
    keys = [f"m{i:02d}" for i in range(16)]
    keys[11] = "poison"
    calls: list[list[str]] = []
    delivered: list[str] = []

    async def scenario() -> list[tuple]:
        engine = await _engine(scratch_url)
        try:
            await _add(engine, "b", keys)
            relay = OutboxRelay(
                OutboxStore(engine),
                {},
                TRACER,
                batch_handlers={"b": _poison_batch(calls, delivered, status)},
                max_attempts=1 if status == "INTERNAL" else 20,
            )
            assert await relay.run_once() == 16
            return await _rows(engine)
        finally:
            await engine.dispose()

    rows = asyncio.run(scenario())
    # N-1 delivered, each exactly once and in outbox order; the poison one is a dead letter.
    assert delivered == [k for k in keys if k != "poison"]
    assert rows == [("poison", 1, 1, True, rows[0][4])]
    assert rows[0][4].startswith(f"{status}: internal error")
    # Bisection: one call per level on each side of the poison message (16 -> 8 -> 4 -> 2 -> 1).
    assert calls[0] == keys
    assert len(calls) == 1 + 2 * 4


def test_an_outage_of_the_whole_batch_is_retried_without_splitting(scratch_url) -> None:
    calls: list[int] = []

    async def down(messages: list[OutboxMessage]) -> list[DeliveryError | None]:
        calls.append(len(messages))
        raise DeliveryError("UNAVAILABLE", "connection refused")

    async def scenario() -> list[tuple]:
        engine = await _engine(scratch_url)
        try:
            await _add(engine, "b", [f"k{i}" for i in range(8)])
            relay = OutboxRelay(OutboxStore(engine), {}, TRACER, batch_handlers={"b": down})
            await relay.run_once()
            return await _rows(engine)
        finally:
            await engine.dispose()

    rows = asyncio.run(scenario())
    assert calls == [8]
    assert all(r[1:4] == (1, 0, False) for r in rows)


def test_a_relay_that_lost_its_lease_completes_nothing(scratch_url) -> None:
    async def scenario() -> None:
        engine = await _engine(scratch_url)
        try:
            await _add(engine, "t", ["a", "b"])
            store = OutboxStore(engine)
            held_by_a = await store.claim_due(10, lease_s=0.3)
            assert len(held_by_a) == 2
            assert await store.claim_due(10, lease_s=0.3) == []  # A holds them
            await asyncio.sleep(0.6)  # A stalls past its lease; B claims
            held_by_b = await store.claim_due(10, lease_s=30)
            assert [m.key for m in held_by_b] == ["a", "b"]
            assert {m.lease_token for m in held_by_a}.isdisjoint({m.lease_token for m in held_by_b})
            # A wakes up: none of its completions applies.
            assert await store.delivered(held_by_a) == []
            assert not await store.retry_later(held_by_a[0], "UNAVAILABLE: x", 1)
            assert not await store.give_up(held_by_a[1], "INTERNAL: x")
            assert not await store.release(held_by_a[0])
            # Its heartbeat and its graceful stop find the rows by key, but B's token is on
            # them now: a lease cut to nothing or handed back would let C claim them.
            assert await store.renew(_claims(held_by_a), 0) == 0
            assert await store.release_claims(_claims(held_by_a)) == 0
            assert await store.claim_due(10, lease_s=30) == []
            rows = await _rows(engine)
            assert rows == [("a", 0, 0, False, ""), ("b", 0, 0, False, "")]
            # B's delivery removes them.
            assert len(await store.delivered(held_by_b)) == 2
            assert await _rows(engine) == []
        finally:
            await engine.dispose()

    asyncio.run(scenario())


def test_the_heartbeat_keeps_a_slow_delivery_from_being_claimed_again(scratch_url) -> None:
    deliveries: list[str] = []

    async def slow(message: OutboxMessage) -> None:
        await asyncio.sleep(2.5)  # five leases long
        deliveries.append(message.key)

    async def scenario() -> list[tuple]:
        engine = await _engine(scratch_url)
        try:
            await _add(engine, "t", ["slow"])
            relay = OutboxRelay(OutboxStore(engine), {"t": slow}, TRACER, lease_s=0.5)
            task = asyncio.create_task(relay.run())
            other = OutboxStore(engine)
            stolen: list[OutboxMessage] = []

            async def delivered() -> bool:
                # Another relay tries to claim the message all along the slow delivery.
                stolen.extend(await other.claim_due(10, lease_s=30))
                # Done once delivered and its row deleted (stopping the relay between the two
                # would hand the row back instead).
                return bool(deliveries) and not await _rows(engine)

            await asyncio.sleep(0.1)  # the relay claims it first
            await wait_until_async(delivered, 10, "the slow delivery", 0.1)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            assert stolen == []
            return await _rows(engine)
        finally:
            await engine.dispose()

    rows = asyncio.run(scenario())
    assert deliveries == ["slow"]
    assert rows == []


def test_a_graceful_stop_hands_the_leases_back_at_once(scratch_url) -> None:
    async def scenario() -> None:
        engine = await _engine(scratch_url)
        try:
            await _add(engine, "b", ["x", "y"])
            entered = asyncio.Event()

            async def stuck(messages: list[OutboxMessage]) -> list[DeliveryError | None]:
                entered.set()
                await asyncio.sleep(3600)
                return [None] * len(messages)

            relay = OutboxRelay(
                OutboxStore(engine), {}, TRACER, batch_handlers={"b": stuck}, lease_s=60
            )
            task = asyncio.create_task(relay.run())
            await asyncio.wait_for(entered.wait(), 10)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            # Another relay gets them now, not after the 60 s lease.
            again = await OutboxStore(engine).claim_due(10, lease_s=10)
            assert [m.key for m in again] == ["x", "y"]
        finally:
            await engine.dispose()

    asyncio.run(scenario())


def test_dead_letters_are_listed_shown_and_redriven(scratch_url) -> None:
    redriven_keys: list[str] = []

    async def refuse(message: OutboxMessage) -> None:
        raise DeliveryError("INVALID_ARGUMENT", "refused")

    async def on_redrive(conn, messages) -> None:  # type: ignore[no-untyped-def]
        redriven_keys.extend(m.key for m in messages)

    async def scenario() -> None:
        engine = await _engine(scratch_url)
        try:
            await _add(engine, "a", ["a1", "a2", "a3"])
            await _add(engine, "b", ["b1"])
            relay = OutboxRelay(OutboxStore(engine), {"a": refuse, "b": refuse}, TRACER)
            await relay.run_once()
            dead = DeadLetterStore(engine, on_redrive)
            page, total = await dead.list(None, 0, 2)
            assert total == 4
            assert [d.key for d in page] == ["a1", "a2"]
            page2, _ = await dead.list(None, page[-1].dead_letter_id, 2)
            assert [d.key for d in page2] == ["a3", "b1"]
            only_b, total_b = await dead.list("b", 0, 10)
            assert ([d.key for d in only_b], total_b) == (["b1"], 1)
            one = await dead.get(page[0].dead_letter_id)
            assert one is not None
            assert (one.topic, one.key, one.attempts) == ("a", "a1", 1)
            assert one.last_error == "INVALID_ARGUMENT: refused"
            assert await dead.get(10**12) is None
            # Named ids: all or nothing.
            done, missing = await dead.redrive([page[0].dead_letter_id, 10**12], None)
            assert (done, missing) == ([], [10**12])
            done, missing = await dead.redrive([page[0].dead_letter_id], None)
            assert [d.key for d in done] == ["a1"]
            # All of a topic.
            done, _ = await dead.redrive(None, "b")
            assert [d.key for d in done] == ["b1"]
            assert redriven_keys == ["a1", "b1"]
            rows = await _rows(engine)
            assert [r for r in rows if not r[3]] == [
                ("a1", 0, 0, False, ""),
                ("b1", 0, 0, False, ""),
            ]
            # Sent again: the relay takes them like new ones.
            claimed = await OutboxStore(engine).claim_due(10, 10)
            assert sorted(m.key for m in claimed) == ["a1", "b1"]
        finally:
            await engine.dispose()

    asyncio.run(scenario())


def test_a_relay_of_one_lane_takes_its_rows_past_the_other_lanes_backlog(scratch_url) -> None:
    # Issue #20: a single call accepted behind a bulk import's backlog is claimed at once by
    # the interactive lane's relay, while the bulk relay takes only bulk rows, oldest first.
    async def scenario() -> None:
        engine = await _engine(scratch_url)
        try:
            async with engine.begin() as conn:
                backlog = [(f"bulk-{i}", b"", {}) for i in range(500)]
                await enqueue_many(conn, "t", backlog, OutboxLane.BULK)
                await enqueue(conn, "t", "single")  # interactive by default
            store = OutboxStore(engine)

            interactive = await store.claim_due(10, 10, OutboxLane.INTERACTIVE)
            assert [m.key for m in interactive] == ["single"]
            bulk = await store.claim_due(10, 10, OutboxLane.BULK)
            assert [m.key for m in bulk] == [f"bulk-{i}" for i in range(10)]
            # A relay serving every lane (a service with one relay) still sees all rows.
            rest = await store.claim_due(1000, 10)
            assert len(rest) == 490 and "single" not in {m.key for m in rest}

            delivered: list[str] = []

            async def deliver(message: OutboxMessage) -> None:
                delivered.append(message.key)

            await store.release_claims(_claims([*bulk, *rest]))
            relay = OutboxRelay(store, {"t": deliver}, TRACER, lane=OutboxLane.BULK)
            while await relay.run_once():
                pass
            assert sorted(delivered) == sorted(k for k, _, _ in backlog)
            assert [r[0] for r in await _rows(engine)] == ["single"]  # left to its own lane
        finally:
            await engine.dispose()

    asyncio.run(scenario())


async def _updates(url: str) -> tuple[int, int]:
    """The outbox's row updates so far, and how many of them were heap-only (HOT)."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
                        "WHERE relname = 'outbox'"
                    )
                )
            ).one()
        return int(row.n_tup_upd), int(row.n_tup_hot_upd)
    finally:
        await engine.dispose()


def test_claims_of_a_backlog_are_heap_only_updates_and_keep_to_their_rows(scratch_url) -> None:
    """No index names a column a claim changes, and the pages leave room for each row's new
    version: a claim writes no index entry (issue #20). Renewals and releases go by key and
    token: another relay's rows stay its own throughout a big backlog."""

    async def scenario() -> tuple[int, int]:
        engine = await _engine(scratch_url)
        try:
            async with engine.begin() as conn:
                carrier = {"traceparent": f"00-{'a' * 32}-{'b' * 16}-01"}
                backlog = [(f"k{i}", b"x" * 200, carrier) for i in range(3000)]
                await enqueue_many(conn, "t", backlog, OutboxLane.BULK)
            store = OutboxStore(engine)
            first = await store.claim_due(1000, lease_s=30)
            second = await store.claim_due(1000, lease_s=30)
            assert [m.key for m in [*first, *second]] == [f"k{i}" for i in range(2000)]
        finally:
            await engine.dispose()  # its sessions end: their statistics reach the view
        # Whether later updates of a row are HOT too depends on the page being pruned first,
        # which any older transaction in the cluster holds up: the first claim of a row is
        # the one every row gets.
        claimed = await wait_until_async(
            lambda: _updates(scratch_url), 10, "the statistics", until=lambda u: u[0] >= 2000
        )
        engine = create_engine(scratch_url)
        try:
            store = OutboxStore(engine)
            assert await store.renew(_claims(first), 30) == 1000
            assert await store.release_claims(_claims(first)) == 1000
            # The second claim still holds its rows: the next claim gets the released ones
            # and the rest of the backlog, and the first claim's token completes nothing.
            third = await store.claim_due(5000, lease_s=30)
            assert sorted(m.key for m in third) == sorted(
                [f"k{i}" for i in range(1000)] + [f"k{i}" for i in range(2000, 3000)]
            )
            assert await store.renew(_claims(first), 0) == 0
            assert await store.release_claims(_claims(first)) == 0
            assert await store.delivered(first) == []
            assert await store.claim_due(10, lease_s=30) == []
            assert len(await store.delivered(second)) == 1000
            assert len(await store.delivered(third)) == 2000
            assert await _rows(engine) == []
        finally:
            await engine.dispose()
        return claimed

    updates, hot = asyncio.run(scenario())
    assert (updates, hot) == (2000, 2000)
