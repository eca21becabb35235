"""Delivering accepted messages downstream: the outbox handlers of ingestion."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Protocol

from svod_ingestion.adapters.storage import IngestionStore
from svod_runtime.outbox import DeliveryError, OutboxMessage

ERASED = "the record's payload was erased"


class Downstream(Protocol):
    async def deliver_identifies(
        self, items: Sequence[tuple[bytes, dict[str, str]]]
    ) -> list[str | DeliveryError]:
        """Resolves and applies identify calls (stored request, trace carrier); for each, the
        customer id or the refusal."""
        ...

    async def deliver_tracks(
        self, items: Sequence[tuple[bytes, dict[str, str]]]
    ) -> list[str | DeliveryError | None]:
        """Applies events (stored request, trace carrier) to their customers' profiles; for
        each, the customer id, None when no customer matches yet, or the refusal."""
        ...


class RecordDelivery:
    def __init__(
        self, store: IngestionStore, downstream: Downstream, unknown_customer_grace_s: float
    ) -> None:
        self.store = store
        self.downstream = downstream
        self.grace = dt.timedelta(seconds=unknown_customer_grace_s)

    async def _stored(
        self, messages: list[OutboxMessage]
    ) -> tuple[
        dict[int, tuple[bytes, dt.datetime]],
        list[DeliveryError | None],
        list[tuple[int, OutboxMessage]],
    ]:
        """A pass's stored payloads; the answers so far (an erased payload's refusal); and the
        (position, message) of those still to deliver."""
        stored = await self.store.payloads([int(m.key) for m in messages])
        answers: list[DeliveryError | None] = [
            None if int(m.key) in stored else DeliveryError("FAILED_PRECONDITION", ERASED)
            for m in messages
        ]
        present = [(i, m) for i, m in enumerate(messages) if int(m.key) in stored]
        return stored, answers, present

    async def identify(self, messages: list[OutboxMessage]) -> list[DeliveryError | None]:
        """Delivers a relay pass's identify calls together (the relay's batch handler)."""
        stored, answers, present = await self._stored(messages)
        outcomes = await self.downstream.deliver_identifies(
            [(stored[int(m.key)][0], m.trace_carrier) for _, m in present]
        )
        delivered: list[tuple[int, str, int]] = []
        for (index, message), outcome in zip(present, outcomes, strict=True):
            if isinstance(outcome, DeliveryError):
                answers[index] = outcome
            else:
                delivered.append((int(message.key), outcome, message.attempts + 1))
        await self.store.mark_delivered_many(delivered)
        return answers

    async def track(self, messages: list[OutboxMessage]) -> list[DeliveryError | None]:
        """Delivers a relay pass's events together (the relay's batch handler)."""
        stored, answers, present = await self._stored(messages)
        outcomes = await self.downstream.deliver_tracks(
            [(stored[int(m.key)][0], m.trace_carrier) for _, m in present]
        )
        now = dt.datetime.now(dt.UTC)
        delivered: list[tuple[int, str, int]] = []
        for (index, message), outcome in zip(present, outcomes, strict=True):
            if isinstance(outcome, str):
                delivered.append((int(message.key), outcome, message.attempts + 1))
            elif outcome is not None:
                answers[index] = outcome
            elif now - stored[int(message.key)][1] < self.grace:
                # The identify call may still be on its way: wait a while before giving up.
                answers[index] = DeliveryError(
                    "UNAVAILABLE", "no customer has the event's identifiers yet"
                )
            else:
                answers[index] = DeliveryError(
                    "NOT_FOUND", "no customer has any of the event's identifiers"
                )
        await self.store.mark_delivered_many(delivered)
        return answers

    async def failed(self, message: OutboxMessage, error: str) -> None:
        await self.store.mark_failed(int(message.key), error, message.attempts + 1)
