"""Applies events in small batches: one transaction for many events.

Every event costs the same few statements whether alone or with a hundred others, so events
that arrive together (a busy relay, a bulk import) share one transaction (the runtime's
GroupCommitBatcher): their rows go in with one INSERT, each affected profile's metrics are
folded forward and written once. A batch that fails as a whole is retried one event at a time,
each in its caller's trace, so one bad event cannot fail its neighbours.

Four batches are written at a time (while some wait on the database, another is prepared;
with two, the process sat idle a third of the time). Batches in flight never share a customer
(the batcher's keys; a batch takes a customer's events of a submission together, in order):
unkeyed, a relay pass's four batches of 500 over 20,000 customers shared a dozen customers each,
and each waited on the others' transactions (lock waits in 27-38% of profile's active samples,
docs/performance.md, session 38). Each batch still locks its profiles in id order, which keeps
two batches safe when two ids name one profile (a merge).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from svod_profile.domain.announcements import (
    CHANGED_TOPIC,
    CONTACT_FAILED_TOPIC,
    ProfileChanged,
    contact_failure_payload,
)
from svod_profile.domain.consents import consent_from_event
from svod_profile.domain.events import EventFact, apply_event
from svod_profile.service_layer.ports import ProfileRepository
from svod_runtime.batching import GroupCommitBatcher
from svod_runtime.priority import sliced
from svod_runtime.telemetry import continuing, current_trace_carrier


def metrics_only(version: int, consented: bool, created: bool) -> bool:
    """Whether segmentation may be told a batch's change of a profile with its metrics alone:
    the batch changed nothing else (no consent), and the profile either had been changed - and
    so announced whole - before (version > 1), or was created by the batch, so it has nothing
    but its metrics and times. (Version 1 on a profile that existed: created by another write
    that did not announce it, so it may hold more: announced whole.)"""
    return not consented and (version > 1 or created)


@dataclass(frozen=True)
class _Pending:
    customer_id: str
    event: EventFact
    carrier: dict[str, str]


def _customer_key(pending: _Pending) -> tuple[str]:
    return (pending.customer_id,)


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
        self._batcher: GroupCommitBatcher[_Pending, tuple[int, bool]] = GroupCommitBatcher(
            self._apply,
            apply_one=self._apply_alone,
            on_applied=on_announced,
            keys=_customer_key,
            repeat_keys=True,
            max_batch=max_batch,
            workers=workers,
        )

    async def submit(self, customer_id: str, event: EventFact) -> tuple[int, bool]:
        return await self._batcher.submit(_Pending(customer_id, event, current_trace_carrier()))

    async def submit_many(
        self, items: list[tuple[str, EventFact, dict[str, str]]]
    ) -> list[tuple[int, bool] | Exception]:
        """Applies (customer id, event, trace carrier) items; each gets its result or error."""
        return await self._batcher.submit_many([_Pending(*item) for item in items])

    async def _apply_alone(self, pending: _Pending) -> tuple[int, bool]:
        with continuing(pending.carrier):
            return await self.single(pending.customer_id, pending.event)

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
            consented: set[str] = set()  # profiles whose consents the batch changed
            for owner, pending in zip(owners, batch, strict=True):
                ref = (pending.event.source, pending.event.message_id)
                is_new = ref in inserted
                inserted.discard(ref)  # a duplicate inside the batch counts once
                changed.append(is_new)
                if is_new:
                    new_events[owner].append(pending.event)
                    carriers.setdefault(owner, pending.carrier)
            # Folding a batch's events into its profiles' metrics is a stretch of Python (up
            # to 25 ms for 500 under an import: docs/performance.md, "Long stretches").
            async for owner, events in sliced(new_events.items()):
                for event in events:
                    metrics[owner] = apply_event(metrics[owner], event)
                    opt_out = consent_from_event(event)
                    if opt_out is not None:
                        consented.add(owner)
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
                            events=tuple((e.source, e.message_id) for e in events),
                            metrics_only=metrics_only(
                                versions[owner], owner in consented, owner in repo.created
                            ),
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
