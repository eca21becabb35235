"""Event imports (issue 22): history staged in bulk, then folded into metrics set-based.

Staging stores each message's events with COPY and answers once they are durable. A commit
folds the staged events a chunk of customers at a time, each chunk one transaction that
locks the import first (so two committers - a resumed call, another replica - go one after
the other and never fold a chunk twice) and then the chunk's profiles in id order (as the
event batcher does: no deadlock with streamed events), moves the chunk's events into the event
store (those applied before are left out), adds the per-customer sums of the new ones to the
stored metrics (``combine``), records their side effects as ApplyEvent does, announces each
changed customer once with all of its new events, and records how far it got. A crash between
chunks loses nothing and counts nothing twice: CommitEventImport again goes on from there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from svod_profile.domain.announcements import (
    CHANGED_TOPIC,
    CONTACT_FAILED_TOPIC,
    contact_failure_payload,
    metrics_only_payload,
)
from svod_profile.domain.consents import consent_from_event
from svod_profile.domain.events import combine
from svod_profile.domain.imports import (
    MAX_STAGE_EVENTS,
    ChunkFolded,
    EventImport,
    ImportState,
    Staged,
    StagedEvent,
    check_import_id,
)
from svod_profile.service_layer.event_batcher import metrics_only
from svod_profile.service_layer.ports import ImportRepository, ImportUnit
from svod_runtime.errors import (
    CustomerErased,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
)
from svod_runtime.transactions import run_in_transaction

# Staged events per commit transaction (whole customers: a chunk ends at a customer
# boundary). Measured in-process on 200,000 order events of 20,000 customers (load 6.5-9):
# chunks of 10,000 committed 10,300 events/s, 50,000 19,600/s, 200,000 16,600/s (and lock
# their customers for longer).
CHUNK_ROWS = 50_000
# Events per change announcement: a customer with more new events in a chunk is announced in
# parts. As many as a streamed batch can announce for one customer (ApplyEventBatch takes at
# most 1,000 events), so no ApplyProfileChanges call the relay builds is larger than one of
# streaming's.
ANNOUNCE_EVENTS = 1000
# A chunk that met an erasure committing under it is run again (it then drops that customer).
ERASED_RETRIES = 5
RecordConsent = Callable[..., Awaitable[None]]
log = logging.getLogger(__name__)


def _announced(payload: bytes, version: int, consented: bool, created: bool) -> bytes:
    """A chunk's announcement of a customer, with the metrics alone when the streamed events'
    rule (``event_batcher.metrics_only``) allows: then the relay reads and sends the metrics,
    not the whole profile (``announced_many`` and its proto were 16% of the announcing
    relay's py-spy samples after a 200,000-event import)."""
    return metrics_only_payload(payload) if metrics_only(version, consented, created) else payload


class EventImports:
    def __init__(
        self,
        store: ImportRepository,
        record_consent: RecordConsent,
        on_announced: Callable[[], None] = lambda: None,
        *,
        chunk_rows: int = CHUNK_ROWS,
        announce_events: int = ANNOUNCE_EVENTS,
    ) -> None:
        self.store = store
        self.record_consent = record_consent
        self.on_announced = on_announced
        self.chunk_rows = chunk_rows
        self.announce_events = announce_events
        # Commits running in this process, by import id.
        self._running: dict[str, asyncio.Task[None]] = {}

    async def stage(self, import_id: str, rows: list[StagedEvent]) -> Staged:
        """Stores the events of one message (already checked, each its store row)."""
        check_import_id(import_id)
        if len(rows) > MAX_STAGE_EVENTS:
            raise InvalidArgument(
                [FieldViolation("events", f"at most {MAX_STAGE_EVENTS:,} events per message")]
            )
        async with self.store.transaction() as tx:
            pk, current = await tx.imports.lock_or_create(import_id)
            if current.state != ImportState.STAGING:
                raise FailedPrecondition(
                    f"import {import_id} is {current.state.name.lower()}: stage a new import"
                )
            staged, duplicates = await tx.imports.stage(pk, rows) if rows else (0, 0)
            total = await tx.imports.add_staged(pk, staged) if staged else current.staged
        return Staged(staged, duplicates, total)

    async def get(self, import_id: str) -> EventImport:
        check_import_id(import_id)
        async with self.store.transaction() as tx:
            found = await tx.imports.get(import_id)
        if found is None:
            raise NotFound(f"no event import {import_id}")
        return found

    async def commit(self, import_id: str) -> EventImport:
        """Starts (or resumes) the fold in the background; the import as it is then."""
        check_import_id(import_id)
        async with self.store.transaction() as tx:
            locked = await tx.imports.lock(import_id)
            if locked is None:
                raise NotFound(f"no event import {import_id}")
            pk, current, _ = locked
            if current.state == ImportState.STAGING:
                await tx.imports.start_commit(pk)
        found = await self.get(import_id)
        if found.state == ImportState.COMMITTING:
            task = self._running.get(import_id)
            if task is None or task.done():
                self._running[import_id] = asyncio.create_task(
                    self._fold_all(import_id), name=f"event import {import_id}"
                )
        return found

    async def wait(self, import_id: str) -> None:
        """Until this process's commit of the import ends (tests, benchmarks)."""
        task = self._running.get(import_id)
        if task is not None:
            await asyncio.shield(task)

    async def _fold_all(self, import_id: str) -> None:
        try:
            erased_retries = 0
            while True:
                try:
                    done = await run_in_transaction(
                        self.store.transaction, lambda tx: self._fold_chunk(tx, import_id)
                    )
                except CustomerErased:
                    erased_retries += 1
                    if erased_retries > ERASED_RETRIES:
                        raise
                    continue
                self.on_announced()
                if done:
                    return
                # Other calls get the event loop between chunks.
                await asyncio.sleep(0)
        except Exception:
            # The import stays COMMITTING; CommitEventImport again resumes after the last
            # chunk that committed. No personal data in the log: the import's id only.
            log.exception("event import %s stopped; commit it again to resume", import_id)

    async def _fold_chunk(self, tx: ImportUnit, import_id: str) -> bool:
        """Folds the next chunk of customers; True when none was left."""
        locked = await tx.imports.lock(import_id)
        if locked is None:
            return True
        pk, current, through = locked
        if current.state != ImportState.COMMITTING:
            return True
        chunk = await tx.imports.next_customers(pk, through, self.chunk_rows)
        if not chunk:
            await tx.imports.finish(pk)
            return True
        ids = [c for c, _ in chunk]
        erased = await tx.imports.erased_among(ids)
        kept = [c for c in ids if c not in erased]
        owners: dict[str, str] = {}
        deltas: dict[str, Any] = {}
        inserted = 0
        if kept:
            owners, metrics = await tx.events.lock_current_profiles(kept)
            deltas, announcements, side, inserted = await tx.imports.fold(
                pk, owners, self.announce_events
            )
            versions = await tx.events.save_metrics_many(
                {owner: combine(metrics[owner], delta) for owner, delta in deltas.items()}
            )
            failures: list[tuple[str, bytes, dict[str, str]]] = []
            consented: set[str] = set()  # profiles whose consents the chunk changed
            for owner, event in side:  # in the order they happened
                opt_out = consent_from_event(event)
                if opt_out is not None:
                    consented.add(owner)
                    await self.record_consent(
                        tx, owner, opt_out, record_ref=(event.source, event.message_id)
                    )
                payload = contact_failure_payload(event)
                if payload is not None:
                    failures.append((owner, payload, {}))
            await tx.enqueue_many(CONTACT_FAILED_TOPIC, failures)
            await tx.enqueue_many(
                CHANGED_TOPIC,
                [
                    (
                        owner,
                        _announced(
                            part, versions[owner], owner in consented, owner in tx.events.created
                        ),
                        {},
                    )
                    for owner in sorted(deltas)
                    for part in announcements[owner]
                ],
            )
        kept_rows = sum(n for c, n in chunk if c not in erased)
        await tx.imports.advance(
            pk,
            ids[-1],
            ChunkFolded(
                applied=inserted,
                duplicates=kept_rows - inserted,
                erased=sum(n for c, n in chunk if c in erased),
                customers=len(deltas),
            ),
        )
        return False
