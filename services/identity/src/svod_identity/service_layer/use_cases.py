"""Identity use cases: each runs in one transaction of the identity store."""

from __future__ import annotations

import uuid

from svod_identity.adapters.storage import IdentityStore
from svod_identity.domain.identifiers import normalize_identifiers
from svod_identity.domain.model import CustomerView, IncomingRecord, Resolution
from svod_identity.domain.resolution import decide_link
from svod_runtime.errors import FieldViolation, InvalidArgument, NotFound


class IdentityService:
    def __init__(self, store: IdentityStore) -> None:
        self.store = store

    async def resolve(self, record: IncomingRecord) -> Resolution:
        """Links a record to a customer; a record seen before returns its current customer."""
        async with self.store.transaction() as tx:
            record_lock = f"record\x1f{record.ref.source}\x1f{record.ref.message_id}"
            await tx.lock([record_lock, *(k.lock_key for k in record.identifiers)])
            existing = await tx.record_customer(record.ref)
            if existing is not None:
                return Resolution(
                    existing, "already_resolved", await tx.record_identifiers(record.ref)
                )
            owners = await tx.owners(record.identifiers)
            decision = decide_link(record.identifiers, owners)
            if decision.customer_id is None:
                customer_id = await tx.create_customer()
                outcome = "created"
                await tx.append_ledger("customer_created", customer_id, ref=record.ref)
            else:
                customer_id = decision.customer_id
                outcome = "linked_exact"
            await tx.link_identifiers(
                customer_id, decision.link, record.ref.source, record.observed_at
            )
            await tx.touch_identifiers(
                [k for k in record.identifiers if k not in decision.link], record.observed_at
            )
            await tx.add_record(record, customer_id, outcome, decision.rule)
            await tx.append_ledger(
                "record_linked",
                customer_id,
                ref=record.ref,
                detail={
                    "rule": decision.rule,
                    "conflicting": [[k.type, k.namespace, k.value] for k in decision.conflicting],
                },
            )
            return Resolution(customer_id, outcome, record.identifiers)

    async def lookup_by_identifier(self, raw: tuple[str, str, str]) -> CustomerView:
        (key,) = normalize_identifiers([raw], field="identifier")
        async with self.store.transaction() as tx:
            owners = await tx.owners([key])
            if key not in owners:
                raise NotFound("no customer has that identifier")
            view = await tx.customer_view(owners[key].customer_id)
        if view is None:
            raise NotFound("no customer has that identifier")
        return view

    async def lookup_by_id(self, customer_id: str) -> CustomerView:
        if not _is_uuid(customer_id):
            raise InvalidArgument([FieldViolation("customer_id", "must be a UUID")])
        async with self.store.transaction() as tx:
            current = await tx.canonical_id(customer_id)
            view = None if current is None else await tx.customer_view(current)
        if view is None:
            raise NotFound(f"customer {customer_id} not found")
        return view


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
