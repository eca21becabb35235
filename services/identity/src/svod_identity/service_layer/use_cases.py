"""Identity use cases: each runs in one transaction of the identity store."""

from __future__ import annotations

import json
import uuid

from svod_identity.adapters.storage import IdentityStore, IdentityTransaction
from svod_identity.domain.identifiers import IdentifierKey, normalize_identifiers
from svod_identity.domain.model import (
    CustomerView,
    IncomingRecord,
    Owner,
    RecordRef,
    Resolution,
)
from svod_identity.domain.resolution import decide_link
from svod_runtime.errors import FieldViolation, InvalidArgument, NotFound

# Outbox topic announcing merges to the profile service.
MERGED_TOPIC = "customer.merged"


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
            owners = await self._lock_owners(tx, record)
            decision = decide_link(record.identifiers, owners)
            if decision.customer_id is None:
                customer_id = await tx.create_customer()
                outcome = "created"
                await tx.append_ledger("customer_created", customer_id, ref=record.ref)
            else:
                customer_id = decision.customer_id
                outcome = "linked_exact"
                if decision.merge:
                    await self._merge(tx, customer_id, decision.merge, record, decision.rule)
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
                detail={"rule": decision.rule},
            )
            return Resolution(customer_id, outcome, record.identifiers)

    async def _lock_owners(
        self, tx: IdentityTransaction, record: IncomingRecord
    ) -> dict[IdentifierKey, Owner]:
        """Owners of the record's identifiers, with those customers row-locked.

        Re-read after locking: a merge that committed meanwhile may have moved identifiers.
        """
        locked: set[str] = set()
        while True:
            owners = await tx.owners(record.identifiers)
            wanted = {o.customer_id for o in owners.values()}
            if wanted <= locked:
                return owners
            await tx.lock_customers(sorted(wanted - locked))
            locked |= wanted

    async def _merge(
        self,
        tx: IdentityTransaction,
        survivor: str,
        merged: tuple[str, ...],
        record: IncomingRecord,
        rule: str,
    ) -> None:
        await tx.merge_customers(survivor, merged)
        change_id = await tx.append_ledger(
            "customers_merged",
            survivor,
            ref=record.ref,
            other_customer_id=merged[0],
            detail={"merged": list(merged), "rule": rule},
            reason=f"record {record.ref.source}/{record.ref.message_id} links them",
        )
        await tx.announce(
            MERGED_TOPIC,
            survivor,
            json.dumps(
                {"change_id": str(change_id), "survivor": survivor, "merged": merged}
            ).encode(),
        )

    async def erase(self, customer_id: str, actor: str, reason: str) -> tuple[list[RecordRef], int]:
        """Erases a customer's personal data; repeatable (a second call finds nothing new)."""
        if not _is_uuid(customer_id):
            raise InvalidArgument([FieldViolation("customer_id", "must be a UUID")])
        if not actor:
            raise InvalidArgument([FieldViolation("actor", "required")])
        async with self.store.transaction() as tx:
            current = await tx.canonical_id(customer_id)
            if current is None:
                raise NotFound(f"customer {customer_id} not found")
            await tx.lock_customers([current])
            refs, identifiers = await tx.erase(current)
            await tx.append_ledger(
                "customer_erased",
                current,
                detail={"records": len(refs), "identifiers": identifiers},
                actor=actor,
                reason=reason,
            )
        return refs, identifiers

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
