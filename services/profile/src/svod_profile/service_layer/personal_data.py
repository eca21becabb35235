"""A person's right of access and right to be forgotten, across every service."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from svod_profile.adapters.storage import ProfileStore
from svod_profile.domain.events import EventFact
from svod_profile.domain.model import ProfileView
from svod_profile.service_layer.ports import CustomerDirectory, PersonalDataHolders
from svod_profile.service_layer.ports import require_uuid as _require_uuid
from svod_runtime import bounds
from svod_runtime.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    ViolationCollector,
)


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


class PersonalData:
    def __init__(
        self,
        store: ProfileStore,
        directory: CustomerDirectory,
        holders: PersonalDataHolders | None,
        get_by_id: Callable[[str], Awaitable[ProfileView]],
    ) -> None:
        self.store = store
        self.directory = directory
        self.holders = holders
        self.get_by_id = get_by_id

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
        # Checked here, before any service erases anything: a reason the peers refuse must
        # not leave the person half erased.
        errors = ViolationCollector()
        bounds.check_text(actor, "actor", bounds.MAX_ACTOR, errors)
        bounds.check_text(reason, "reason", bounds.MAX_REASON, errors)
        errors.raise_if_any()
        if self.holders is None:
            raise FailedPrecondition("erasure is not configured in this deployment")
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
