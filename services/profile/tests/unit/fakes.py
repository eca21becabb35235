"""In-memory profile storage and identity directory: satisfy ``service_layer.ports`` without
PostgreSQL or the identity service.

The store keeps what the use cases write and read back: records applied once (their values,
identifiers and sources), shown values and versions, events once each with their metrics,
consents standing and their history, merges (followed by later records), identity's changes
applied once, erased customers (a late message about one raises CustomerErased, as the
database's erasure locks do) and the outbox. A transaction commits only when its block ends
without an error. Erasure receipts, search and the change stream are SQL and are tested against
PostgreSQL (tests/e2e); the fake refuses them rather than guess.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg.errors

from svod_profile.domain.announcements import (
    CHANGED_TOPIC,
    CONTACT_FAILED_TOPIC,
    ProfileChanged,
    contact_failure_payload,
)
from svod_profile.domain.consents import Consent
from svod_profile.domain.events import EventFact, Metrics
from svod_profile.domain.model import (
    IdentifierObservation,
    NameVariant,
    ProfileView,
    Provenance,
    RecordApplication,
    SourceSummary,
    TraitObservation,
)
from svod_profile.domain.names import NameIndex, ShownUpdate
from svod_profile.service_layer.ports import (
    CustomerDirectory,
    ProfileEvents,
    ProfileQueries,
    ProfileRepository,
    ProfileUnit,
)
from svod_runtime.errors import CustomerErased, NotFound

Ref = tuple[str, str]


@dataclass
class FakeProfile:
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int = 0
    shown: dict[str, TraitObservation] = field(default_factory=dict)
    metrics: Metrics = field(default_factory=Metrics)
    name_variants: tuple[NameVariant, ...] = ()


@dataclass
class State:
    profiles: dict[str, FakeProfile] = field(default_factory=dict)
    merged: dict[str, str] = field(default_factory=dict)  # merged-away id -> survivor
    erased: set[str] = field(default_factory=set)
    claimed: set[Ref] = field(default_factory=set)
    traits: list[tuple[str, Ref, TraitObservation]] = field(default_factory=list)
    records: dict[Ref, tuple[str, Provenance]] = field(default_factory=dict)
    identifiers: dict[str, list[IdentifierObservation]] = field(default_factory=dict)
    events: dict[Ref, tuple[str, EventFact]] = field(default_factory=dict)
    consents: dict[str, dict[str, Consent]] = field(default_factory=dict)
    # (customer, statement, stated for, record it came with)
    history: list[tuple[str, Consent, str | None, Ref | None]] = field(default_factory=list)
    changes: set[str] = field(default_factory=set)
    outbox: list[tuple[str, str, bytes]] = field(default_factory=list)


class FakeEvents:
    def __init__(self, unit: FakeUnit) -> None:
        self.u = unit
        self.s = unit.s
        self.created: set[str] = set()
        self.filled: set[str] = set()  # (no customer import folds here)

    async def insert_event(self, customer_id: str, event: EventFact) -> bool:
        return bool(await self.insert_events([(customer_id, event)]))

    async def insert_events(self, rows: list[tuple[str, EventFact]]) -> set[tuple[str, str]]:
        new = set()
        for customer_id, event in rows:
            ref = (event.source, event.message_id)
            if ref not in self.s.events:
                self.s.events[ref] = (customer_id, event)
                new.add(ref)
        return new

    async def lock_current_profiles(
        self,
        customer_ids: list[str],
        *,
        with_metrics: bool = True,
        erasure_locked: bool = False,
        filled: str | None = None,
    ) -> tuple[dict[str, str], dict[str, Metrics]]:
        current = {c: self.u.current_unless_erased(c) for c in customer_ids}
        for owner in set(current.values()):
            if owner not in self.s.profiles:
                self.created.add(owner)
            self.u.ensure(owner)
        return current, {o: self.s.profiles[o].metrics for o in current.values()}

    async def save_metrics_many(self, metrics: dict[str, Metrics]) -> dict[str, int]:
        return {c: await self.save_metrics(c, m) for c, m in metrics.items()}

    async def metrics(self, customer_id: str) -> Metrics:
        found = self.s.profiles.get(customer_id)
        return Metrics() if found is None else found.metrics

    async def save_metrics(self, customer_id: str, metrics: Metrics) -> int:
        profile = self.s.profiles[customer_id]
        profile.metrics = metrics
        return self.u.bump(customer_id)

    async def events_of(self, customer_id: str) -> list[EventFact]:
        mine = [e for c, e in self.s.events.values() if c == customer_id]
        return sorted(mine, key=lambda e: (e.occurred_at, e.source, e.message_id))

    async def timeline(
        self, customer_id: str, limit: int, after: tuple[dt.datetime, str, str] | None
    ) -> list[EventFact]:
        newest_first = sorted(
            await self.events_of(customer_id),
            key=lambda e: (e.occurred_at, e.source, e.message_id),
            reverse=True,
        )
        if after is not None:
            newest_first = [
                e for e in newest_first if (e.occurred_at, e.source, e.message_id) < after
            ]
        return newest_first[:limit]

    async def move_events_by_ref(self, target: str, refs: list[tuple[str, str]]) -> None:
        for ref in refs:
            if ref in self.s.events:
                self.s.events[ref] = (target, self.s.events[ref][1])

    async def consents(self, customer_ids: list[str]) -> list[tuple[str, Consent]]:
        return [
            (c, consent)
            for c in customer_ids
            for _, consent in sorted(self.s.consents.get(c, {}).items())
        ]

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
        if history:
            self.s.history.append((customer_id, consent, stated_for, record_ref))
        if current:
            self.s.consents.setdefault(customer_id, {})[consent.channel] = consent

    async def replace_consents(
        self, customer_id: str, consents: list[Consent], drop: list[str]
    ) -> None:
        self.s.consents[customer_id] = {c.channel: c for c in consents}
        for gone in drop:
            self.s.consents.pop(gone, None)

    async def consent_history(self, customer_id: str) -> list[Consent]:
        return [c for owner, c, _, _ in self.s.history if owner == customer_id]

    async def move_consent_statements(
        self, source: str, target: str, events: list[tuple[str, str]], stated_for: list[str]
    ) -> None:
        self.s.history = [
            (target, c, f, r)
            if owner == source and ((r is not None and r in events) or f in stated_for)
            else (owner, c, f, r)
            for owner, c, f, r in self.s.history
        ]

    async def set_consents(self, customer_id: str, standing: list[Consent]) -> None:
        self.s.consents[customer_id] = {c.channel: c for c in standing}


class FakeQueries:
    async def search(self, filters: dict[str, str], after: str | None, limit: int) -> list[str]:
        raise NotImplementedError("search is SQL (tests/e2e)")

    async def changed_since(
        self, since: dt.datetime | None, after: str | None, limit: int
    ) -> list[str]:
        raise NotImplementedError("the change stream is SQL (tests/e2e)")


class FakeUnit:
    def __init__(self, state: State, now: dt.datetime) -> None:
        self.s = state
        self.now = now
        self._events = FakeEvents(self)
        self._queries = FakeQueries()

    @property
    def events(self) -> ProfileEvents:
        return self._events

    @property
    def queries(self) -> ProfileQueries:
        return self._queries

    # -- helpers
    def follow(self, customer_id: str) -> str:
        while customer_id in self.s.merged:
            customer_id = self.s.merged[customer_id]
        return customer_id

    def current_unless_erased(self, customer_id: str) -> str:
        current = self.follow(customer_id)
        for named in (customer_id, current):
            if named in self.s.erased:
                raise CustomerErased(named)
        return current

    def ensure(self, customer_id: str) -> FakeProfile:
        if customer_id not in self.s.profiles:
            self.s.profiles[customer_id] = FakeProfile(self.now, self.now)
        return self.s.profiles[customer_id]

    def bump(self, customer_id: str) -> int:
        profile = self.s.profiles[customer_id]
        profile.version += 1
        profile.updated_at = self.now
        return profile.version

    # -- records and shown values
    async def lock_current_profile(self, customer_id: str) -> str:
        current, _ = await self._events.lock_current_profiles([customer_id])
        return current[customer_id]

    async def lock_profile(self, customer_id: str) -> None:
        self.ensure(customer_id)

    async def claim_and_observe(self, app: RecordApplication) -> bool:
        ref = (app.source, app.message_id)
        if ref in self.s.claimed:
            return False
        self.s.claimed.add(ref)
        owner = app.customer_id
        self.s.records[ref] = (owner, app.provenance)
        self.s.traits.extend((owner, ref, t) for t in app.traits)
        known = self.s.identifiers.setdefault(owner, [])
        for ident in app.identifiers:
            if not any(
                (i.type, i.namespace, i.value) == (ident.type, ident.namespace, ident.value)
                for i in known
            ):
                known.append(ident)
        return True

    async def claim_and_observe_many(self, apps: list[RecordApplication]) -> list[bool]:
        return [await self.claim_and_observe(app) for app in apps]

    async def observations(self, customer_id: str, fields: Iterable[str]) -> list[TraitObservation]:
        wanted = set(fields)
        return [t for c, _, t in self.s.traits if c == customer_id and t.field in wanted]

    async def observations_many(
        self, wanted: list[tuple[str, Iterable[str]]]
    ) -> list[list[TraitObservation]]:
        return [await self.observations(c, fields) for c, fields in wanted]

    async def all_observations(self, customer_id: str) -> list[TraitObservation]:
        return [t for c, _, t in self.s.traits if c == customer_id]

    async def observations_with_records(
        self, customer_id: str
    ) -> list[tuple[TraitObservation, tuple[str, str]]]:
        return [(t, ref) for c, ref, t in self.s.traits if c == customer_id]

    def _show(
        self,
        customer_id: str,
        shown: dict[str, TraitObservation],
        names: NameIndex | None,
        *,
        replace_all: bool,
    ) -> int:
        profile = self.s.profiles[customer_id]
        profile.shown = dict(shown) if replace_all else {**profile.shown, **shown}
        if names is not None:
            kept = (
                ()
                if replace_all
                else tuple(v for v in profile.name_variants if v.field not in names.fields)
            )
            profile.name_variants = kept + names.variants
        return self.bump(customer_id)

    async def update_shown(
        self, customer_id: str, shown: dict[str, TraitObservation], names: NameIndex | None
    ) -> int:
        return self._show(customer_id, shown, names, replace_all=False)

    async def update_shown_many(self, updates: list[ShownUpdate]) -> list[int]:
        return [await self.update_shown(c, shown, names) for c, shown, names in updates]

    async def replace_shown(
        self, customer_id: str, shown: dict[str, TraitObservation], names: NameIndex
    ) -> int:
        return self._show(customer_id, shown, names, replace_all=True)

    async def versions(self, customer_ids: Iterable[str]) -> dict[str, int]:
        return {c: self.s.profiles[c].version for c in customer_ids if c in self.s.profiles}

    async def version(self, customer_id: str) -> int:
        return self.s.profiles[customer_id].version

    async def load(self, customer_id: str) -> ProfileView | None:
        profile = self.s.profiles.get(customer_id)
        if profile is None:
            return None
        sources: dict[tuple[str, str], list[dt.datetime]] = {}
        for owner, provenance in self.s.records.values():
            if owner == customer_id:
                key = (provenance.source, provenance.channel)
                sources.setdefault(key, []).append(provenance.observed_at)
        return ProfileView(
            customer_id=customer_id,
            shown=dict(profile.shown),
            identifiers=tuple(self.s.identifiers.get(customer_id, [])),
            sources=tuple(
                SourceSummary(src, channel, min(seen), max(seen), len(seen))
                for (src, channel), seen in sorted(sources.items())
            ),
            created_at=profile.created_at,
            updated_at=profile.updated_at,
            version=profile.version,
            metrics=profile.metrics,
            consents=tuple(c for _, c in sorted(self.s.consents.get(customer_id, {}).items())),
            name_variants=profile.name_variants,
        )

    async def current_id(self, customer_id: str) -> str:
        return self.follow(customer_id)

    # -- identity's changes
    async def change_applied(self, change_id: str) -> bool:
        return change_id in self.s.changes

    async def claim_change(self, change_id: str) -> bool:
        if change_id in self.s.changes:
            return False
        self.s.changes.add(change_id)
        return True

    async def merge_into(self, survivor: str, merged: list[str]) -> None:
        for customer_id in [survivor, *merged]:
            self.ensure(customer_id)
        gone = set(merged)
        for customer_id in merged:
            self.s.merged[customer_id] = survivor
        for customer_id, into in list(self.s.merged.items()):
            if into in gone:
                self.s.merged[customer_id] = survivor
        self.s.traits = [(survivor if c in gone else c, r, t) for c, r, t in self.s.traits]
        self.s.records = {
            r: (survivor if c in gone else c, p) for r, (c, p) in self.s.records.items()
        }
        self.s.events = {
            r: (survivor if c in gone else c, e) for r, (c, e) in self.s.events.items()
        }
        kept = self.s.identifiers.setdefault(survivor, [])
        for customer_id in merged:
            for ident in self.s.identifiers.pop(customer_id, []):
                if ident not in kept:
                    kept.append(ident)
            self.s.profiles.pop(customer_id, None)

    async def merged_away_into(self, customer_ids: list[str]) -> list[str]:
        return sorted(c for c, s in self.s.merged.items() if s in customer_ids)

    async def merged_into(self, customer_id: str) -> list[str]:
        return await self.merged_away_into([customer_id])

    async def redirect(self, customer_ids: list[str], to: str) -> None:
        for customer_id in customer_ids:
            self.s.merged[customer_id] = to

    async def move_records(self, target: str, refs: list[tuple[str, str]]) -> None:
        moving = set(refs)
        self.s.traits = [(target if r in moving else c, r, t) for c, r, t in self.s.traits]
        self.s.records = {
            r: (target if r in moving else c, p) for r, (c, p) in self.s.records.items()
        }

    async def rebuild_sources(self, customer_id: str) -> None:
        pass  # sources are derived from the records on load

    async def replace_identifiers(
        self, customer_id: str, identifiers: list[IdentifierObservation]
    ) -> None:
        self.s.identifiers[customer_id] = list(identifiers)

    # -- erasure
    async def erased_among(self, customer_ids: Iterable[str]) -> set[str]:
        return set(customer_ids) & self.s.erased

    async def record_refs(self, customer_id: str) -> list[tuple[str, str]]:
        return sorted(r for r, (c, _) in self.s.records.items() if c == customer_id)

    async def erase(
        self, customer_ids: list[str], receipt_id: str, values: list[str]
    ) -> dict[str, int]:
        raise NotImplementedError("erasure is SQL with its locks and receipts (tests/e2e)")

    async def save_receipt(
        self,
        receipt_id: str,
        customer_id: str,
        customer_ids: list[str],
        actor: str,
        reason: str,
        counts: dict[str, int],
    ) -> dt.datetime:
        raise NotImplementedError("erasure receipts are SQL (tests/e2e)")

    async def receipt(self, receipt_id: str | None, customer_id: str | None) -> Any:
        raise NotImplementedError("erasure receipts are SQL (tests/e2e)")

    # -- the outbox
    async def report_contact_failure(self, customer_id: str, event: EventFact) -> None:
        payload = contact_failure_payload(event)
        if payload is not None:
            self.s.outbox.append((CONTACT_FAILED_TOPIC, customer_id, payload))

    async def announce(self, customer_id: str, change: ProfileChanged) -> None:
        self.s.outbox.append((CHANGED_TOPIC, customer_id, change.payload()))

    async def enqueue_many(
        self, topic: str, messages: list[tuple[str, bytes, dict[str, str]]]
    ) -> None:
        self.s.outbox.extend((topic, key, payload) for key, payload, _ in messages)


class FakeProfileStore:
    """Transactions commit on success and leave nothing behind on error; ``reader`` reads the
    committed state."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now
        self.state = State()
        # Transactions still to lose a deadlock at commit (PostgreSQL rolls the loser back).
        self.deadlocks = 0

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[ProfileUnit]:
        working = copy.deepcopy(self.state)
        yield FakeUnit(working, self.now)
        if self.deadlocks:
            self.deadlocks -= 1
            raise psycopg.errors.DeadlockDetected("deadlock detected")
        self.state = working  # reached only when the block raised nothing

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[ProfileUnit]:
        yield FakeUnit(copy.deepcopy(self.state), self.now)

    def announcements(self, topic: str = CHANGED_TOPIC) -> list[tuple[str, dict[str, Any]]]:
        return [(key, json.loads(p)) for t, key, p in self.state.outbox if t == topic]


@dataclass
class FakeDirectory:
    """Identity's answers: who holds an identifier, where a merged-away id went, what
    identifiers a customer has (type, value, namespace, source, first seen)."""

    owners: dict[tuple[str, str, str], str] = field(default_factory=dict)
    survivors: dict[str, str] = field(default_factory=dict)
    linked: dict[str, list[tuple[str, str, str, str, dt.datetime]]] = field(default_factory=dict)

    async def customer_for_identifier(self, id_type: str, value: str, namespace: str) -> str:
        found = self.owners.get((id_type, value, namespace))
        if found is None:
            raise NotFound("no customer has this identifier")
        return found

    async def current_customer_id(self, customer_id: str) -> str:
        return self.survivors.get(customer_id, customer_id)

    async def identifiers_of(
        self, customer_id: str
    ) -> list[tuple[str, str, str, str, dt.datetime]]:
        return list(self.linked.get(customer_id, []))


def _conforms(store: FakeProfileStore, directory: FakeDirectory) -> tuple[object, object]:
    checked: tuple[ProfileRepository, CustomerDirectory] = (store, directory)  # mypy checks
    return checked
