"""An event import's commit stopped at any moment (a crash: its open transaction rolls back)
and committed again counts every event exactly once; merged-away customers' events go to the
survivor and erased customers' are dropped. Real Postgres; the use case and the storage
adapter as the service wires them (no gRPC: the commit is cancelled mid-transaction)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from benchmarks.profile.event_data import events
from svod_profile.adapters.event_imports import staged_event
from svod_profile.adapters.storage import ProfileStore
from svod_profile.domain.announcements import ProfileChanged
from svod_profile.domain.events import EventFact, fold
from svod_profile.domain.imports import ImportState
from svod_profile.entrypoints.grpc_servicer import event_fact
from svod_profile.service_layer.event_import import EventImports
from svod_profile.service_layer.use_cases import ProfileService
from svod_runtime.db import create_engine, libpq_url


@pytest.fixture
def profile_url(profile_urls: Callable[[], str]) -> str:
    return profile_urls()


async def _scenario(url: str) -> None:
    engine = create_engine(url)
    store = ProfileStore(engine)
    service = ProfileService(store, directory=Any)  # type: ignore[arg-type]
    customers = [str(uuid.uuid4()) for _ in range(30)]
    survivor, merged, erased = customers[0], customers[1], customers[2]
    await service.identity_changes.merge("change-1", survivor, [merged])
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO erased_customers (customer_id, receipt_id) VALUES (%s, %s)",
            (erased, str(uuid.uuid4())),
        )
    facts = [(i.customer_id, event_fact(i, "RUB")) for i in events(customers, 500, 5)]

    def imports() -> EventImports:
        # Announcements of at most 7 events: the parts of a customer's are checked below.
        return EventImports(store, service.record_consent, chunk_rows=40, announce_events=7)

    first = imports()
    for start in range(0, len(facts), 120):
        await first.stage("resume-1", [staged_event(c, f) for c, f in facts[start : start + 120]])
    # Stopped three times at random moments, by a fresh process each time. Each attempt goes
    # on from where the last stopped, so the three together must stay short of a whole commit:
    # with up to 0.15 s each, a clean-clone run on a quiet machine finished the commit within
    # the third attempt and the stop found nothing to cancel.
    rng = random.Random(3)
    for _ in range(3):
        committer = imports()
        await committer.commit("resume-1")
        await asyncio.sleep(rng.uniform(0.002, 0.02))
        committer._running["resume-1"].cancel()
        with pytest.raises(asyncio.CancelledError):
            await committer._running["resume-1"]
    partial = await first.get("resume-1")
    last = imports()
    await last.commit("resume-1")
    await last.wait("resume-1")
    done = await last.get("resume-1")
    assert partial.state == ImportState.COMMITTING
    assert done.state == ImportState.COMMITTED

    expected: dict[str, list[EventFact]] = defaultdict(list)
    for customer, fact in facts:
        if customer != erased:
            expected[survivor if customer == merged else customer].append(fact)
    dropped = sum(1 for c, _ in facts if c == erased)
    assert dropped > 0 and any(c == merged for c, _ in facts)
    assert (done.staged, done.applied, done.duplicates, done.erased) == (
        len(facts),
        len(facts) - dropped,
        0,
        dropped,
    )
    async with store.transaction() as tx:
        for owner, owned in expected.items():
            assert await tx.events.metrics(owner) == fold(owned), owner
            assert {(e.source, e.message_id) for e in await tx.events.events_of(owner)} == {
                (e.source, e.message_id) for e in owned
            }
        assert await tx.events.events_of(erased) == []
    # Each of a customer's new events is announced once, in parts of at most 7 (the survivor
    # also by the merge, with none); no staging table is left.
    with psycopg.connect(libpq_url(url)) as conn:
        rows = conn.execute(
            "SELECT key, payload FROM outbox WHERE topic = 'profile.changed' ORDER BY outbox_pk"
        ).fetchall()
        staging_tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'event_import_rows_%%'"
        ).fetchone()
    announced: dict[str, list[ProfileChanged]] = defaultdict(list)
    for key, payload in rows:
        announced[key].append(ProfileChanged.parse(bytes(payload)))
    assert set(announced) == set(expected)
    for owner, owned in expected.items():
        refs = [r for change in announced[owner] for r in change.events]
        assert sorted(refs) == sorted((e.source, e.message_id) for e in owned), owner
        assert all(len(change.events) <= 7 for change in announced[owner])
    assert [c.merged for c in announced[survivor] if c.merged] == [(merged,)]
    assert max(len(changes) for changes in announced.values()) > 1
    assert staging_tables == (0,)
    await engine.dispose()


def test_a_commit_stopped_anywhere_and_resumed_counts_each_event_once(profile_url) -> None:
    asyncio.run(_scenario(profile_url))


async def _erasure_scenario(url: str) -> None:
    engine = create_engine(url)
    store = ProfileStore(engine)
    service = ProfileService(store, directory=Any)  # type: ignore[arg-type]
    kept, erased = str(uuid.uuid4()), str(uuid.uuid4())
    facts = [(i.customer_id, event_fact(i, "RUB")) for i in events([kept, erased], 60, 8)]
    imports = EventImports(store, service.record_consent)
    await imports.stage("erase-1", [staged_event(c, f) for c, f in facts])
    async with store.transaction() as tx:
        counts = await tx.erase([erased], str(uuid.uuid4()), [])
    assert counts["staged_events"] == sum(1 for c, _ in facts if c == erased) > 0
    with psycopg.connect(libpq_url(url)) as conn:
        left = conn.execute(
            "SELECT DISTINCT customer_id::text FROM event_import_rows_1"  # the first import
        ).fetchall()
    assert left == [(kept,)]
    await imports.commit("erase-1")
    await imports.wait("erase-1")
    done = await imports.get("erase-1")
    assert (done.applied, done.erased) == (sum(1 for c, _ in facts if c == kept), 0)
    async with store.transaction() as tx:
        assert await tx.events.metrics(kept) == fold(f for c, f in facts if c == kept)
        assert await tx.events.events_of(erased) == []
    await engine.dispose()


def test_an_erasure_removes_the_customers_staged_events(profile_url) -> None:
    """A person erased while an import holding their events waits for its commit."""
    asyncio.run(_erasure_scenario(profile_url))
