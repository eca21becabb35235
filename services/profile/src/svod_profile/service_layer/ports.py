"""What the profile's use cases need from the outside, and small shared checks."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Protocol

from svod_runtime.errors import FieldViolation, InvalidArgument


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


def require_uuid(value: str, field: str) -> None:
    try:
        uuid.UUID(value)
    except ValueError:
        raise InvalidArgument([FieldViolation(field, "must be a customer id (UUID)")]) from None
