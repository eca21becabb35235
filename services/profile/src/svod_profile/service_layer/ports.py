"""What the profile's use cases need from the outside, and small shared checks.

``adapters.storage.ProfileStore`` satisfies the storage protocols over PostgreSQL (mypy checks
it where the app wires it); ``tests/unit/fakes.py`` satisfies them in memory, so the use cases
run in the fast unit tier without a database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from svod_profile.domain.announcements import ProfileChanged
from svod_profile.domain.consents import Consent
from svod_profile.domain.events import EventFact, Metrics
from svod_profile.domain.imports import ChunkFolded, EventImport, StagedEvent
from svod_profile.domain.model import (
    IdentifierObservation,
    ProfileView,
    RecordApplication,
    TraitObservation,
)
from svod_profile.domain.names import NameIndex, ShownUpdate


class ProfileEvents(Protocol):
    """A customer's events, metrics and consents, inside a unit."""

    # Profiles this unit created (lock_current_profiles): they hold nothing but what it wrote.
    created: set[str]
    # Those of them made whole (lock_current_profiles' ``filled``).
    filled: set[str]

    async def insert_event(self, customer_id: str, event: EventFact) -> bool:
        """Stores an event once (by its record); False when it was seen before."""

    async def insert_events(self, rows: list[tuple[str, EventFact]]) -> set[tuple[str, str]]:
        """Stores (customer, event) rows once each; returns the new ones' records."""

    async def lock_current_profiles(
        self,
        customer_ids: list[str],
        *,
        with_metrics: bool = True,
        erasure_locked: bool = False,
        filled: str | None = None,
    ) -> tuple[dict[str, str], dict[str, Metrics]]:
        """Each id's current customer (following merges), locked, and its metrics (none
        when not ``with_metrics``); ``erasure_locked``: the unit holds the ids' erasure locks
        (``erased_among``); ``filled``: the shown values new profiles are made with
        (CustomerImportUnit.shown_json)."""

    async def save_metrics_many(self, metrics: dict[str, Metrics]) -> dict[str, int]: ...

    async def metrics(self, customer_id: str) -> Metrics: ...

    async def save_metrics(self, customer_id: str, metrics: Metrics) -> int:
        """Stores the metrics; returns the profile's new version."""

    async def events_of(self, customer_id: str) -> list[EventFact]: ...

    async def timeline(
        self, customer_id: str, limit: int, after: tuple[dt.datetime, str, str] | None
    ) -> list[EventFact]:
        """Newest first, after the position of a page token."""

    async def move_events_by_ref(self, target: str, refs: list[tuple[str, str]]) -> None: ...

    async def consents(self, customer_ids: list[str]) -> list[tuple[str, Consent]]:
        """The standing consents of the customers: (customer, consent)."""

    async def record_consent(
        self,
        customer_id: str,
        consent: Consent,
        current: bool,
        history: bool = True,
        *,
        stated_for: str | None = None,
        record_ref: tuple[str, str] | None = None,
    ) -> None:
        """Keeps the statement in the history; ``current``: it is the standing one now."""

    async def replace_consents(
        self, customer_id: str, consents: list[Consent], drop: list[str]
    ) -> None: ...

    async def consent_history(self, customer_id: str) -> list[Consent]: ...

    async def move_consent_statements(
        self, source: str, target: str, events: list[tuple[str, str]], stated_for: list[str]
    ) -> None: ...

    async def set_consents(self, customer_id: str, standing: list[Consent]) -> None: ...


class ProfileQueries(Protocol):
    async def search(self, filters: dict[str, str], after: str | None, limit: int) -> list[str]:
        """Customer ids whose profiles match every filter, in id order after ``after``."""

    async def changed_since(
        self, since: dt.datetime | None, after: str | None, limit: int
    ) -> list[str]: ...


class ProfileUnit(Protocol):
    """One transaction over the profile's data: everything in it commits or nothing does."""

    @property
    def events(self) -> ProfileEvents: ...

    @property
    def queries(self) -> ProfileQueries: ...

    # -- records and shown values
    async def lock_current_profile(self, customer_id: str) -> str:
        """The id's current customer (following merges), its profile locked (made if new)."""

    async def lock_profile(self, customer_id: str) -> None: ...

    async def claim_and_observe(self, app: RecordApplication) -> bool:
        """Keeps the record's values once; False when the record was applied before."""

    async def claim_and_observe_many(self, apps: list[RecordApplication]) -> list[bool]: ...

    async def observations(
        self, customer_id: str, fields: Iterable[str]
    ) -> list[TraitObservation]: ...

    async def observations_many(
        self, wanted: list[tuple[str, Iterable[str]]]
    ) -> list[list[TraitObservation]]: ...

    async def all_observations(self, customer_id: str) -> list[TraitObservation]: ...

    async def observations_with_records(
        self, customer_id: str
    ) -> list[tuple[TraitObservation, tuple[str, str]]]: ...

    async def update_shown(
        self, customer_id: str, shown: dict[str, TraitObservation], names: NameIndex | None
    ) -> int:
        """Replaces the shown values of the fields in ``shown``; returns the new version."""

    async def update_shown_many(self, updates: list[ShownUpdate]) -> list[int]: ...

    async def replace_shown(
        self, customer_id: str, shown: dict[str, TraitObservation], names: NameIndex
    ) -> int:
        """Replaces every shown value; returns the new version."""

    async def versions(self, customer_ids: Iterable[str]) -> dict[str, int]: ...

    async def version(self, customer_id: str) -> int: ...

    async def load(self, customer_id: str) -> ProfileView | None: ...

    async def current_id(self, customer_id: str) -> str: ...

    # -- identity's changes
    async def change_applied(self, change_id: str) -> bool: ...

    async def claim_change(self, change_id: str) -> bool:
        """Marks the change applied; False when it was before."""

    async def merge_into(self, survivor: str, merged: list[str]) -> None:
        """Moves the merged customers' data to the survivor; their profiles disappear."""

    async def merged_away_into(self, customer_ids: list[str]) -> list[str]: ...

    async def merged_into(self, customer_id: str) -> list[str]: ...

    async def redirect(self, customer_ids: list[str], to: str) -> None: ...

    async def move_records(self, target: str, refs: list[tuple[str, str]]) -> None: ...

    async def rebuild_sources(self, customer_id: str) -> None: ...

    async def replace_identifiers(
        self, customer_id: str, identifiers: list[IdentifierObservation]
    ) -> None: ...

    # -- erasure
    async def erased_among(self, customer_ids: Iterable[str]) -> set[str]: ...

    async def record_refs(self, customer_id: str) -> list[tuple[str, str]]: ...

    async def erase(
        self, customer_ids: list[str], receipt_id: str, values: list[str]
    ) -> dict[str, int]: ...

    async def save_receipt(
        self,
        receipt_id: str,
        customer_id: str,
        customer_ids: list[str],
        actor: str,
        reason: str,
        counts: dict[str, int],
    ) -> dt.datetime: ...

    async def receipt(self, receipt_id: str | None, customer_id: str | None) -> Any: ...

    # -- the outbox
    async def report_contact_failure(self, customer_id: str, event: EventFact) -> None: ...

    async def announce(self, customer_id: str, change: ProfileChanged) -> None:
        """Tells segmentation (through the outbox) that this profile changed."""

    async def enqueue_many(
        self, topic: str, messages: list[tuple[str, bytes, dict[str, str]]]
    ) -> None:
        """Adds (key, payload, trace carrier) messages to the outbox."""


class ProfileRepository(Protocol):
    """Where the profile's data lives."""

    def transaction(self) -> AbstractAsyncContextManager[ProfileUnit]: ...

    def reader(self) -> AbstractAsyncContextManager[ProfileUnit]:
        """For single-statement reads (no transaction of its own)."""


class EventImportRows(Protocol):
    """An event import's staged rows and state, inside an ImportUnit (adapters/event_imports)."""

    async def get(self, import_id: str) -> EventImport | None: ...

    async def lock(self, import_id: str) -> tuple[int, EventImport, str | None] | None:
        """(key, state, last customer folded) of the import, locked; None if never staged."""

    async def lock_or_create(self, import_id: str) -> tuple[int, EventImport]: ...

    async def stage(self, import_pk: int, rows: Sequence[StagedEvent]) -> tuple[int, int]:
        """Stores the events new to the import: (staged, duplicates)."""

    async def add_staged(self, import_pk: int, staged: int) -> int: ...

    async def start_commit(self, import_pk: int) -> None: ...

    async def next_customers(
        self, import_pk: int, after: str | None, rows: int
    ) -> list[tuple[str, int]]:
        """The next staged customers after ``after`` with about ``rows`` events, each whole:
        (customer id, its staged events)."""

    async def erased_among(self, customer_ids: list[str]) -> set[str]: ...

    async def fold(
        self, import_pk: int, owners: dict[str, str], announce_events: int
    ) -> tuple[dict[str, Metrics], dict[str, list[bytes]], list[tuple[str, EventFact]], int]:
        """Moves the staged customers' events to the event store (new ones only): per owner
        the metrics of its new events and its change announcements (of at most
        ``announce_events`` events each), the new events with effects beyond metrics, and
        how many were new."""

    async def advance(self, import_pk: int, through: str, chunk: ChunkFolded) -> None: ...

    async def finish(self, import_pk: int) -> None: ...


class ImportUnit(Protocol):
    """The transaction an event import's staging or commit chunk runs in."""

    @property
    def events(self) -> ProfileEvents: ...

    @property
    def imports(self) -> EventImportRows: ...

    async def enqueue_many(
        self, topic: str, messages: list[tuple[str, bytes, dict[str, str]]]
    ) -> None: ...


class ImportRepository(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[ImportUnit]: ...


class CustomerImportRows(Protocol):
    """A customer import's writes, inside a CustomerImportUnit (adapters/customer_imports)."""

    async def claim_and_observe(self, apps: list[RecordApplication]) -> list[bool]:
        """ProfileUnit.claim_and_observe of each record in turn, set-based: for each, whether
        it was new."""

    async def observations(
        self,
        customer_ids: Iterable[str],
        written: Mapping[str, Sequence[RecordApplication]] | None = None,
    ) -> dict[str, list[TraitObservation]]:
        """Every value observed for the customers, by customer, in the order stored;
        ``written``: customers whose profiles the unit created, with the records
        claim_and_observe stored for them (their values are not read back)."""

    async def as_stored(
        self, apps_of: Mapping[str, Sequence[RecordApplication]]
    ) -> dict[str, list[TraitObservation]]:
        """Each customer's values as claim_and_observe would store its (new) records and
        observations read them back."""

    async def unfill(self, customer_ids: Iterable[str]) -> None:
        """Profiles made whole by lock_current_profiles set back to empty."""

    async def note_changed(self, import_id: str, customer_ids: Iterable[str]) -> None: ...

    async def take_changed(self, import_id: str, limit: int) -> list[str]:
        """Up to ``limit`` customers the import changed, not announced yet (current ids),
        taken off the list."""


class CustomerImportUnit(Protocol):
    """The transaction a customer import's fold (or announcement) runs in."""

    @property
    def events(self) -> ProfileEvents: ...

    @property
    def customer_imports(self) -> CustomerImportRows: ...

    async def erased_among(self, customer_ids: Iterable[str]) -> set[str]: ...

    async def erased_and_absent(self, customer_ids: Iterable[str]) -> tuple[set[str], set[str]]:
        """erased_among, and which of the ids have no profile (a hint, read unlocked)."""

    def shown_json(self, shown: list[ShownUpdate]) -> str:
        """(customer, shown, names) as lock_current_profiles' ``filled`` takes them."""

    async def update_shown_set(self, updates: list[ShownUpdate]) -> dict[str, int]:
        """update_shown of each (distinct) customer, set-based: each one's new version."""

    async def versions(self, customer_ids: Iterable[str]) -> dict[str, int]: ...

    async def enqueue_many(
        self, topic: str, messages: list[tuple[str, bytes, dict[str, str]]]
    ) -> None: ...


class CustomerImportRepository(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[CustomerImportUnit]: ...


class CustomerDirectory(Protocol):
    """Who an identifier belongs to: the identity service's answer."""

    async def customer_for_identifier(self, id_type: str, value: str, namespace: str) -> str: ...

    async def current_customer_id(self, customer_id: str) -> str: ...

    async def identifiers_of(
        self, customer_id: str
    ) -> list[tuple[str, str, str, str, dt.datetime]]: ...


@dataclass(frozen=True)
class IdentityErasure:
    """What identity erased: the person's records, identifiers, and every id of theirs."""

    refs: list[tuple[str, str]]
    identifier_count: int
    customer_ids: list[str]


@dataclass(frozen=True)
class PeerExport:
    """What the other services hold about a person (their personal-data export)."""

    merged_customer_ids: list[str]
    # (type, value, namespace, source, first seen, last seen)
    identifiers: list[tuple[str, str, str, str, dt.datetime | None, dt.datetime | None]]
    # (review item id, record source, record message id, state, score, created)
    review_items: list[tuple[str, str, str, str, float, dt.datetime | None]]
    # (segment id, label, entered)
    memberships: list[tuple[str, str, dt.datetime | None]]
    # (score, reasons, scored at), or None when quality has no score
    quality_score: tuple[int, list[str], dt.datetime | None] | None


class PersonalDataHolders(Protocol):
    """The other services holding a person's data."""

    async def export(self, customer_id: str) -> PeerExport: ...

    async def erase_identity(
        self, customer_id: str, actor: str, reason: str
    ) -> IdentityErasure: ...

    async def erase_payloads(
        self, refs: list[tuple[str, str]], identifiers: list[tuple[str, str, str]]
    ) -> int: ...

    async def erase_memberships(self, customer_id: str) -> int | None: ...

    async def erase_quality_facts(
        self, customer_id: str, identifiers: list[tuple[str, str, str]]
    ) -> int: ...
