"""The parameters of ``GraphWrites.apply``'s one statement, column by column.

The statement inserts into six tables and updates one from ``unnest`` of arrays, one array a
column (one parameter each: Postgres builds the rows, psycopg sends a handful of strings). Each
table's columns are a small dataclass here, filled one record, link or touch at a time, and
``ApplyColumns.params`` names them as the statement does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from svod_identity.adapters.encoding import ints, keys_json, times, to_json
from svod_identity.domain.engine import Changes, NewRecord
from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.ledger import placement_detail, placement_kind
from svod_runtime.db import array_literal


@dataclass
class CustomerColumns:
    """``customers``: the batch's new customers."""

    customer_id: list[str] = field(default_factory=list)
    created_at: list[dt.datetime] = field(default_factory=list)

    def add(self, customer_id: str, created_at: dt.datetime) -> None:
        self.customer_id.append(customer_id)
        self.created_at.append(created_at)

    def params(self) -> dict[str, str]:
        return {"cid": array_literal(self.customer_id), "cat": times(self.created_at)}


@dataclass
class RecordColumns:
    """``records``, and the ledger entry placing each record (same customer and reference)."""

    pk: list[int] = field(default_factory=list)
    source: list[str] = field(default_factory=list)
    message_id: list[str] = field(default_factory=list)
    customer_id: list[str] = field(default_factory=list)
    channel: list[str] = field(default_factory=list)
    observed_at: list[dt.datetime] = field(default_factory=list)
    identifiers: list[str] = field(default_factory=list)
    attributes: list[str] = field(default_factory=list)
    outcome: list[str] = field(default_factory=list)
    rule: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    ledger_kind: list[str] = field(default_factory=list)
    ledger_detail: list[str] = field(default_factory=list)

    def add(self, new: NewRecord, pk: int) -> None:
        record = new.record
        self.pk.append(pk)
        self.source.append(record.ref.source)
        self.message_id.append(record.ref.message_id)
        self.customer_id.append(new.customer_id)
        self.channel.append(record.channel)
        self.observed_at.append(record.observed_at)
        self.identifiers.append(keys_json(record.identifiers))
        self.attributes.append(to_json(record.attributes))
        self.outcome.append(new.outcome)
        self.rule.append(new.rule)
        self.evidence.append(to_json(new.evidence))
        self.ledger_kind.append(placement_kind(new.outcome))
        self.ledger_detail.append(to_json(placement_detail(new.rule, new.evidence)))

    def params(self) -> dict[str, str]:
        return {
            "p": ints(self.pk),
            "s": array_literal(self.source),
            "m": array_literal(self.message_id),
            "c": array_literal(self.customer_id),
            "ch": array_literal(self.channel),
            "at": times(self.observed_at),
            "ids": array_literal(self.identifiers),
            "attrs": array_literal(self.attributes),
            "o": array_literal(self.outcome),
            "r": array_literal(self.rule),
            "ev": array_literal(self.evidence),
            "gk": array_literal(self.ledger_kind),
            "gd": array_literal(self.ledger_detail),
        }


@dataclass
class RecordIdentifierColumns:
    """``record_identifiers``: which record carries which identifier."""

    id_type: list[str] = field(default_factory=list)
    namespace: list[str] = field(default_factory=list)
    value: list[str] = field(default_factory=list)
    record_pk: list[int] = field(default_factory=list)

    def add(self, keys: Iterable[IdentifierKey], record_pk: int) -> None:
        for key in keys:
            self.id_type.append(key.type)
            self.namespace.append(key.namespace)
            self.value.append(key.value)
            self.record_pk.append(record_pk)

    def params(self) -> dict[str, str]:
        return {
            "rit": array_literal(self.id_type),
            "rin": array_literal(self.namespace),
            "riv": array_literal(self.value),
            "rip": ints(self.record_pk),
        }


@dataclass
class BlockingKeyColumns:
    """``blocking_keys``: the blocks each record joins."""

    key: list[str] = field(default_factory=list)
    record_pk: list[int] = field(default_factory=list)

    def add(self, keys: Iterable[str], record_pk: int) -> None:
        for key in keys:
            self.key.append(key)
            self.record_pk.append(record_pk)

    def params(self) -> dict[str, str]:
        return {"bk": array_literal(self.key), "bp": ints(self.record_pk)}


@dataclass
class LinkColumns:
    """``identifiers``: identifiers a customer holds from now on."""

    id_type: list[str] = field(default_factory=list)
    namespace: list[str] = field(default_factory=list)
    value: list[str] = field(default_factory=list)
    customer_id: list[str] = field(default_factory=list)
    first_source: list[str] = field(default_factory=list)
    first_seen: list[dt.datetime] = field(default_factory=list)
    last_seen: list[dt.datetime] = field(default_factory=list)

    def add(
        self,
        key: IdentifierKey,
        customer_id: str,
        source: str,
        first_seen: dt.datetime,
        last_seen: dt.datetime,
    ) -> None:
        self.id_type.append(key.type)
        self.namespace.append(key.namespace)
        self.value.append(key.value)
        self.customer_id.append(customer_id)
        self.first_source.append(source)
        self.first_seen.append(first_seen)
        self.last_seen.append(last_seen)

    def params(self) -> dict[str, str]:
        return {
            "lt": array_literal(self.id_type),
            "ln": array_literal(self.namespace),
            "lv": array_literal(self.value),
            "lc": array_literal(self.customer_id),
            "ls": array_literal(self.first_source),
            "lseen": times(self.first_seen),
            "llast": times(self.last_seen),
        }


@dataclass
class TouchColumns:
    """``identifiers`` held before, seen again: their new last-seen time."""

    id_type: list[str] = field(default_factory=list)
    namespace: list[str] = field(default_factory=list)
    value: list[str] = field(default_factory=list)
    seen: list[dt.datetime] = field(default_factory=list)

    def add(self, key: IdentifierKey, seen: dt.datetime) -> None:
        self.id_type.append(key.type)
        self.namespace.append(key.namespace)
        self.value.append(key.value)
        self.seen.append(seen)

    def params(self) -> dict[str, str]:
        return {
            "tt": array_literal(self.id_type),
            "tn": array_literal(self.namespace),
            "tv": array_literal(self.value),
            "tseen": times(self.seen),
        }


@dataclass
class ApplyColumns:
    """Everything ``apply`` writes in its one statement."""

    customers: CustomerColumns = field(default_factory=CustomerColumns)
    records: RecordColumns = field(default_factory=RecordColumns)
    record_identifiers: RecordIdentifierColumns = field(default_factory=RecordIdentifierColumns)
    blocking_keys: BlockingKeyColumns = field(default_factory=BlockingKeyColumns)
    links: LinkColumns = field(default_factory=LinkColumns)
    touches: TouchColumns = field(default_factory=TouchColumns)

    @classmethod
    def of(cls, changes: Changes, pks: Mapping[int, int]) -> ApplyColumns:
        """The columns of ``changes``, with ``pks`` mapping engine record pks to stored ones."""
        columns = cls()
        for customer_id, created_at in changes.customers:
            columns.customers.add(customer_id, created_at)
        for new in changes.records:
            columns.add_record(new, pks[new.pk])
        columns.add_links_and_touches(changes.links, changes.touches)
        return columns

    def add_record(self, new: NewRecord, pk: int) -> None:
        self.records.add(new, pk)
        self.record_identifiers.add(new.record.identifiers, pk)
        self.blocking_keys.add(new.blocking_keys, pk)

    def add_links_and_touches(
        self,
        links: Sequence[tuple[IdentifierKey, str, str, dt.datetime]],
        touches: Iterable[tuple[IdentifierKey, dt.datetime]],
    ) -> None:
        """Identifiers linked in this batch and seen again later in it get one row, with the
        latest time; the others seen again get one update each, with theirs."""
        link_seen: dict[IdentifierKey, dt.datetime] = {}
        for key, _, _, seen in links:
            link_seen[key] = seen
        latest: dict[IdentifierKey, dt.datetime] = {}
        for key, seen in touches:
            if key in link_seen:
                link_seen[key] = max(seen, link_seen[key])
            else:
                latest[key] = max(seen, latest.get(key, seen))
        for key, customer_id, source, seen in links:
            self.links.add(key, customer_id, source, seen, link_seen[key])
        for key, seen in latest.items():
            self.touches.add(key, seen)

    def is_empty(self) -> bool:
        return not (
            self.records.pk
            or self.customers.customer_id
            or self.links.id_type
            or self.touches.id_type
        )

    def params(self, actor: str) -> dict[str, str]:
        return {
            **self.customers.params(),
            **self.records.params(),
            **self.record_identifiers.params(),
            **self.blocking_keys.params(),
            **self.links.params(),
            **self.touches.params(),
            "a": actor,
        }
