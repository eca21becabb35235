"""Delivering accepted messages downstream: the outbox handlers of ingestion."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import replace

from svod_ingestion.domain.attribution import (
    Attributed,
    Finding,
    GraceClock,
    Hold,
    IdentifierState,
    Issue,
    NotAttributed,
    attribute,
    describe,
    identifier_key,
)
from svod_ingestion.domain.model import UNCHECKED, MessageKind, StoredPayload
from svod_ingestion.service_layer.ports import DeliveryStore, Downstream, EventHolds, QualityGate
from svod_runtime.errors import is_erasure
from svod_runtime.outbox import DeliveryError, OutboxMessage

ERASED = "the record's payload was erased"
# Pending identify calls read to tell whether an event's customer is still being resolved;
# beyond this many, identity has a backlog and every unknown event counts as still resolving.
PENDING_IDENTIFIES_READ = 1_000


class RecordDelivery:
    def __init__(
        self,
        store: DeliveryStore,
        downstream: Downstream,
        unknown_customer_grace_s: float,
        held: EventHolds,
        on_woken: Callable[[], None] | None = None,
        quality_gate: QualityGate | None = None,
    ) -> None:
        self.store = store
        # Checks identify calls accepted while quality could not be asked (set by the app).
        self.quality_gate = quality_gate
        self.downstream = downstream
        self.grace_s = unknown_customer_grace_s
        self.held = held
        # Tells the held-event sweeper that some held events are due now.
        self.on_woken = on_woken or (lambda: None)

    async def _stored(
        self, messages: list[OutboxMessage]
    ) -> tuple[
        dict[int, StoredPayload],
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
        """Delivers a relay pass's identify calls together (the relay's batch handler).

        Those accepted while quality could not be asked are checked by quality first: a
        reject rule fails them with its violation, quality still unreachable retries them
        later; none goes to identity unchecked.
        """
        stored, answers, present = await self._stored(messages)
        present = await self._quality_checked(stored, answers, present)
        outcomes = await self.downstream.deliver_identifies(
            [(stored[int(m.key)].payload, m.trace_carrier) for _, m in present]
        )
        delivered: list[tuple[int, str, int]] = []
        keys: list[str] = []
        for (index, message), outcome in zip(present, outcomes, strict=True):
            if isinstance(outcome, DeliveryError):
                answers[index] = outcome
            else:
                delivered.append((int(message.key), outcome, message.attempts + 1))
                payload = stored[int(message.key)].payload
                identifiers = self.downstream.identifiers_of(MessageKind.IDENTIFY, payload)
                keys += [identifier_key(*i) for i in identifiers]
        await self.store.mark_delivered_many(delivered)
        # Events held for want of these identifiers' customer get a look now.
        if keys and await self.held.wake_by_keys(keys):
            self.on_woken()
        return answers

    async def _quality_checked(
        self,
        stored: dict[int, StoredPayload],
        answers: list[DeliveryError | None],
        present: list[tuple[int, OutboxMessage]],
    ) -> list[tuple[int, OutboxMessage]]:
        """The messages of ``present`` to deliver now: the checked ones, and the unchecked
        ones quality passed (their stored payload replaced by quality's standardised one);
        the others get their refusal in ``answers``."""
        unchecked = [(i, m) for i, m in present if m.payload == UNCHECKED]
        if not unchecked:
            return present
        if self.quality_gate is None:
            for index, _ in unchecked:
                answers[index] = DeliveryError("UNAVAILABLE", "no quality check configured")
            return [(i, m) for i, m in present if m.payload != UNCHECKED]
        verdicts = await self.quality_gate([stored[int(m.key)].payload for _, m in unchecked])
        passed: list[tuple[int, bytes]] = []
        for (index, message), verdict in zip(unchecked, verdicts, strict=True):
            if isinstance(verdict, DeliveryError):
                answers[index] = verdict
            else:
                pk = int(message.key)
                stored[pk] = replace(stored[pk], payload=verdict)
                passed.append((pk, verdict))
        await self.store.mark_checked(passed)
        return [(i, m) for i, m in present if answers[i] is None]

    async def track(self, messages: list[OutboxMessage]) -> list[DeliveryError | None]:
        """Attributes and delivers a relay pass's events together (the relay's batch handler).

        An event whose identifiers name one customer goes to their profile; the others wait or
        are held (``domain/attribution.py``), which for the outbox is done: the held-event
        sweeper hands them back to it for every later look.
        """
        stored, answers, present = await self._stored(messages)
        payloads = [stored[int(m.key)].payload for _, m in present]
        now = dt.datetime.now(dt.UTC)
        try:
            findings = await self.downstream.lookup_tracks(payloads)
        except DeliveryError as error:
            # Identity could not be asked: every event waits, its grace clock stopped.
            await self.held.hold(
                [
                    self._hold(
                        m,
                        stored[int(m.key)],
                        NotAttributed(Issue.IDENTITY_UNAVAILABLE),
                        stored[int(m.key)].clock.advance(now, genuinely_unknown=False),
                        f"{describe(Issue.IDENTITY_UNAVAILABLE, 0, GraceClock(), self.grace_s)}"
                        f" ({error.status})",
                    )
                    for _, m in present
                ]
            )
            return answers
        if await self.held.wake_identity_waiters():
            self.on_woken()
        resolving: set[str] | None = None
        holds: list[Hold] = []
        attributed: list[tuple[int, OutboxMessage, str]] = []
        for (index, message), found in zip(present, findings, strict=True):
            usable = [f for f in found if f is not None]
            if not usable:
                answers[index] = DeliveryError(
                    "INVALID_ARGUMENT", "identity refused every identifier of the event"
                )
                continue
            record = stored[int(message.key)]
            clock = record.clock
            if _awaits_grace(usable):
                if resolving is None:
                    resolving = await self._pending_identify_keys()
                keys = self._keys(record.payload)
                pending = not resolving.isdisjoint(keys) or _BACKLOG in resolving
                clock = clock.advance(now, genuinely_unknown=not pending)
            decision = attribute(usable, clock, self.grace_s)
            if isinstance(decision, Attributed):
                attributed.append((index, message, decision.customer_id))
            else:
                detail = describe(decision.issue, len(decision.candidates), clock, self.grace_s)
                holds.append(self._hold(message, record, decision, clock, detail))
        await self.held.hold(holds)
        await self.held.release([int(m.key) for _, m, _ in attributed])
        await self._apply(stored, attributed, answers)
        return answers

    async def _apply(
        self,
        stored: dict[int, StoredPayload],
        attributed: list[tuple[int, OutboxMessage, str]],
        answers: list[DeliveryError | None],
    ) -> None:
        if not attributed:
            return
        try:
            outcomes = await self.downstream.apply_tracks(
                [(stored[int(m.key)].payload, c, m.trace_carrier) for _, m, c in attributed]
            )
        except DeliveryError as error:
            outcomes = [error] * len(attributed)
        delivered: list[tuple[int, str, int]] = []
        for (index, message, customer), outcome in zip(attributed, outcomes, strict=True):
            if outcome is None:
                delivered.append((int(message.key), customer, message.attempts + 1))
            else:
                answers[index] = outcome
        await self.store.mark_delivered_many(delivered)

    def _keys(self, payload: bytes) -> set[str]:
        return {
            identifier_key(*i) for i in self.downstream.identifiers_of(MessageKind.TRACK, payload)
        }

    async def _pending_identify_keys(self) -> set[str]:
        """Keys of the identifiers of identify calls identity has not resolved yet (or the
        backlog marker when there are too many to read)."""
        payloads = await self.held.pending_identify_payloads(PENDING_IDENTIFIES_READ)
        if payloads is None:
            return {_BACKLOG}
        return {
            identifier_key(*i)
            for payload in payloads
            for i in self.downstream.identifiers_of(MessageKind.IDENTIFY, payload)
        }

    def _hold(
        self,
        message: OutboxMessage,
        record: StoredPayload,
        decision: NotAttributed,
        clock: GraceClock,
        detail: str,
    ) -> Hold:
        return Hold(
            int(message.key),
            decision.issue,
            decision.candidates,
            detail,
            clock,
            tuple(sorted(self._keys(record.payload))),
            message.trace_carrier,
        )

    async def failed(self, message: OutboxMessage, error: str) -> None:
        # Refused because its customer was erased: the payload goes too (it is the person's).
        await self.store.mark_failed(
            int(message.key), error, message.attempts + 1, erase_payload=is_erasure(error)
        )


# Stands for "every identifier": identity has a backlog of identify calls.
_BACKLOG = "\x00backlog"


def _awaits_grace(findings: Sequence[Finding]) -> bool:
    """Whether the event's grace clock matters: no identifier names a customer, and some
    identifier nobody holds yet may still get one."""
    states = {f.state for f in findings}
    return IdentifierState.DECISIVE not in states and IdentifierState.UNKNOWN in states
