"""Profile use cases."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Protocol

from svod_profile.adapters.storage import ProfileStore, ProfileTransaction
from svod_profile.domain.consents import (
    CHANNELS,
    OPTED_IN,
    OPTED_OUT,
    Consent,
    consent_from_event,
    merge_consents,
    supersedes,
)
from svod_profile.domain.events import EventFact, fold
from svod_profile.domain.events import apply_event as apply_metrics
from svod_profile.domain.model import (
    IdentifierObservation,
    ProfileView,
    Provenance,
    RecordApplication,
)
from svod_profile.domain.paging import (
    decode_key_token,
    decode_timeline_token,
    encode_key_token,
    encode_timeline_token,
)
from svod_profile.domain.survivorship import SurvivorshipRules, shown_values
from svod_profile.service_layer.event_batcher import EventBatcher
from svod_runtime.errors import FieldViolation, InvalidArgument, NotFound, ViolationCollector

MAX_BATCH = 1000
STREAM_BATCH = 500


class CustomerDirectory(Protocol):
    """Who an identifier belongs to: the identity service's answer."""

    async def customer_for_identifier(self, id_type: str, value: str, namespace: str) -> str: ...

    async def current_customer_id(self, customer_id: str) -> str: ...

    async def identifiers_of(
        self, customer_id: str
    ) -> list[tuple[str, str, str, str, dt.datetime]]: ...


def _require_uuid(value: str, field: str) -> None:
    try:
        uuid.UUID(value)
    except ValueError:
        raise InvalidArgument([FieldViolation(field, "must be a customer id (UUID)")]) from None


class PersonalDataHolders(Protocol):
    """The other services holding a person's data."""

    async def erase_identity(
        self, customer_id: str, actor: str, reason: str
    ) -> tuple[list[tuple[str, str]], int]: ...

    async def erase_payloads(self, refs: list[tuple[str, str]]) -> int: ...

    async def erase_memberships(self, customer_id: str) -> int | None: ...

    async def erase_quality_facts(
        self, customer_id: str, identifiers: list[tuple[str, str, str]]
    ) -> int: ...


@dataclass(frozen=True)
class ErasureReceipt:
    receipt_id: str
    erased_at: dt.datetime
    counts: dict[str, int]


@dataclass(frozen=True)
class PersonalDataExport:
    profile: ProfileView
    events: list[EventFact]
    records: list[tuple[str, str]]


class ProfileService:
    def __init__(
        self,
        store: ProfileStore,
        directory: CustomerDirectory,
        on_announced: Callable[[], None] = lambda: None,
        holders: PersonalDataHolders | None = None,
        survivorship: SurvivorshipRules | None = None,
    ) -> None:
        self.survivorship = survivorship or SurvivorshipRules()
        self.store = store
        self.directory = directory
        self.holders = holders
        self.batcher: EventBatcher | None = None
        # Wakes the local outbox relay after a commit that announced a change.
        self.on_announced = on_announced

    async def apply(self, app: RecordApplication) -> tuple[int, bool]:
        """Applies a record once; returns (profile version, whether anything changed)."""
        errors = ViolationCollector()
        if not app.source:
            errors.add("record_ref.source", "required")
        if not app.message_id:
            errors.add("record_ref.message_id", "required")
        errors.raise_if_any()
        _require_uuid(app.customer_id, "customer_id")
        async with self.store.transaction() as tx:
            # A record resolved just before a merge may arrive after it: follow the merge.
            current = await tx.current_id(app.customer_id)
            if current != app.customer_id:
                app = replace(app, customer_id=current)
            await tx.lock_profile(app.customer_id)
            if not await tx.claim_record(app):
                return await tx.version(app.customer_id), False
            await tx.add_observations(app)
            touched = {t.field for t in app.traits}
            shown = shown_values(await tx.observations(app.customer_id, touched), self.survivorship)
            version = await tx.update_shown(app.customer_id, shown)
            await tx.announce(app.customer_id, {"events": []})
        self.on_announced()
        return version, True

    async def merge(self, change_id: str, survivor: str, merged: list[str]) -> None:
        """Applies identity's merge once: the survivor's profile holds everything."""
        errors = ViolationCollector()
        if not change_id:
            errors.add("change_id", "required")
        if not merged:
            errors.add("merge.merged_customer_ids", "at least one")
        if survivor in merged:
            errors.add("merge.merged_customer_ids", "must not contain the survivor")
        errors.raise_if_any()
        for index, customer_id in enumerate([survivor, *merged]):
            _require_uuid(
                customer_id,
                "merge.surviving_customer_id"
                if index == 0
                else f"merge.merged_customer_ids[{index - 1}]",
            )
        async with self.store.transaction() as tx:
            if not await tx.claim_change(change_id):
                return
            held = await tx.events.consents([survivor, *merged])
            await tx.merge_into(survivor, merged)
            await tx.replace_shown(
                survivor, shown_values(await tx.all_observations(survivor), self.survivorship)
            )
            # Metrics are recomputed from all events, as if they had always been one customer's.
            await tx.events.save_metrics(survivor, fold(await tx.events.events_of(survivor)))
            await tx.events.replace_consents(survivor, merge_consents(c for _, c in held), merged)
            await tx.announce(survivor, {"events": [], "merged": merged})
        self.on_announced()

    def enable_batching(self) -> EventBatcher:
        """Routes ApplyEvent through a batcher (its ``run`` must be started as a task)."""
        self.batcher = EventBatcher(
            self.store, self._apply_event_alone, self._record_consent, self.on_announced
        )
        return self.batcher

    async def split(
        self, change_id: str, source: str, target: str, moved: list[tuple[str, str]]
    ) -> None:
        """Applies identity's split once: the moved records' data, and the events whose
        identifiers now belong to the target, go there; both profiles are recomputed."""
        errors = ViolationCollector()
        if not change_id:
            errors.add("change_id", "required")
        if not moved:
            errors.add("split.moved_records", "at least one record")
        if source == target:
            errors.add("split.target_customer_id", "must differ from the source")
        errors.raise_if_any()
        _require_uuid(source, "split.source_customer_id")
        _require_uuid(target, "split.target_customer_id")
        async with self.store.reader() as tx:
            if await tx.change_applied(change_id):
                return
            events = await tx.events.events_of(source)
            known = {
                (i.type, i.namespace, i.value): i.provenance
                for customer in (source, target)
                if (view := await tx.load(customer)) is not None
                for i in view.identifiers
            }
        moving = await self._events_now_of(events, target)
        identifiers = {c: await self._identifiers(c, known) for c in (source, target)}
        async with self.store.transaction() as tx:
            if not await tx.claim_change(change_id):
                return
            await tx.lock_profile(min(source, target))
            await tx.lock_profile(max(source, target))
            await tx.move_records(target, moved)
            await tx.events.move_events_by_ref(target, moving)
            for customer in (source, target):
                await tx.replace_identifiers(customer, identifiers[customer])
                await tx.rebuild_sources(customer)
                await tx.replace_shown(
                    customer, shown_values(await tx.all_observations(customer), self.survivorship)
                )
                await tx.events.save_metrics(customer, fold(await tx.events.events_of(customer)))
                await tx.announce(customer, {"events": []})
        self.on_announced()

    async def _reshow(self, tx: ProfileTransaction, customer_id: str) -> None:
        """Re-runs survivorship over every value the customer has."""
        observations = await tx.all_observations(customer_id)
        await tx.replace_shown(customer_id, shown_values(observations, self.survivorship))

    async def _events_now_of(self, events: list[EventFact], target: str) -> list[tuple[str, str]]:
        """The events whose first identifier identity knows now belongs to ``target``."""
        owners: dict[tuple[str, str, str], str | None] = {}
        moving = []
        for event in events:
            for identifier in event.identifiers:
                if identifier not in owners:
                    try:
                        owners[identifier] = await self.directory.customer_for_identifier(
                            *identifier
                        )
                    except NotFound:
                        owners[identifier] = None
                if owners[identifier] is not None:
                    if owners[identifier] == target:
                        moving.append((event.source, event.message_id))
                    break
        return moving

    async def _identifiers(
        self, customer_id: str, known: dict[tuple[str, str, str], Provenance]
    ) -> list[IdentifierObservation]:
        try:
            linked = await self.directory.identifiers_of(customer_id)
        except NotFound:
            return []
        return [
            IdentifierObservation(
                t, v, n, known.get((t, n, v), Provenance(src, "unspecified", first_seen))
            )
            for t, v, n, src, first_seen in linked
        ]

    async def apply_event(self, customer_id: str, event: EventFact) -> tuple[int, bool]:
        """Applies an event once: metrics step forward, the timeline grows."""
        _require_uuid(customer_id, "customer_id")
        if self.batcher is not None:
            return await self.batcher.submit(customer_id, event)
        return await self._apply_event_alone(customer_id, event)

    async def _apply_event_alone(self, customer_id: str, event: EventFact) -> tuple[int, bool]:
        async with self.store.transaction() as tx:
            customer_id = await tx.current_id(customer_id)
            await tx.lock_profile(customer_id)
            if not await tx.events.insert_event(customer_id, event):
                return await tx.version(customer_id), False
            metrics = apply_metrics(await tx.events.metrics(customer_id), event)
            version = await tx.events.save_metrics(customer_id, metrics)
            opt_out = consent_from_event(event)
            if opt_out is not None:
                await self._record_consent(tx, customer_id, opt_out)
            await tx.report_contact_failure(customer_id, event)
            await tx.announce(customer_id, {"events": [[event.source, event.message_id]]})
        self.on_announced()
        return version, True

    async def update_consent(self, customer_id: str, consent: Consent) -> ProfileView:
        _require_uuid(customer_id, "customer_id")
        errors = ViolationCollector()
        if consent.channel not in CHANNELS:
            errors.add("consent.channel", "required: a known channel")
        if consent.status not in (OPTED_IN, OPTED_OUT):
            errors.add("consent.status", "required")
        if not consent.source:
            errors.add("consent.source", "required")
        errors.raise_if_any()
        current = await self.directory.current_customer_id(customer_id)
        async with self.store.transaction() as tx:
            if await tx.load(current) is None:
                raise NotFound(f"no profile for customer {customer_id}")
            await tx.lock_profile(current)
            await self._record_consent(tx, current, consent)
            await tx.events.save_metrics(current, await tx.events.metrics(current))
            await tx.announce(current, {"events": []})
        self.on_announced()
        return await self.get_by_id(current)

    async def _record_consent(
        self, tx: ProfileTransaction, customer_id: str, consent: Consent
    ) -> None:
        existing = {c.channel: c for _, c in await tx.events.consents([customer_id])}
        stands = supersedes(consent, existing.get(consent.channel))
        await tx.events.record_consent(customer_id, consent, current=stands)

    async def timeline(
        self, customer_id: str, page_size: int, page_token: str
    ) -> tuple[list[EventFact], str]:
        _require_uuid(customer_id, "customer_id")
        size = min(max(page_size or 50, 1), 500)
        after = decode_timeline_token(page_token)
        current = await self.directory.current_customer_id(customer_id)
        async with self.store.transaction() as tx:
            entries = await tx.events.timeline(current, size + 1, after)
        more = len(entries) > size
        entries = entries[:size]
        return entries, encode_timeline_token(entries[-1]) if more else ""

    async def get_by_id(self, customer_id: str) -> ProfileView:
        _require_uuid(customer_id, "customer_id")
        async with self.store.reader() as tx:
            view = await tx.load(customer_id)
        if view is not None:
            return view
        # A merged-away id: identity knows the survivor.
        current = await self.directory.current_customer_id(customer_id)
        async with self.store.transaction() as tx:
            view = await tx.load(current)
        if view is None:
            raise NotFound(f"no profile for customer {customer_id}")
        return view

    async def export(self, customer_id: str) -> PersonalDataExport:
        view = await self.get_by_id(customer_id)
        async with self.store.transaction() as tx:
            events = await tx.events.events_of(view.customer_id)
            records = await tx.record_refs(view.customer_id)
        events.sort(key=lambda e: (e.occurred_at, e.source, e.message_id), reverse=True)
        return PersonalDataExport(view, events, records)

    async def erase(self, customer_id: str, actor: str, reason: str) -> ErasureReceipt:
        """Erases the person everywhere: identity, ingestion payloads, segments, profile.

        Every step is repeatable, so a call that failed half-way can simply be made again.
        """
        _require_uuid(customer_id, "customer_id")
        if not actor:
            raise InvalidArgument([FieldViolation("actor", "required: who asked for erasure")])
        assert self.holders is not None
        current = await self.directory.current_customer_id(customer_id)
        async with self.store.transaction() as tx:
            profile_refs = await tx.record_refs(current)
            view = await tx.load(current)
        contacts = [(i.type, i.value, i.namespace) for i in (view.identifiers if view else ())]
        identity_refs, identifiers = await self.holders.erase_identity(current, actor, reason)
        refs = sorted(set(profile_refs) | set(identity_refs))
        payloads = await self.holders.erase_payloads(refs)
        memberships = await self.holders.erase_memberships(current)
        quality = await self.holders.erase_quality_facts(current, contacts)
        async with self.store.transaction() as tx:
            counts = await tx.erase(current)
            counts.update(
                {
                    "identity.identifiers": identifiers,
                    "identity.records": len(identity_refs),
                    "ingestion.payloads": payloads,
                    "segmentation.memberships": memberships or 0,
                    "quality.records": quality,
                }
            )
            receipt_id = str(uuid.uuid4())
            erased_at = await tx.save_receipt(receipt_id, current, actor, reason, counts)
        return ErasureReceipt(receipt_id, erased_at, counts)

    async def batch_get(self, customer_ids: list[str]) -> tuple[list[ProfileView], list[str]]:
        if len(customer_ids) > MAX_BATCH:
            raise InvalidArgument([FieldViolation("customer_ids", f"at most {MAX_BATCH} per call")])
        for index, customer_id in enumerate(customer_ids):
            _require_uuid(customer_id, f"customer_ids[{index}]")
        found, missing = [], []
        async with self.store.transaction() as tx:
            for customer_id in customer_ids:
                view = await tx.load(await tx.current_id(customer_id))
                if view is None:
                    missing.append(customer_id)
                else:
                    found.append(view)
        return found, missing

    async def search(
        self, filters: dict[str, str], page_size: int, page_token: str
    ) -> tuple[list[ProfileView], str]:
        size = min(max(page_size or 50, 1), 500)
        after = decode_key_token(page_token)
        async with self.store.transaction() as tx:
            ids = await tx.queries.search(filters, after, size + 1)
            views = [v for v in [await tx.load(i) for i in ids[:size]] if v is not None]
        return views, encode_key_token(ids[size - 1]) if len(ids) > size else ""

    async def stream(self, changed_after: dt.datetime | None) -> AsyncIterator[ProfileView]:
        """Every profile (changed after a time), in batches; each batch one short transaction."""
        after: str | None = None
        while True:
            async with self.store.transaction() as tx:
                ids = await tx.queries.changed_since(changed_after, after, STREAM_BATCH)
                views = [v for v in [await tx.load(i) for i in ids] if v is not None]
            for view in views:
                yield view
            if len(ids) < STREAM_BATCH:
                return
            after = ids[-1]

    async def get_by_identifier(self, id_type: str, value: str, namespace: str) -> ProfileView:
        customer_id = await self.directory.customer_for_identifier(id_type, value, namespace)
        async with self.store.reader() as tx:
            view = await tx.load(customer_id)
        if view is None:
            raise NotFound("the customer has no profile yet")
        return view
