"""The rows of the two statements ``StateLoader.load_state`` reads the graph with, decoded.

Each statement is one ``UNION ALL`` of several queries, so that a Resolve reads what it needs in
one round trip; the queries' rows share generic columns (``t1`` ... ``j2``) and are told apart
by a ``kind`` column. Here each kind gets a named type and a decoder, so the code filling the
engine's ``GraphState`` reads fields, not columns.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from svod_identity.adapters.encoding import known_record
from svod_identity.domain.engine import KnownCustomer, KnownRecord
from svod_identity.domain.identifiers import IdentifierKey

# -- the batch statement (``_LOAD_STATE``): candidates, blocklist, owners, new pks ----------


@dataclass(frozen=True)
class FetchedBlock:
    """A blocking key looked up: its stored block's size (up to the cap) and those of its
    members whose rows were loaded (the others are never compared, only counted)."""

    key: str
    stored_size: int
    loaded: list[int]


@dataclass(frozen=True)
class FetchedRecord:
    """A stored record: one of the batch's (resolved before) or a candidate."""

    record: KnownRecord
    of_batch: bool


@dataclass(frozen=True)
class BlockedIdentifier:
    """An identifier of the batch on the stored blocklist."""

    key: IdentifierKey
    reason: str


@dataclass(frozen=True)
class AllocatedPks:
    """Record pks allocated for the batch's new records."""

    pks: list[int]


@dataclass(frozen=True)
class IdentifierHolder:
    """A customer holding one of the batch's identifiers (to be locked)."""

    customer_id: str


@dataclass
class BatchRows:
    blocks: list[FetchedBlock] = field(default_factory=list)
    records: list[FetchedRecord] = field(default_factory=list)
    blocked: list[BlockedIdentifier] = field(default_factory=list)
    free_pks: list[int] = field(default_factory=list)
    holders: set[str] = field(default_factory=set)


def _identifier(row: Any) -> IdentifierKey:
    return IdentifierKey(row.t1, row.t3, row.t2)


def decode_block(row: Any) -> FetchedBlock:
    return FetchedBlock(row.t1, int(row.pk), sorted(row.j1))


def decode_fetched_record(row: Any) -> FetchedRecord:
    record = known_record(row.pk, row.t1, row.t2, row.c, row.j1, row.j2)
    return FetchedRecord(record, bool(row.f))


def decode_blocked(row: Any) -> BlockedIdentifier:
    return BlockedIdentifier(_identifier(row), str(row.j1))


def decode_allocated(row: Any) -> AllocatedPks:
    return AllocatedPks(sorted(row.j1 or ()))


def decode_holder(row: Any) -> IdentifierHolder:
    return IdentifierHolder(str(row.c))


_BATCH_DECODERS: Mapping[str, Callable[[Any], object]] = {
    "b": decode_block,
    "r": decode_fetched_record,
    "x": decode_blocked,
    "p": decode_allocated,
    "o": decode_holder,
}


def decode_batch_rows(rows: Iterable[Any], into: BatchRows | None = None) -> BatchRows:
    """The rows decoded, added to ``into`` when given (a batch decoded a slice at a time)."""
    out = BatchRows() if into is None else into
    for row in rows:
        item = _BATCH_DECODERS[row.kind](row)
        match item:
            case FetchedBlock():
                out.blocks.append(item)
            case FetchedRecord():
                out.records.append(item)
            case BlockedIdentifier():
                out.blocked.append(item)
            case AllocatedPks():
                out.free_pks.extend(item.pks)
            case IdentifierHolder():
                out.holders.add(item.customer_id)
    return out


# -- the customers statement (``_LOAD_CUSTOMERS``), read once the customers are locked ----


@dataclass(frozen=True)
class HeldIdentifier:
    """An identifier of the batch, its holder now and the customers recorded sharing it."""

    key: IdentifierKey
    customer_id: str
    sharers: frozenset[str]


@dataclass(frozen=True)
class CandidateNow:
    """The customer a candidate record belongs to now (a merge or split may have moved it)."""

    pk: int
    customer_id: str


@dataclass(frozen=True)
class CustomerCreated:
    customer_id: str
    created_at: dt.datetime


@dataclass(frozen=True)
class CustomerRecord:
    """One of a customer's most recent records: ``record`` is None for a record already read
    (the batch's or a candidate), whose identifiers and attributes are not sent again."""

    pk: int
    customer_id: str
    record: KnownRecord | None


@dataclass(frozen=True)
class CustomerIdentifier:
    """An identifier a customer holds (read only when rules limit values per customer)."""

    customer_id: str
    key: IdentifierKey


@dataclass(frozen=True)
class KeptApart:
    pair: frozenset[str]


@dataclass
class CustomerRows:
    held: list[HeldIdentifier] = field(default_factory=list)
    candidates_now: dict[int, str] = field(default_factory=dict)
    customers: list[CustomerCreated] = field(default_factory=list)
    records: list[CustomerRecord] = field(default_factory=list)
    identifiers: list[CustomerIdentifier] = field(default_factory=list)
    kept_apart: set[frozenset[str]] = field(default_factory=set)


def decode_held(row: Any) -> HeldIdentifier:
    return HeldIdentifier(_identifier(row), str(row.c), frozenset(str(c) for c in row.j1 or ()))


def decode_candidate_now(row: Any) -> CandidateNow:
    return CandidateNow(int(row.pk), str(row.c))


def decode_customer(row: Any) -> CustomerCreated:
    return CustomerCreated(str(row.c), row.at)


def decode_customer_record(row: Any) -> CustomerRecord:
    record = None
    if row.j2 is not None:
        record = known_record(row.pk, row.t1, row.t2, row.c, row.j1, row.j2)
    return CustomerRecord(int(row.pk), str(row.c), record)


def decode_customer_identifier(row: Any) -> CustomerIdentifier:
    return CustomerIdentifier(str(row.c), _identifier(row))


def decode_kept_apart(row: Any) -> KeptApart:
    return KeptApart(frozenset((str(row.c), str(row.c2))))


_CUSTOMER_DECODERS: Mapping[str, Callable[[Any], object]] = {
    "o": decode_held,
    "m": decode_candidate_now,
    "c": decode_customer,
    "r": decode_customer_record,
    "i": decode_customer_identifier,
    "k": decode_kept_apart,
}


def decode_customer_rows(rows: Iterable[Any]) -> CustomerRows:
    out = CustomerRows()
    for row in rows:
        item = _CUSTOMER_DECODERS[row.kind](row)
        match item:
            case HeldIdentifier():
                out.held.append(item)
            case CandidateNow():
                out.candidates_now[item.pk] = item.customer_id
            case CustomerCreated():
                out.customers.append(item)
            case CustomerRecord():
                out.records.append(item)
            case CustomerIdentifier():
                out.identifiers.append(item)
            case KeptApart():
                out.kept_apart.add(item.pair)
    return out


def known_customers(rows: CustomerRows) -> dict[str, KnownCustomer]:
    return {c.customer_id: KnownCustomer(c.customer_id, c.created_at) for c in rows.customers}
