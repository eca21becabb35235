"""The identity graph's vocabulary."""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
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


class ResolutionOutcome(StrEnum):
    """How a record was placed (identity.v1.ResolutionOutcome; stored as its value)."""

    CREATED = "created"
    LINKED_EXACT = "linked_exact"
    LINKED_FUZZY = "linked_fuzzy"
    ALREADY_RESOLVED = "already_resolved"


class EvidenceKind(StrEnum):
    """What placed a record: the ``kind`` of its stored evidence (``records.evidence``)."""

    SHARED_IDENTIFIER = "shared_identifier"
    FUZZY_MATCH = "fuzzy_match"
    NEW_CUSTOMER = "new_customer"


@dataclass(frozen=True)
class Resolution:
    customer_id: str
    outcome: ResolutionOutcome
    identifiers: tuple[IdentifierKey, ...]


@dataclass(frozen=True)
class CustomerView:
    customer_id: str
    merged_ids: tuple[str, ...]
    identifiers: tuple[tuple[IdentifierKey, str, dt.datetime, dt.datetime], ...]
    created_at: dt.datetime
    record_count: int


@dataclass(frozen=True)
class Erasure:
    """What erasing a customer removed: its records (as refs), how many identifiers, and the
    ids now erased (the customer and every id merged into it)."""

    refs: list[RecordRef]
    identifier_count: int
    customer_ids: list[str]
    # The identifier values (held only in memory, to scrub them from the outbox).
    values: list[str]


def new_customer_id(unix_ms: int | None = None) -> str:
    """A new customer's id: a time-ordered UUID (version 7, RFC 9562): 48 bits of Unix time in
    milliseconds, then 74 random bits.

    Customer ids key the customers table and lead the indexes that list a customer's records,
    identifiers and ledger entries. Random (version 4) ids put every new customer's rows on a
    random page of each of those indexes, and after a checkpoint each such page costs a full
    page image in the write-ahead log; time-ordered ids put them on the few pages the last
    customers were written to.
    """
    millis = time.time_ns() // 1_000_000 if unix_ms is None else unix_ms
    value = (millis & _MILLIS_MASK) << 80 | int.from_bytes(os.urandom(10), "big")
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # RFC 9562 variant
    return str(uuid.UUID(int=value))


_MILLIS_MASK = (1 << 48) - 1
