"""WatchMemberships' feed gives each customer's changes in the order they were made, whatever
order their transactions got their ids in (its own database: the test drives the sweeper and a
batch of changes step by step, with a clock of its own).

A transaction gets its id at its first write or row lock, not at its commit. A batch of
changes locks its customers one after the other: it gets its id at the first and may then wait
on another for a long time (a row held by a concurrent batch). Meanwhile the expiry sweeper can
claim, change and commit a customer further along in the batch, with a larger id; the batch
then changes that customer again, from the sweeper's result, under its smaller id. Ordered by
transaction id, the feed gave the batch's change first: a consumer applying it in order ended
with the sweeper's state, not the customer's.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import secrets
import uuid

import psycopg

from svod_cli.suite import create_database, drop_database, versions_dir
from svod_runtime.config import service_database_url
from svod_runtime.db import bootstrap_service_schema, create_engine, libpq_url
from svod_runtime.migrations import upgrade
from svod_segmentation.adapters.storage import SegmentationStore
from svod_segmentation.domain.model import (
    CustomerEvent,
    MembershipKind,
    MetricsSnapshot,
    ProfileChange,
    Segment,
)
from svod_segmentation.domain.rules import BehaviorCondition, SegmentDefinition
from svod_segmentation.service_layer.use_cases import SegmentationService

ENTERED, EXITED = MembershipKind.ENTERED, MembershipKind.EXITED


class _Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def _ordered(customer_id: str, version: int, at: dt.datetime) -> ProfileChange:
    """A metrics change: one more order, placed at ``at``."""
    metrics = MetricsSnapshot(
        customer_id=customer_id, profile_version=version, order_count=version, updated_at=at
    )
    event = CustomerEvent("shop", f"{customer_id}-{version}", "order_placed", at)
    return ProfileChange(customer_id, version, None, events=(event,), metrics=metrics)


async def _waiting_on_a_lock(observer: psycopg.AsyncConnection, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        row = await (
            await observer.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND backend_xid IS NOT NULL"
            )
        ).fetchone()
        if row and row[0]:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the batch never waited on the held customer")


async def _scenario(url: str) -> None:
    t0 = dt.datetime.now(dt.UTC)
    clock = _Clock(t0)
    engine = create_engine(url, pool_size=3)
    service = SegmentationService(SegmentationStore(engine), clock)
    blocker = await psycopg.AsyncConnection.connect(libpq_url(url))
    observer = await psycopg.AsyncConnection.connect(libpq_url(url), autocommit=True)
    try:
        rule = BehaviorCondition("order_placed", "count", "ge", 1, 1)
        await service.create_segment(Segment(SegmentDefinition("day", rule)))
        # Locked in this order by a batch: first, held, late.
        first, held, late = sorted(str(uuid.uuid4()) for _ in range(3))
        # Late bought 23 hours ago: in the segment, leaving it in an hour (a recheck).
        await service.apply_changes(
            [_ordered(late, 1, t0 - dt.timedelta(hours=23)), _ordered(held, 1, t0)]
        )
        clock.now = t0 + dt.timedelta(hours=2)
        # Another transaction holds one customer of the next batch (as a concurrent batch would).
        await blocker.execute("SELECT 1 FROM customers WHERE customer_id = %s FOR UPDATE", [held])
        batch = asyncio.create_task(
            service.apply_changes(
                [_ordered(c, v, clock.now) for c, v in ((first, 1), (held, 2), (late, 2))]
            )
        )
        # The batch wrote the first customer (it has its transaction id) and waits on the next.
        await _waiting_on_a_lock(observer)
        # Late's hour is up: the sweeper takes her out and commits, with a larger id.
        assert await service.sweep_once() == 1
        await blocker.rollback()
        # Then the batch puts her back in, from the sweeper's result: she bought again.
        outcomes = await batch
        # apply_changes gives a ChangeOutcome or the Exception that refused it: a change here.
        assert outcomes[2].entered == ("day",)  # type: ignore[union-attr]
        async with service.store.transaction() as tx:
            assert {m.customer_id for m in await tx.members("day", "", 10)} == {first, held, late}
            feed = await tx.feed((0, 0), ["day"], 100)
        kinds = [e.kind for e in feed if e.customer_id == late]
        # In the order they happened: a consumer applying the feed ends with her in.
        assert kinds == [ENTERED, EXITED, ENTERED], kinds
    finally:
        await blocker.close()
        await observer.close()
        await engine.dispose()


def test_a_batch_waiting_on_a_lock_does_not_reorder_a_customers_changes(
    own_segmentation_url: str,
) -> None:
    asyncio.run(_scenario(own_segmentation_url))


_EVENT = (
    "INSERT INTO membership_events (segment_id, customer_id, kind, at) "
    "VALUES (%s, %s, 'entered', now()) RETURNING CAST(txid AS text), event_id"
)


def _write(conn: psycopg.Connection, segments: list[str]) -> list[tuple[int, int]]:
    """One transaction's events, one per segment given: their positions."""
    out = []
    with conn.transaction():
        for segment_id in segments:
            row = conn.execute(_EVENT, [segment_id, str(uuid.uuid4())]).fetchone()
            assert row is not None
            out.append((int(row[0]), int(row[1])))
    return out


async def _read_all(url: str, after: tuple[int, int]) -> list[tuple[int, int]]:
    engine = create_engine(url, pool_size=1)
    try:
        async with SegmentationStore(engine).transaction() as tx:
            return [e.position for e in await tx.feed(after, None, 1000)]
    finally:
        await engine.dispose()


def test_tokens_given_before_commit_order_resume_where_they_were(postgres_admin_url) -> None:
    """Tokens given while the feed was read in txid order ("txid.event_id" of an event, and a
    watch's start: the next transaction id, ".0") resume after the same events, and then read
    what was written since."""
    name = f"svod_test_feed_{os.getpid()}_{secrets.token_hex(3)}"
    db_url = create_database(postgres_admin_url, name)
    try:
        bootstrap_service_schema(db_url, "segmentation")
        url = service_database_url("segmentation", {"SVOD_DATABASE_URL": db_url})
        upgrade(versions_dir("segmentation"), url, "segmentation", "segmentation_0009")
        with psycopg.connect(libpq_url(url)) as conn:
            # Two transactions interleaved: the one with the smaller id commits last.
            early, late = psycopg.connect(libpq_url(url)), psycopg.connect(libpq_url(url))
            with early, late:
                early.execute(_EVENT, ["a", str(uuid.uuid4())])
                late.execute(_EVENT, ["b", str(uuid.uuid4())])
                late.commit()
                early.commit()
            before = _write(conn, ["a", "b"]) + _write(conn, ["c"])
            conn.commit()
            row = conn.execute("SELECT CAST(pg_current_xact_id() AS text)").fetchone()
            assert row is not None
            start = (int(row[0]) + 1, 0)  # as a watch started then was given
            conn.rollback()
            old = conn.execute(
                "SELECT CAST(txid AS text), event_id FROM membership_events ORDER BY txid, event_id"
            ).fetchall()
            old_order = [(int(t), int(e)) for t, e in old]
        upgrade(versions_dir("segmentation"), url, "segmentation")
        with psycopg.connect(libpq_url(url)) as conn:
            since = _write(conn, ["d", "e"])
        assert old_order[-3:] == before
        assert asyncio.run(_read_all(url, (0, 0))) == old_order + since
        for index, token in enumerate(old_order):
            assert asyncio.run(_read_all(url, token)) == old_order[index + 1 :] + since, token
        assert asyncio.run(_read_all(url, start)) == since
    finally:
        drop_database(postgres_admin_url, name)
