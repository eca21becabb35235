"""Applies events in small batches: one transaction for many events.

Every event costs the same few statements whether alone or with a hundred others, so events
that arrive together (a busy relay, a bulk import) share one transaction: their rows go in with
one INSERT, each affected profile's metrics are folded forward and written once. A batch that
fails as a whole is retried one event at a time, so one bad event cannot fail its neighbours.

Four batches are written at a time (while some wait on the database, another is prepared;
with two, the process sat idle a third of the time). They are safe together: each locks its
profiles in id order before touching them, so batches sharing a customer run one after the
other, and metrics are commutative.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from svod_profile.domain.announcements import (
    CHANGED_TOPIC,
    CONTACT_FAILED_TOPIC,
    ProfileChanged,
    contact_failure_payload,
)
from svod_profile.domain.consents import consent_from_event
from svod_profile.domain.events import EventFact, apply_event
from svod_profile.service_layer.ports import ProfileRepository
from svod_runtime.telemetry import continuing, current_trace_carrier

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    customer_id: str
    event: EventFact
    carrier: dict[str, str]
    done: asyncio.Future[tuple[int, bool]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


# Applies one event alone (the fallback path); supplied by the profile service.
SingleApply = Callable[[str, EventFact], Awaitable[tuple[int, bool]]]
RecordConsent = Callable[..., Awaitable[None]]


class EventBatcher:
    def __init__(
        self,
        store: ProfileRepository,
        single: SingleApply,
        record_consent: RecordConsent,
        on_announced: Callable[[], None],
        *,
        max_batch: int = 500,
        workers: int = 4,
    ) -> None:
        self.store = store
        self.single = single
        self.record_consent = record_consent
        self.on_announced = on_announced
        self.max_batch = max_batch
        self.workers = max(1, workers)
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()

    async def submit(self, customer_id: str, event: EventFact) -> tuple[int, bool]:
        (outcome,) = await self.submit_many([(customer_id, event, current_trace_carrier())])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def submit_many(
        self, items: list[tuple[str, EventFact, dict[str, str]]]
    ) -> list[tuple[int, bool] | Exception]:
        """Applies (customer id, event, trace carrier) items; each gets its result or error."""
        pendings = [_Pending(customer_id, event, carrier) for customer_id, event, carrier in items]
        for pending in pendings:
            self._queue.put_nowait(pending)
        outcomes: list[tuple[int, bool] | Exception] = []
        for pending in pendings:
            try:
                outcomes.append(await pending.done)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - this item's own error, handed back
                outcomes.append(error)
        return outcomes

    async def run(self) -> None:
        await asyncio.gather(*(self._work() for _ in range(self.workers)))

    async def _work(self) -> None:
        while True:
            batch = [await self._queue.get()]
            if self._queue.empty():
                # One turn of the loop lets events of calls arriving together join this batch.
                await asyncio.sleep(0)
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                results = await self._apply(batch)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - fall back to one by one, each with its own error
                log.warning("event batch of %d failed; applying one by one", len(batch))
                await self._one_by_one(batch)
            else:
                for pending, result in zip(batch, results, strict=True):
                    if not pending.done.done():
                        pending.done.set_result(result)
                self.on_announced()

    async def _one_by_one(self, batch: list[_Pending]) -> None:
        for pending in batch:
            try:
                with continuing(pending.carrier):
                    result = await self.single(pending.customer_id, pending.event)
            except Exception as error:  # noqa: BLE001 - handed to the waiting caller
                if not pending.done.done():
                    pending.done.set_exception(error)
            else:
                if not pending.done.done():
                    pending.done.set_result(result)

    async def _apply(self, batch: list[_Pending]) -> list[tuple[int, bool]]:
        async with self.store.transaction() as tx:
            repo = tx.events
            current, metrics = await repo.lock_current_profiles(
                sorted({p.customer_id for p in batch})
            )
            owners = [current[p.customer_id] for p in batch]
            inserted = await repo.insert_events(
                [(owner, p.event) for owner, p in zip(owners, batch, strict=True)]
            )
            changed: list[bool] = []
            new_events: dict[str, list[EventFact]] = defaultdict(list)
            carriers: dict[str, dict[str, str]] = {}
            for owner, pending in zip(owners, batch, strict=True):
                ref = (pending.event.source, pending.event.message_id)
                is_new = ref in inserted
                inserted.discard(ref)  # a duplicate inside the batch counts once
                changed.append(is_new)
                if is_new:
                    new_events[owner].append(pending.event)
                    carriers.setdefault(owner, pending.carrier)
            for owner, events in new_events.items():
                for event in events:
                    metrics[owner] = apply_event(metrics[owner], event)
                    opt_out = consent_from_event(event)
                    if opt_out is not None:
                        await self.record_consent(
                            tx, owner, opt_out, record_ref=(event.source, event.message_id)
                        )
            versions = await repo.save_metrics_many({o: metrics[o] for o in new_events})
            failures = [
                (owner, payload, carriers[owner])
                for owner, events in new_events.items()
                for event in events
                if (payload := contact_failure_payload(event)) is not None
            ]
            await tx.enqueue_many(CONTACT_FAILED_TOPIC, failures)
            await tx.enqueue_many(
                CHANGED_TOPIC,
                [
                    (
                        owner,
                        ProfileChanged(
                            events=tuple((e.source, e.message_id) for e in events)
                        ).payload(),
                        carriers[owner],
                    )
                    for owner, events in new_events.items()
                ],
            )
            unchanged = {o for o in owners if o not in versions}
            if unchanged:
                for owner in unchanged:
                    versions[owner] = await tx.version(owner)
        return [(versions[o], c) for o, c in zip(owners, changed, strict=True)]
