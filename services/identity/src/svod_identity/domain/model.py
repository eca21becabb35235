"""The identity graph's vocabulary."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from svod_identity.domain.identifiers import IdentifierKey


@dataclass(frozen=True)
class RecordRef:
    source: str
    message_id: str


@dataclass(frozen=True)
class IncomingRecord:
    """A record as it reaches identity, identifiers already normalised."""

    ref: RecordRef
    channel: str
    observed_at: dt.datetime
    identifiers: tuple[IdentifierKey, ...]
    # Normalised person attributes kept for re-evaluation (names, birth date, addresses).
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Owner:
    """A customer that already holds one of the record's identifiers."""

    customer_id: str
    created_at: dt.datetime


@dataclass(frozen=True)
class LinkDecision:
    """Where a record goes: an existing customer (``customer_id``) or a new one (None)."""

    customer_id: str | None
    # Identifiers to attach to the chosen customer.
    link: tuple[IdentifierKey, ...]
    # Other customers the record proves to be the same person: merged into ``customer_id``.
    merge: tuple[str, ...]
    rule: str


@dataclass(frozen=True)
class Resolution:
    customer_id: str
    outcome: str  # created | linked_exact | already_resolved
    identifiers: tuple[IdentifierKey, ...]


@dataclass(frozen=True)
class CustomerView:
    customer_id: str
    merged_ids: tuple[str, ...]
    identifiers: tuple[tuple[IdentifierKey, str, dt.datetime, dt.datetime], ...]
    created_at: dt.datetime
    record_count: int
