"""In-memory stored messages, held events and peers for the delivery use cases: satisfy the
delivery ports of ``service_layer.ports`` without PostgreSQL, identity or profile.

Payloads are JSON, ``{"ids": [[type, value, namespace], ...]}``: ``payload(...)`` builds one.
``FakeDownstream`` is a small identity and profile: an identify call's identifiers name the
customer that already holds one of them, or a new one; an event's identifiers are looked up in
that graph (DECISIVE, SHARED, BLOCKED or UNKNOWN; an empty value is malformed); what identity
and profile received is kept in order. Refusals and outages are what the test sets. The store
and the held events keep what delivery wrote, to be read back by the test.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from svod_ingestion.domain.attribution import (
    Finding,
    GraceClock,
    Hold,
    IdentifierState,
    Issue,
    identifier_key,
)
from svod_ingestion.domain.model import MessageKind, StoredPayload
from svod_ingestion.service_layer.ports import (
    DeliveryStore,
    Downstream,
    EventHolds,
)
from svod_runtime.outbox import DeliveryError

Identifier = tuple[str, str, str]


def payload(*identifiers: Identifier, note: str = "") -> bytes:
    """A stored request carrying these (type, value, namespace) identifiers; ``note`` tells
    two requests with the same identifiers apart."""
    return json.dumps({"ids": [list(i) for i in identifiers], "note": note}).encode()


def identifiers_in(stored: bytes) -> list[Identifier]:
    return [(str(t), str(v), str(n)) for t, v, n in json.loads(stored)["ids"]]


@dataclass
class FakeDeliveryStore:
    received_at: dt.datetime
    rows: dict[int, StoredPayload] = field(default_factory=dict)
    delivered: dict[int, tuple[str, int]] = field(default_factory=dict)  # customer, attempts
    checked: dict[int, bytes] = field(default_factory=dict)  # quality's payload
    failed: dict[int, tuple[str, int]] = field(default_factory=dict)  # error, attempts

    def add(self, record_pk: int, stored: bytes, clock: GraceClock | None = None) -> None:
        self.rows[record_pk] = StoredPayload(stored, self.received_at, clock or GraceClock())

    async def payloads(self, record_pks: list[int]) -> dict[int, StoredPayload]:
        return {pk: self.rows[pk] for pk in record_pks if pk in self.rows}

    async def mark_delivered_many(self, delivered: list[tuple[int, str, int]]) -> None:
        for pk, customer_id, attempts in delivered:
            self.delivered[pk] = (customer_id, attempts)

    async def mark_checked(self, checked: list[tuple[int, bytes]]) -> None:
        for pk, standardised in checked:
            self.rows[pk] = dataclasses.replace(self.rows[pk], payload=standardised)
            self.checked[pk] = standardised

    async def mark_failed(
        self, record_pk: int, error: str, attempts: int, *, erase_payload: bool = False
    ) -> None:
        self.failed[record_pk] = (error, attempts)
        if erase_payload:
            self.rows.pop(record_pk, None)


@dataclass
class FakeEventHolds:
    held: dict[int, Hold] = field(default_factory=dict)  # the latest hold of each event
    looks: dict[int, int] = field(default_factory=dict)  # holds recorded per event
    released: list[int] = field(default_factory=list)
    woken: list[int] = field(default_factory=list)  # record pks, in the order woken
    # Stored requests of identify calls identity has not resolved yet.
    pending_identifies: list[bytes] = field(default_factory=list)

    async def hold(self, holds: Sequence[Hold]) -> None:
        for hold in holds:
            self.held[hold.record_pk] = hold
            self.looks[hold.record_pk] = self.looks.get(hold.record_pk, 0) + 1

    async def release(self, record_pks: Sequence[int]) -> None:
        for pk in record_pks:
            self.held.pop(pk, None)
            self.released.append(pk)

    async def wake_by_keys(self, keys: Iterable[str]) -> int:
        wanted = set(keys)
        return self._wake([pk for pk, h in self.held.items() if wanted & set(h.keys)])

    async def wake_identity_waiters(self) -> int:
        return self._wake(
            [pk for pk, h in self.held.items() if h.issue is Issue.IDENTITY_UNAVAILABLE]
        )

    def _wake(self, pks: list[int]) -> int:
        self.woken.extend(pks)
        return len(pks)

    async def pending_identify_payloads(self, limit: int) -> list[bytes] | None:
        if len(self.pending_identifies) > limit:
            return None
        return list(self.pending_identifies)


@dataclass
class FakeDownstream:
    # Identity's graph: identifier key -> the customer it names; shared keys -> candidates.
    owners: dict[str, str] = field(default_factory=dict)
    shared: dict[str, tuple[str, ...]] = field(default_factory=dict)
    blocked: set[str] = field(default_factory=set)
    identity_reachable: bool = True
    profile_reachable: bool = True
    # Refusals by stored request.
    identify_refusals: dict[bytes, DeliveryError] = field(default_factory=dict)
    apply_refusals: dict[bytes, DeliveryError] = field(default_factory=dict)
    # What the peers received, in order.
    identified: list[bytes] = field(default_factory=list)
    looked_up: list[bytes] = field(default_factory=list)
    applied: list[tuple[bytes, str]] = field(default_factory=list)
    _customers: int = 0

    def holder(self, *identifiers: Identifier) -> str:
        """The customer identity's graph gives these identifiers (a new one if none has)."""
        keys = [identifier_key(*i) for i in identifiers]
        customer = next((self.owners[k] for k in keys if k in self.owners), None)
        if customer is None:
            self._customers += 1
            customer = f"customer-{self._customers}"
        for key in keys:
            self.owners.setdefault(key, customer)
        return customer

    async def deliver_identifies(
        self, items: Sequence[tuple[bytes, dict[str, str]]]
    ) -> list[str | DeliveryError]:
        answers: list[str | DeliveryError] = []
        for stored, _ in items:
            refusal = self.identify_refusals.get(stored)
            if not self.identity_reachable:
                refusal = DeliveryError("UNAVAILABLE", "identity is down")
            if refusal is not None:
                answers.append(refusal)
                continue
            self.identified.append(stored)
            answers.append(self.holder(*identifiers_in(stored)))
        return answers

    async def lookup_tracks(self, payloads: Sequence[bytes]) -> list[list[Finding | None]]:
        if not self.identity_reachable:
            raise DeliveryError("UNAVAILABLE", "identity is down")
        self.looked_up.extend(payloads)
        return [[self._finding(i) for i in identifiers_in(p)] for p in payloads]

    def _finding(self, identifier: Identifier) -> Finding | None:
        if not identifier[1]:
            return None
        key = identifier_key(*identifier)
        if key in self.blocked:
            return Finding(IdentifierState.BLOCKED)
        if key in self.shared:
            return Finding(IdentifierState.SHARED, "", self.shared[key])
        if key in self.owners:
            return Finding(IdentifierState.DECISIVE, self.owners[key], (self.owners[key],))
        return Finding(IdentifierState.UNKNOWN)

    async def apply_tracks(
        self, items: Sequence[tuple[bytes, str, dict[str, str]]]
    ) -> list[DeliveryError | None]:
        if not self.profile_reachable:
            raise DeliveryError("UNAVAILABLE", "profile is down")
        answers: list[DeliveryError | None] = []
        for stored, customer_id, _ in items:
            refusal = self.apply_refusals.get(stored)
            if refusal is None:
                self.applied.append((stored, customer_id))
            answers.append(refusal)
        return answers

    def identifiers_of(self, kind: MessageKind, payload: bytes) -> list[Identifier]:
        return identifiers_in(payload)


def _conforms(
    store: FakeDeliveryStore, held: FakeEventHolds, downstream: FakeDownstream
) -> tuple[object, ...]:
    checked: tuple[DeliveryStore, EventHolds, Downstream] = (store, held, downstream)  # mypy
    return checked
