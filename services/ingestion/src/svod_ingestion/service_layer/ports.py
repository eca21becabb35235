"""What ingestion's use cases need from storage and from the peers, as protocols.

``adapters.storage.IngestionStore`` and ``adapters.held_events.HeldEventStore`` satisfy the
storage ones over PostgreSQL and ``adapters.downstream.GrpcDownstream`` the peers' (mypy checks
it where the app wires them); ``tests/unit/fakes.py`` and ``tests/unit/delivery_fakes.py``
satisfy them in memory, so the use cases run in the fast unit tier without a database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from svod_ingestion.domain.attribution import Finding, HeldEvent, Hold, Issue
from svod_ingestion.domain.imports import (
    CustomerImport,
    EventFoldProgress,
    ImportKind,
    ImportResult,
    ImportState,
    ResolutionProgress,
    Staged,
)
from svod_ingestion.domain.model import (
    Incoming,
    MessageKind,
    RecordStatus,
    StoredPayload,
    StoredRecord,
)
from svod_runtime.errors import FieldViolation
from svod_runtime.outbox import DeliveryError, OutboxLane

# (type, value, namespace) of a stored message's identifiers, from its kind and payload.
IdentifiersOf = Callable[[MessageKind, bytes], list[tuple[str, str, str]]]


class IngestionUnit(Protocol):
    """One transaction: messages stored and their outbox entries, or nothing."""

    async def store_new(
        self, rows: Sequence[tuple[Incoming, bytes]], lane: OutboxLane
    ) -> dict[tuple[str, str], StoredRecord]:
        """Stores new messages (message, payload hash) and their outbox entries, in order, in
        the relay lane they wait for (an entry of a message not checked by quality says so);
        returns those stored here by (source, message id). Taken ids are skipped, a repeat
        within ``rows`` too (its first one is stored)."""

    async def store_new_refs(
        self, rows: Sequence[tuple[Incoming, bytes]], lane: OutboxLane
    ) -> set[tuple[str, str]]:
        """As ``store_new``; returns only the (source, message id) of those stored here."""

    async def existing_many(
        self, refs: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], StoredRecord]: ...


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


# -- delivery (service_layer/delivery.py) ------------------------------------------------------


class DeliveryStore(Protocol):
    """Stored messages as the outbox handlers read and settle them."""

    async def payloads(self, record_pks: list[int]) -> dict[int, StoredPayload]:
        """Stored requests by record pk (erased ones left out)."""

    async def mark_delivered_many(self, delivered: list[tuple[int, str, int]]) -> None:
        """(record pk, customer id, attempts) of delivered records."""

    async def mark_checked(self, checked: list[tuple[int, bytes]]) -> None:
        """(record pk, standardised payload) of records quality has now checked: the payload
        to deliver is quality's."""

    async def mark_failed(
        self, record_pk: int, error: str, attempts: int, *, erase_payload: bool = False
    ) -> None:
        """A message given up on (dead-lettered), its payload erased if asked."""


class EventHolds(Protocol):
    """Events waiting for their customer or held unattributed, as delivery leaves them."""

    async def hold(self, holds: Sequence[Hold]) -> None:
        """Records each event's state after a look and schedules its next look."""

    async def release(self, record_pks: Sequence[int]) -> None:
        """Events attributed by a look: no longer held."""

    async def wake_by_keys(self, keys: Iterable[str]) -> int:
        """Held events carrying one of these identifier keys get a look now; how many."""

    async def wake_identity_waiters(self) -> int:
        """Events that waited for identity get a look now; how many."""

    async def pending_identify_payloads(self, limit: int) -> list[bytes] | None:
        """Stored requests of identify calls identity has not resolved yet; None when there
        are more than ``limit`` (a backlog)."""


class HeldEventRequeue(Protocol):
    """Hands held events back to the outbox (the held-event sweeper)."""

    async def requeue_due(self, limit: int) -> int:
        """Held events due for a look go back to the outbox; returns how many."""

    async def requeue_probe(self) -> int:
        """One event waiting for identity goes back, due or not; returns how many."""


class Downstream(Protocol):
    """Identity and profile, as delivery calls them."""

    async def deliver_identifies(
        self, items: Sequence[tuple[bytes, dict[str, str]]]
    ) -> list[str | DeliveryError]:
        """Resolves and applies identify calls (stored request, trace carrier); for each, the
        customer id or the refusal."""
        ...

    async def lookup_tracks(self, payloads: Sequence[bytes]) -> list[list[Finding | None]]:
        """Identity's answer for each identifier of each stored event (None: malformed).
        Raises DeliveryError when identity could not be asked."""
        ...

    async def apply_tracks(
        self, items: Sequence[tuple[bytes, str, dict[str, str]]]
    ) -> list[DeliveryError | None]:
        """Applies events (stored request, customer id, trace carrier) to the profiles; for
        each, None or the refusal. Raises DeliveryError when profile could not be asked."""
        ...

    def identifiers_of(self, kind: MessageKind, payload: bytes) -> list[tuple[str, str, str]]:
        """(type, value, namespace) of a stored request's identifiers."""
        ...


# Quality's check of stored identify calls accepted unchecked: for each, the payload to deliver
# (standardised) or the refusal (a reject rule: permanent; quality unreachable: retried).
QualityGate = Callable[[list[bytes]], Awaitable[list["bytes | DeliveryError"]]]


# -- customer imports (service_layer/imports.py) -----------------------------------------------


class ImportRepository(Protocol):
    """Customer imports and the records stored under them (adapters/imports.py)."""

    async def stage(
        self,
        import_id: str,
        rows: Sequence[tuple[Incoming, bytes]],
        kind: ImportKind = ImportKind.CUSTOMERS,
    ) -> Staged | ImportState: ...

    async def payloads_by_pk(self, record_pks: Sequence[int]) -> dict[int, bytes]: ...

    async def staged_with_identity(self, import_id: str, import_staged: int) -> None: ...

    async def fail_records(self, record_pks: Sequence[int], errors: Sequence[str]) -> None: ...

    async def get(
        self, import_id: str, kind: ImportKind | None = None
    ) -> CustomerImport | None: ...

    async def commit(
        self, import_id: str, kind: ImportKind = ImportKind.CUSTOMERS
    ) -> CustomerImport | None: ...

    async def staged_with_profile(
        self, import_id: str, attributed: Sequence[tuple[int, str]], import_staged: int
    ) -> None: ...

    async def hand_over(self, import_id: str, record_pks: Sequence[int]) -> int: ...

    async def deliver_staged(
        self, import_id: str, owner: str, lease_s: float, not_staged: str
    ) -> tuple[int, int]: ...

    async def claim(self, owner: str, lease_s: float) -> CustomerImport | None: ...

    async def update(self, import_id: str, owner: str, lease_s: float, **values: Any) -> None: ...

    async def pending_records(
        self, import_id: str, refs: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[int, bytes]]: ...

    async def settle(
        self,
        import_id: str,
        owner: str,
        lease_s: float,
        delivered: Sequence[tuple[int, str]],
        failed: Sequence[tuple[int, str]],
        results_after: int,
    ) -> None: ...

    async def fail_leftovers(
        self, import_id: str, owner: str, lease_s: float, error: str
    ) -> int: ...

    async def release(self, import_id: str, owner: str) -> None: ...


class ImportPeers(Protocol):
    """Identity's batch engine, profile's customer import fold, segmentation
    (adapters/import_peers.py)."""

    async def stage(
        self, import_id: str, payloads: Sequence[bytes]
    ) -> tuple[dict[int, tuple[str, list[FieldViolation]]], int]: ...

    async def commit(self, import_id: str) -> ResolutionProgress: ...

    async def progress(self, import_id: str) -> ResolutionProgress: ...

    def results(self, import_id: str, after_sequence: int) -> AsyncIterator[ImportResult]: ...

    async def fold(
        self, import_id: str, items: Sequence[tuple[bytes, ImportResult]]
    ) -> list[str | DeliveryError]:
        """Folds resolved records into their profiles: each one's customer id or refusal."""

    async def finish(self, import_id: str) -> int:
        """Profile announces each customer the import's folds changed, once; how many."""

    async def recompute_segments(self) -> None: ...


class EventImportPeers(Protocol):
    """Identity's look-ups and profile's event fold (adapters/import_peers.py)."""

    async def lookup(self, payloads: Sequence[bytes]) -> list[list[Finding | None]]: ...

    async def stage(
        self, import_id: str, items: Sequence[tuple[bytes, str]]
    ) -> tuple[dict[int, tuple[str, list[FieldViolation]]], int]: ...

    async def commit(self, import_id: str) -> EventFoldProgress: ...

    async def progress(self, import_id: str) -> EventFoldProgress: ...
