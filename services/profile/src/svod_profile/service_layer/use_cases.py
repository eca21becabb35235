"""Profile use cases."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace

from svod_profile.domain.announcements import CHANGED_NO_EVENTS, CHANGED_TOPIC, ProfileChanged
from svod_profile.domain.consents import (
    CHANNELS,
    CLOCK_TOLERANCE,
    Consent,
    ConsentStatus,
    consent_from_event,
    supersedes,
    too_far_ahead,
)
from svod_profile.domain.events import EventFact
from svod_profile.domain.events import apply_event as apply_metrics
from svod_profile.domain.model import (
    ProfileView,
    RecordApplication,
)
from svod_profile.domain.names import NAME_FIELDS, NameIndex
from svod_profile.domain.paging import (
    decode_key_token,
    decode_timeline_token,
    encode_key_token,
    encode_timeline_token,
)
from svod_profile.domain.survivorship import SurvivorshipRules, shown_values
from svod_profile.service_layer.event_batcher import EventBatcher
from svod_profile.service_layer.identity_changes import IdentityChanges
from svod_profile.service_layer.personal_data import PersonalData
from svod_profile.service_layer.ports import (
    CustomerDirectory,
    PersonalDataHolders,
    ProfileRepository,
    ProfileUnit,
)
from svod_runtime import bounds
from svod_runtime.custom_attributes import EXPECTED as ATTRIBUTE_EXPECTED
from svod_runtime.custom_attributes import AttributeType
from svod_runtime.custom_attributes import normalize as normalize_attribute
from svod_runtime.errors import (
    FieldViolation,
    InvalidArgument,
    NotFound,
    SvodError,
    ViolationCollector,
)
from svod_runtime.ids import parse_customer_id
from svod_runtime.priority import step_aside
from svod_runtime.telemetry import continuing
from svod_runtime.transactions import run_in_transaction

MAX_BATCH = 1000
# Records of an ApplyBatch per transaction: large enough that BEGIN/COMMIT and the
# announcement are shared, small enough that a chunk failing (and redone one by one) is cheap.
APPLY_CHUNK = 100
# Chunks of an ApplyBatch written at once: while one waits on the database another is prepared
# (the event batcher's reasoning; it writes four too).
APPLY_TRANSACTIONS = 4
# Timeline and search pages: 50 by default, at most 500 (larger sizes are served as 500).
DEFAULT_PAGE = 50
MAX_PAGE = 500
STREAM_BATCH = 500
ATTRIBUTE_FIELD = "attributes."
# Fields whose shown values depend on each other, so they are chosen together.
READ_TOGETHER = frozenset({"first_name", "gender"})


def read_together(fields: set[str]) -> set[str]:
    """``fields`` (changed in place) with the rest of READ_TOGETHER when it holds one of
    them: the gender reads the first name (Саша)."""
    if fields & READ_TOGETHER:
        fields |= READ_TOGETHER
    return fields


Clock = Callable[[], dt.datetime]
log = logging.getLogger(__name__)


def _by_customer_chunks(
    items: list[tuple[int, RecordApplication, dict[str, str]]], size: int
) -> list[list[tuple[int, RecordApplication, dict[str, str]]]]:
    """Chunks of about ``size`` items that keep each customer's items together, in order."""
    by_customer: dict[str, list[tuple[int, RecordApplication, dict[str, str]]]] = {}
    for item in items:
        by_customer.setdefault(item[1].customer_id, []).append(item)
    chunks: list[list[tuple[int, RecordApplication, dict[str, str]]]] = []
    current: list[tuple[int, RecordApplication, dict[str, str]]] = []
    for group in by_customer.values():
        if current and len(current) + len(group) > size:
            chunks.append(current)
            current = []
        current += group
    if current:
        chunks.append(current)
    return chunks


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ProfileService:
    def __init__(
        self,
        store: ProfileRepository,
        directory: CustomerDirectory,
        on_announced: Callable[[], None] = lambda: None,
        holders: PersonalDataHolders | None = None,
        survivorship: SurvivorshipRules | None = None,
        clock: Clock = utc_now,
        attribute_types: Mapping[str, AttributeType] | None = None,
    ) -> None:
        self.clock = clock
        # Declared custom attributes (SVOD_CUSTOM_ATTRIBUTES): stored in canonical form.
        self.attribute_types = dict(attribute_types or {})
        self.survivorship = survivorship or SurvivorshipRules()
        self.store = store
        self.directory = directory
        self.holders = holders
        self.batcher: EventBatcher | None = None
        # Wakes the local outbox relay after a commit that announced a change.
        self.on_announced = on_announced
        self.identity_changes = IdentityChanges(store, directory, self.survivorship, on_announced)
        self.personal_data = PersonalData(store, directory, holders, self.get_by_id)

    async def apply(self, app: RecordApplication) -> tuple[int, bool]:
        """Applies a record once; returns (profile version, whether anything changed)."""
        return await self._apply_checked(self._checked(app))

    def _checked(self, app: RecordApplication) -> RecordApplication:
        """The record with its declared attributes typed; INVALID_ARGUMENT when it is bad."""
        errors = ViolationCollector()
        if not app.source:
            errors.add("record_ref.source", "required")
        if not app.message_id:
            errors.add("record_ref.message_id", "required")
        app = self._typed_attributes(app, errors)
        errors.raise_if_any()
        parse_customer_id(app.customer_id, "customer_id")
        return app

    # What a customer import's fold checks each record with (service_layer/customer_import.py).
    checked = _checked

    async def _apply_checked(self, app: RecordApplication) -> tuple[int, bool]:
        async def work(tx: ProfileUnit) -> tuple[int, bool]:
            # A record resolved just before a merge may arrive after it: follow the merge.
            current = await tx.lock_current_profile(app.customer_id)
            mine = app if current == app.customer_id else replace(app, customer_id=current)
            if not await tx.claim_and_observe(mine):
                return await tx.version(mine.customer_id), False
            touched = {t.field for t in mine.traits}
            version = await self._show(tx, mine.customer_id, touched)
            await tx.announce(mine.customer_id, ProfileChanged())
            return version, True

        # The last resort of a batch that failed (one record at a time): a lost deadlock is
        # run again rather than answered with an error.
        version, changed = await run_in_transaction(self.store.transaction, work)
        if changed:
            self.on_announced()
        return version, changed

    async def _show(self, tx: ProfileUnit, customer_id: str, touched: set[str]) -> int:
        """Recomputes the shown values of the ``touched`` fields from every observation."""
        observations = await tx.observations(customer_id, read_together(touched))
        shown = shown_values(observations, self.survivorship)
        names = NameIndex.of(touched, observations) if touched & set(NAME_FIELDS) else None
        return await tx.update_shown(customer_id, shown, names)

    async def apply_many(
        self, items: list[tuple[RecordApplication, dict[str, str]]]
    ) -> list[tuple[int, bool] | SvodError]:
        """Applies records (with the trace carrier each continues) as ``apply`` does each;
        answers each in order with (version, changed) or its own refusal.

        Records are applied in transactions of up to APPLY_CHUNK, a customer's records all in
        the same one and in the order given (so a customer's later record wins as it would
        one call at a time). A transaction costs one claim statement per record and one
        survivorship read and write per customer, instead of a transaction of six statements
        per record. A chunk that fails as a whole (an erased customer, a lost race) is applied
        again one record at a time, so each record gets its own answer.
        """
        outcomes: list[tuple[int, bool] | SvodError | None] = [None] * len(items)
        valid: list[tuple[int, RecordApplication, dict[str, str]]] = []
        for index, (app, carrier) in enumerate(items):
            try:
                valid.append((index, self._checked(app), carrier))
            except SvodError as error:
                outcomes[index] = error
        slots = asyncio.Semaphore(APPLY_TRANSACTIONS)

        async def apply_chunk(chunk: list[tuple[int, RecordApplication, dict[str, str]]]) -> None:
            async with slots:
                try:
                    results = await self._apply_chunk(chunk)
                except Exception as error:  # noqa: BLE001 - each record then gets its own answer
                    log.info("record batch of %d failed (%s); one by one", len(chunk), type(error))
                    for index, app, carrier in chunk:
                        try:
                            with continuing(carrier):
                                outcomes[index] = await self._apply_checked(app)
                        except SvodError as refusal:
                            outcomes[index] = refusal
                    return
            for (index, _, _), result in zip(chunk, results, strict=True):
                outcomes[index] = result

        # Chunks hold different customers, so they may commit in any order.
        await asyncio.gather(*map(apply_chunk, _by_customer_chunks(valid, APPLY_CHUNK)))
        announced = any(isinstance(o, tuple) and o[1] for o in outcomes)
        if announced:
            self.on_announced()
        return [o for o in outcomes if o is not None]

    async def _apply_chunk(
        self, chunk: list[tuple[int, RecordApplication, dict[str, str]]]
    ) -> list[tuple[int, bool]]:
        """One transaction for a chunk, in four round trips after the locks: the records'
        claims, the changed customers' observations, their shown values, the announcements."""
        async with self.store.transaction() as tx:
            current, _ = await tx.events.lock_current_profiles(
                sorted({app.customer_id for _, app, _ in chunk})
            )
            owners = [current[app.customer_id] for _, app, _ in chunk]
            claimed = await tx.claim_and_observe_many(
                [replace(app, customer_id=o) for (_, app, _), o in zip(chunk, owners, strict=True)]
            )
            touched: dict[str, set[str]] = {}
            carriers: dict[str, dict[str, str]] = {}
            for (_, app, carrier), owner, is_new in zip(chunk, owners, claimed, strict=True):
                if is_new:
                    touched.setdefault(owner, set()).update(t.field for t in app.traits)
                    carriers.setdefault(owner, carrier)
            for fields in touched.values():
                read_together(fields)
            changed = list(touched)
            observed = await tx.observations_many([(o, touched[o]) for o in changed])
            updates = []
            for owner, observations in zip(changed, observed, strict=True):
                # A single Apply or GetProfile arriving during a bulk import waited for whole
                # chunks of this (svod_runtime.priority).
                await step_aside()
                fields = touched[owner]
                names = NameIndex.of(fields, observations) if fields & set(NAME_FIELDS) else None
                updates.append((owner, shown_values(observations, self.survivorship), names))
            versions = dict(zip(changed, await tx.update_shown_many(updates), strict=True))
            versions.update(await tx.versions(set(owners) - set(versions)))
            # One announcement per changed customer, continuing its first record's trace.
            await tx.enqueue_many(
                CHANGED_TOPIC,
                [(owner, CHANGED_NO_EVENTS, carriers[owner]) for owner in changed],
            )
        return [(versions[o], c) for o, c in zip(owners, claimed, strict=True)]

    def _typed_attributes(
        self, app: RecordApplication, errors: ViolationCollector
    ) -> RecordApplication:
        """Declared custom attributes in their type's canonical form ("38,5" -> "38.5", "да" ->
        "true"); a value that is not of its type is a violation (``attributes[name]``)."""
        if not self.attribute_types:
            return app
        traits = []
        for trait in app.traits:
            name = trait.field.removeprefix(ATTRIBUTE_FIELD)
            kind = self.attribute_types.get(name) if trait.field != name else None
            if kind is not None:
                canonical = normalize_attribute(kind, trait.value)
                if canonical is None:
                    errors.add(f"attributes[{name}]", f"must be {ATTRIBUTE_EXPECTED[kind]}")
                    continue
                trait = replace(trait, value=canonical)
            traits.append(trait)
        return replace(app, traits=tuple(traits))

    def enable_batching(self) -> EventBatcher:
        """Routes ApplyEvent through a batcher (it writes while callers wait: no task to start)."""
        self.batcher = EventBatcher(
            self.store, self._apply_event_alone, self._record_consent, self.on_announced
        )
        return self.batcher

    async def apply_event(self, customer_id: str, event: EventFact) -> tuple[int, bool]:
        """Applies an event once: metrics step forward, the timeline grows."""
        parse_customer_id(customer_id, "customer_id")
        if self.batcher is not None:
            return await self.batcher.submit(customer_id, event)
        return await self._apply_event_alone(customer_id, event)

    async def apply_events(
        self, items: list[tuple[str, EventFact, dict[str, str]]]
    ) -> list[tuple[int, bool] | Exception]:
        """Applies (customer id, event, trace carrier) items, each once; every item gets its
        (version, changed) or its own error, so one bad event does not fail the others."""
        outcomes: list[tuple[int, bool] | Exception | None] = [None] * len(items)
        accepted: list[int] = []
        for index, (customer_id, _, _) in enumerate(items):
            try:
                parse_customer_id(customer_id, "customer_id")
            except SvodError as error:
                outcomes[index] = error
            else:
                accepted.append(index)
        if self.batcher is not None:
            applied = await self.batcher.submit_many([items[i] for i in accepted])
        else:
            applied = []
            for i in accepted:
                customer_id, event, carrier = items[i]
                with continuing(carrier):
                    try:
                        applied.append(await self._apply_event_alone(customer_id, event))
                    except SvodError as error:
                        applied.append(error)
        for index, outcome in zip(accepted, applied, strict=True):
            outcomes[index] = outcome
        return [o for o in outcomes if o is not None]

    async def _apply_event_alone(self, customer_id: str, event: EventFact) -> tuple[int, bool]:
        async def work(tx: ProfileUnit) -> tuple[int, bool]:
            current = await tx.lock_current_profile(customer_id)
            if not await tx.events.insert_event(current, event):
                return await tx.version(current), False
            metrics = apply_metrics(await tx.events.metrics(current), event)
            version = await tx.events.save_metrics(current, metrics)
            opt_out = consent_from_event(event)
            if opt_out is not None:
                await self._record_consent(
                    tx, current, opt_out, record_ref=(event.source, event.message_id)
                )
            await tx.report_contact_failure(current, event)
            await tx.announce(current, ProfileChanged(events=((event.source, event.message_id),)))
            return version, True

        # As ``_apply_checked``: the batcher's one-by-one path, a lost deadlock runs again.
        version, changed = await run_in_transaction(self.store.transaction, work)
        if changed:
            self.on_announced()
        return version, changed

    async def update_consent(self, customer_id: str, consent: Consent) -> ProfileView:
        parse_customer_id(customer_id, "customer_id")
        errors = ViolationCollector()
        if consent.channel not in CHANNELS:
            errors.add("consent.channel", "required: a known channel")
        if consent.status not in (ConsentStatus.OPTED_IN, ConsentStatus.OPTED_OUT):
            errors.add("consent.status", "required")
        if not consent.source:
            errors.add("consent.source", "required")
        now = self.clock()
        if too_far_ahead(consent.at, now):
            minutes = int(CLOCK_TOLERANCE.total_seconds() // 60)
            errors.add("consent.time", f"more than {minutes} minutes in the future")
        errors.raise_if_any()
        consent = replace(consent, received_at=now)
        current = await self.directory.current_customer_id(customer_id)
        async with self.store.transaction() as tx:
            if await tx.load(current) is None:
                raise NotFound(f"no profile for customer {customer_id}")
            current = await tx.lock_current_profile(current)
            await self._record_consent(tx, current, consent, stated_for=customer_id)
            await tx.events.save_metrics(current, await tx.events.metrics(current))
            await tx.announce(current, ProfileChanged())
        self.on_announced()
        return await self.get_by_id(current)

    async def _record_consent(
        self,
        tx: ProfileUnit,
        customer_id: str,
        consent: Consent,
        *,
        stated_for: str | None = None,
        record_ref: tuple[str, str] | None = None,
    ) -> None:
        """``stated_for``: the customer id the person gave it for (a merged-away id it was
        given for goes along when a split gives that id its own customer again);
        ``record_ref``: the event it came from (it moves with the event)."""
        if consent.received_at is None:
            consent = replace(consent, received_at=self.clock())
        existing = {c.channel: c for _, c in await tx.events.consents([customer_id])}
        stands = supersedes(consent, existing.get(consent.channel))
        await tx.events.record_consent(
            customer_id, consent, current=stands, stated_for=stated_for, record_ref=record_ref
        )

    # What an event import records for an unsubscribe (service_layer/event_import.py).
    record_consent = _record_consent

    async def timeline(
        self, customer_id: str, page_size: int, page_token: str
    ) -> tuple[list[EventFact], str]:
        parse_customer_id(customer_id, "customer_id")
        size = bounds.page_size(page_size, DEFAULT_PAGE, MAX_PAGE)
        after = decode_timeline_token(page_token)
        current = await self.directory.current_customer_id(customer_id)
        async with self.store.transaction() as tx:
            entries = await tx.events.timeline(current, size + 1, after)
        more = len(entries) > size
        entries = entries[:size]
        return entries, encode_timeline_token(entries[-1]) if more else ""

    async def get_by_id(self, customer_id: str) -> ProfileView:
        parse_customer_id(customer_id, "customer_id")
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

    async def batch_get(self, customer_ids: list[str]) -> tuple[list[ProfileView], list[str]]:
        if len(customer_ids) > MAX_BATCH:
            raise InvalidArgument([FieldViolation("customer_ids", f"at most {MAX_BATCH} per call")])
        for index, customer_id in enumerate(customer_ids):
            parse_customer_id(customer_id, f"customer_ids[{index}]")
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
        errors = ViolationCollector()
        for name, value in filters.items():
            bounds.check_text(value, name, bounds.MAX_NAME, errors)
        errors.raise_if_any()
        size = bounds.page_size(page_size, DEFAULT_PAGE, MAX_PAGE)
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
