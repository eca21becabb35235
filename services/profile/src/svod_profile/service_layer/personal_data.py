"""A person's right of access and right to be forgotten, across every service."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from svod_profile.domain.consents import Consent
from svod_profile.domain.events import EventFact
from svod_profile.domain.model import ProfileView, TraitObservation
from svod_profile.service_layer.ports import (
    CustomerDirectory,
    PeerExport,
    PersonalDataHolders,
    ProfileRepository,
)
from svod_runtime import bounds
from svod_runtime.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    ViolationCollector,
)
from svod_runtime.ids import parse_customer_id

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ErasureReceipt:
    receipt_id: str
    erased_at: dt.datetime
    counts: dict[str, int]


@dataclass(frozen=True)
class StoredReceipt:
    receipt_id: str
    customer_id: str
    customer_ids: list[str]
    erased_at: dt.datetime
    actor: str
    reason: str
    counts: dict[str, int]


@dataclass(frozen=True)
class PersonalDataExport:
    profile: ProfileView
    events: list[EventFact]
    records: list[tuple[str, str]]
    # (observation, its record's (source, message id)), oldest first.
    observations: list[tuple[TraitObservation, tuple[str, str]]] = field(default_factory=list)
    consent_history: list[Consent] = field(default_factory=list)
    # What identity, segmentation and quality hold (None when no peers are configured).
    peers: PeerExport | None = None


class PersonalData:
    def __init__(
        self,
        store: ProfileRepository,
        directory: CustomerDirectory,
        holders: PersonalDataHolders | None,
        get_by_id: Callable[[str], Awaitable[ProfileView]],
    ) -> None:
        self.store = store
        self.directory = directory
        self.holders = holders
        self.get_by_id = get_by_id

    async def export(self, customer_id: str) -> PersonalDataExport:
        """Everything Svod holds about the person: the profile and what it was made of here,
        and what identity, segmentation and quality hold."""
        view = await self.get_by_id(customer_id)
        async with self.store.transaction() as tx:
            events = await tx.events.events_of(view.customer_id)
            records = await tx.record_refs(view.customer_id)
            observations = await tx.observations_with_records(view.customer_id)
            consents = await tx.events.consent_history(view.customer_id)
        events.sort(key=lambda e: (e.occurred_at, e.source, e.message_id), reverse=True)
        peers = await self.holders.export(view.customer_id) if self.holders else None
        return PersonalDataExport(view, events, records, observations, consents, peers)

    async def erase(self, customer_id: str, actor: str, reason: str) -> ErasureReceipt:
        """Erases the person everywhere: ingestion payloads, identity, segments, quality,
        profile; tombstones every id of theirs so that late messages are dropped.

        Ingestion goes first: its deliveries running now finish, and messages not delivered
        yet that carry the person's identifiers are dropped, so that nothing reaches identity
        or profile about them once they are erased there. Every step is repeatable, so a call
        that failed half-way can simply be made again (an erased id is found by its receipt).
        """
        parse_customer_id(customer_id, "customer_id")
        if not actor:
            raise InvalidArgument([FieldViolation("actor", "required: who asked for erasure")])
        # Checked here, before any service erases anything: a reason the peers refuse must
        # not leave the person half erased.
        errors = ViolationCollector()
        bounds.check_text(actor, "actor", bounds.MAX_ACTOR, errors)
        bounds.check_text(reason, "reason", bounds.MAX_REASON, errors)
        errors.raise_if_any()
        if self.holders is None:
            raise FailedPrecondition("erasure is not configured in this deployment")
        current, identifiers = await self._who(customer_id)
        async with self.store.transaction() as tx:
            local_ids = [current, *await tx.merged_into(current)]
            profile_refs = sorted({r for c in local_ids for r in await tx.record_refs(c)})
            view = await tx.load(current)
        contacts = sorted(
            {(t, v, n) for t, v, n in identifiers}
            | {(i.type, i.value, i.namespace) for i in (view.identifiers if view else ())}
        )
        payloads = await self.holders.erase_payloads(profile_refs, contacts)
        erased = await self.holders.erase_identity(current, actor, reason)
        payloads += await self.holders.erase_payloads(
            sorted(set(erased.refs) - set(profile_refs)), []
        )
        ids = sorted({*local_ids, *erased.customer_ids})
        memberships = 0
        quality = 0
        for erased_id in ids:
            memberships += await self.holders.erase_memberships(erased_id) or 0
            quality += await self.holders.erase_quality_facts(erased_id, contacts)
        receipt_id = str(uuid.uuid4())
        async with self.store.transaction() as tx:
            counts = await tx.erase(ids, receipt_id, [v for _, v, _ in contacts])
            counts.update(
                {
                    "identity.identifiers": erased.identifier_count,
                    "identity.records": len(erased.refs),
                    "ingestion.payloads": payloads,
                    "segmentation.memberships": memberships,
                    "quality.records": quality,
                }
            )
            erased_at = await tx.save_receipt(receipt_id, current, ids, actor, reason, counts)
        log.info("customer erased", extra={"receipt_id": receipt_id, "customer_ids": len(ids)})
        return ErasureReceipt(receipt_id, erased_at, counts)

    async def _who(self, customer_id: str) -> tuple[str, list[tuple[str, str, str]]]:
        """The customer's current id and the identifiers identity holds for it; for a customer
        erased before (a repeated request), the id its receipt names and no identifiers."""
        try:
            current = await self.directory.current_customer_id(customer_id)
            found = await self.directory.identifiers_of(current)
        except NotFound:
            async with self.store.reader() as tx:
                receipt = await tx.receipt(None, customer_id)
            if receipt is None:
                raise
            return str(receipt.customer_id), []
        return current, [(t, v, n) for t, v, n, _, _ in found]

    async def receipt(self, receipt_id: str, customer_id: str) -> StoredReceipt:
        """A receipt by its id or by any id of the customer it erased."""
        if receipt_id:
            parse_customer_id(receipt_id, "receipt_id")
        elif customer_id:
            parse_customer_id(customer_id, "customer_id")
        else:
            raise InvalidArgument([FieldViolation("key", "give a receipt_id or a customer_id")])
        async with self.store.reader() as tx:
            row = await tx.receipt(receipt_id or None, customer_id or None)
        if row is None:
            raise NotFound("no erasure receipt for it")
        return StoredReceipt(
            receipt_id=str(row.receipt_id),
            customer_id=str(row.customer_id),
            customer_ids=[str(c) for c in row.customer_ids],
            erased_at=row.erased_at,
            actor=row.actor,
            reason=row.reason,
            counts=dict(row.counts),
        )
