"""Profile use cases."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Protocol

from svod_profile.adapters.storage import ProfileStore
from svod_profile.domain.model import ProfileView, RecordApplication
from svod_profile.domain.survivorship import shown_values
from svod_runtime.errors import FieldViolation, InvalidArgument, NotFound, ViolationCollector


class CustomerDirectory(Protocol):
    """Who an identifier belongs to: the identity service's answer."""

    async def customer_for_identifier(self, id_type: str, value: str, namespace: str) -> str: ...

    async def current_customer_id(self, customer_id: str) -> str: ...


def _require_uuid(value: str, field: str) -> None:
    try:
        uuid.UUID(value)
    except ValueError:
        raise InvalidArgument([FieldViolation(field, "must be a customer id (UUID)")]) from None


class ProfileService:
    def __init__(self, store: ProfileStore, directory: CustomerDirectory) -> None:
        self.store = store
        self.directory = directory

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
            shown = shown_values(await tx.observations(app.customer_id, touched))
            return await tx.update_shown(app.customer_id, shown), True

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
            await tx.merge_into(survivor, merged)
            await tx.replace_shown(survivor, shown_values(await tx.all_observations(survivor)))

    async def get_by_id(self, customer_id: str) -> ProfileView:
        _require_uuid(customer_id, "customer_id")
        async with self.store.transaction() as tx:
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

    async def get_by_identifier(self, id_type: str, value: str, namespace: str) -> ProfileView:
        customer_id = await self.directory.customer_for_identifier(id_type, value, namespace)
        async with self.store.transaction() as tx:
            view = await tx.load(customer_id)
        if view is None:
            raise NotFound("the customer has no profile yet")
        return view
