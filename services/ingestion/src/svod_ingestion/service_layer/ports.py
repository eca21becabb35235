"""What ingestion's use cases need from storage, as protocols.

``adapters.storage.IngestionStore`` and ``adapters.held_events.HeldEventStore`` satisfy them over
PostgreSQL (mypy checks it where the app wires them); ``tests/unit/fakes.py`` satisfies them in
memory, so the use cases run in the fast unit tier without a database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from svod_ingestion.domain.attribution import HeldEvent, Issue
from svod_ingestion.domain.model import Incoming, MessageKind, RecordStatus, StoredRecord
from svod_runtime.outbox import OutboxLane

# (type, value, namespace) of a stored message's identifiers, from its kind and payload.
IdentifiersOf = Callable[[MessageKind, bytes], list[tuple[str, str, str]]]


class IngestionUnit(Protocol):
    """One transaction: messages stored and their outbox entries, or nothing."""

    async def insert_records(
        self, rows: Sequence[tuple[str, Incoming, bytes]]
    ) -> dict[tuple[str, str], tuple[MessageKind, StoredRecord]]:
        """Stores new messages (record id, message, payload hash); returns those stored here
        by (source, message id), with their kind. Taken ids are skipped."""

    async def existing_many(
        self, refs: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], StoredRecord]: ...

    async def enqueue_many(
        self, records: Sequence[tuple[int, MessageKind, bool]], lane: OutboxLane
    ) -> None:
        """Outbox entries (record pk, kind, quality unchecked) for new records, in order, in
        the relay lane they wait for."""


class IngestionRepository(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[IngestionUnit]: ...

    async def erase_pending(
        self, matches: Callable[[MessageKind, bytes], bool], error: str, chunk: int = 2_000
    ) -> int:
        """Erases the payloads of messages not delivered yet for which ``matches(kind,
        payload)`` holds and fails them with ``error``; returns how many."""

    async def erase_payloads(self, refs: list[tuple[str, str]]) -> int: ...

    async def purge_payloads(self, older_than: dt.timedelta, limit: int = 5_000) -> int:
        """Drops payloads delivered or failed longer ago than ``older_than`` (at most
        ``limit`` per call); returns how many."""

    async def status(self, source: str, message_id: str) -> RecordStatus | None: ...


class HeldEvents(Protocol):
    """Events held unattributed or waiting for their customer."""

    async def page(self, issues: Sequence[Issue], after_pk: int, limit: int) -> list[HeldEvent]:
        """Held events with these issues, oldest (by record) first, after ``after_pk``."""

    async def counts(self) -> dict[Issue, int]: ...

    async def wake_all(self) -> int: ...

    async def wake_by_candidates(self, customer_ids: Sequence[str]) -> int:
        """Makes the held events naming one of these customers due now; returns how many."""
