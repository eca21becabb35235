"""Identity's merges and splits, applied to profiles: data moves, everything is recomputed."""

from __future__ import annotations

import logging
from collections.abc import Callable

from svod_profile.domain.announcements import ProfileChanged, SplitPart
from svod_profile.domain.consents import merge_consents
from svod_profile.domain.events import EventFact, fold
from svod_profile.domain.model import IdentifierObservation, Provenance
from svod_profile.domain.names import NAME_FIELDS, NameIndex
from svod_profile.domain.survivorship import SurvivorshipRules, shown_values
from svod_profile.service_layer.ports import CustomerDirectory, ProfileRepository, ProfileUnit
from svod_runtime.errors import FailedPrecondition, NotFound, ViolationCollector
from svod_runtime.ids import parse_customer_id

log = logging.getLogger(__name__)

# Events one split announcement moves (segmentation takes at most 10,000 per change).
MOVED_EVENTS_PER_ANNOUNCEMENT = 10_000


async def _announce_split(
    tx: ProfileUnit,
    source: str,
    target: str,
    moving: list[tuple[str, str]],
    redirected: list[str],
) -> None:
    """One change for segmentation carrying both sides, so it applies the split in one step
    (a very large split goes in parts of MOVED_EVENTS_PER_ANNOUNCEMENT events)."""
    step = MOVED_EVENTS_PER_ANNOUNCEMENT
    for start in range(0, max(len(moving), 1), step):
        part = SplitPart(source, tuple(moving[start : start + step]))
        await tx.announce(target, ProfileChanged(merged=tuple(redirected), split=part))


class IdentityChanges:
    def __init__(
        self,
        store: ProfileRepository,
        directory: CustomerDirectory,
        survivorship: SurvivorshipRules,
        on_announced: Callable[[], None],
    ) -> None:
        self.store = store
        self.directory = directory
        self.survivorship = survivorship
        self.on_announced = on_announced

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
            parse_customer_id(
                customer_id,
                "merge.surviving_customer_id"
                if index == 0
                else f"merge.merged_customer_ids[{index - 1}]",
            )
        async with self.store.transaction() as tx:
            if not await tx.claim_change(change_id):
                return
            erased = await tx.erased_among([survivor, *merged])
            merged = [m for m in merged if m not in erased]
            if survivor in erased or not merged:
                # A late announcement about an erased customer: dropped (and counted).
                log.info("merge for an erased customer dropped", extra={"change_id": change_id})
                return
            await tx.merge_into(survivor, merged)
            # Read once the merge holds every profile's lock (consents are not moved by it).
            held = await tx.events.consents([survivor, *merged])
            await self._reshow(tx, survivor)
            # Metrics are recomputed from all events, as if they had always been one customer's.
            await tx.events.save_metrics(survivor, fold(await tx.events.events_of(survivor)))
            await tx.events.replace_consents(survivor, merge_consents(c for _, c in held), merged)
            await tx.announce(survivor, ProfileChanged(merged=tuple(merged)))
        self.on_announced()

    async def split(
        self, change_id: str, source: str, target: str, moved: list[tuple[str, str]]
    ) -> None:
        """Applies identity's split once: the moved records' data, the events whose
        identifiers now belong to the target, the consents given with them or for ids that are
        the target's now, go there; merged-away ids follow identity's redirect; both profiles
        are recomputed. Segmentation hears of it as one change (see ``_announce_split``)."""
        errors = ViolationCollector()
        if not change_id:
            errors.add("change_id", "required")
        if not moved:
            errors.add("split.moved_records", "at least one record")
        if source == target:
            errors.add("split.target_customer_id", "must differ from the source")
        errors.raise_if_any()
        parse_customer_id(source, "split.source_customer_id")
        parse_customer_id(target, "split.target_customer_id")
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
            merged_away = await tx.merged_away_into([source, target])
        moving = await self._events_now_of(events, target)
        identifiers = {c: await self._identifiers(c, known) for c in (source, target)}
        redirected = await self._now_answering_for(target, [m for m in merged_away if m != target])
        async with self.store.transaction() as tx:
            if not await tx.claim_change(change_id):
                return
            if await tx.erased_among([source, target]):
                log.info("split of an erased customer dropped", extra={"change_id": change_id})
                return
            await tx.lock_profile(min(source, target))
            await tx.lock_profile(max(source, target))
            await tx.redirect(redirected, target)
            await tx.move_records(target, moved)
            await tx.events.move_events_by_ref(target, moving)
            await tx.events.move_consent_statements(source, target, moving, [target, *redirected])
            for customer in (source, target):
                await tx.replace_identifiers(customer, identifiers[customer])
                await tx.rebuild_sources(customer)
                await self._reshow(tx, customer)
                await tx.events.save_metrics(customer, fold(await tx.events.events_of(customer)))
                history = await tx.events.consent_history(customer)
                await tx.events.set_consents(customer, merge_consents(history))
            await _announce_split(tx, source, target, moving, redirected)
        self.on_announced()

    async def _now_answering_for(self, target: str, merged_away: list[str]) -> list[str]:
        """The merged-away ids identity now resolves to ``target`` (their records went there)."""
        redirected = []
        for customer_id in merged_away:
            try:
                if await self.directory.current_customer_id(customer_id) == target:
                    redirected.append(customer_id)
            except NotFound:
                continue
        return redirected

    async def _reshow(self, tx: ProfileUnit, customer_id: str) -> None:
        """Re-runs survivorship over every value the customer has."""
        observations = await tx.all_observations(customer_id)
        await tx.replace_shown(
            customer_id,
            shown_values(observations, self.survivorship),
            NameIndex.of(NAME_FIELDS, observations),
        )

    async def _events_now_of(self, events: list[EventFact], target: str) -> list[tuple[str, str]]:
        """The events whose identifiers now name ``target`` and nobody else (as ingestion
        attributes events: an identifier shared by several customers or blocked names
        nobody)."""
        owners: dict[tuple[str, str, str], str | None] = {}
        moving = []
        for event in events:
            named = set()
            for identifier in event.identifiers:
                if identifier not in owners:
                    try:
                        owners[identifier] = await self.directory.customer_for_identifier(
                            *identifier
                        )
                    except (NotFound, FailedPrecondition):
                        owners[identifier] = None
                if owners[identifier] is not None:
                    named.add(owners[identifier])
            if named == {target}:
                moving.append((event.source, event.message_id))
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
