"""Group commit: concurrent requests written together, one transaction for many.

Every request costs about the same few statements alone or with a hundred others, so the
requests that arrive while a batch is being written go together into the next one (no waiting:
a lone request goes at once). Up to ``workers`` batches are written at a time (one is prepared
while another waits on the database). A batch that fails as a whole is retried one request at
a time, so one bad request cannot fail its neighbours: each caller gets its own answer or its
own error.

With ``keys`` (e.g. the customers a request touches), batches in flight never share a key: a
request whose key is in a batch being written, or that waits behind another request with it,
waits for a later batch, so the requests of one key are applied in the order they came. A
batch holds one request a key, unless ``repeat_keys``: then it takes a key's requests together,
in order (for an ``apply`` that handles one key's requests in order within its transaction).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


@dataclass(eq=False)
class _Waiting(Generic[T, R]):
    item: T
    keys: frozenset[str]
    done: asyncio.Future[R]


class GroupCommitBatcher(Generic[T, R]):
    """Applies submitted items in batches (see the module's docstring).

    ``apply`` writes a batch and answers each of its items in order. ``apply_one`` writes one
    item alone when its batch failed (default: ``apply`` of that item alone). ``on_applied``
    runs after each batch written whole.
    """

    def __init__(
        self,
        apply: Callable[[list[T]], Awaitable[list[R]]],
        *,
        apply_one: Callable[[T], Awaitable[R]] | None = None,
        keys: Callable[[T], Iterable[str]] | None = None,
        on_applied: Callable[[], None] | None = None,
        max_batch: int = 200,
        workers: int = 2,
        repeat_keys: bool = False,
    ) -> None:
        self.apply = apply
        self.apply_one = apply_one or self._apply_alone
        self.keys = keys
        self.repeat_keys = repeat_keys
        self.on_applied = on_applied
        self.max_batch = max(1, max_batch)
        self.workers = max(1, workers)
        self._queue: collections.deque[_Waiting[T, R]] = collections.deque()
        # Keys of the batches being written.
        self._busy: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        # Workers running; counted down in the same step that finds nothing left to take.
        self._running = 0

    async def submit(self, item: T) -> R:
        (waiting,) = self._enqueue([item])
        return await waiting.done

    async def submit_many(self, items: Sequence[T]) -> list[R | Exception]:
        """Each item's answer, or its own error, in order."""
        outcomes: list[R | Exception] = []
        for waiting in self._enqueue(items):
            try:
                outcomes.append(await waiting.done)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - this item's own error, handed back
                outcomes.append(error)
        return outcomes

    def _enqueue(self, items: Sequence[T]) -> list[_Waiting[T, R]]:
        loop = asyncio.get_running_loop()
        waiting = [
            _Waiting(
                item, frozenset(self.keys(item)) if self.keys else frozenset(), loop.create_future()
            )
            for item in items
        ]
        self._queue.extend(waiting)
        # A worker per batch's worth of new items, up to ``workers`` in all.
        wanted = min(self.workers - self._running, math.ceil(len(waiting) / self.max_batch))
        for _ in range(wanted):
            self._running += 1
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return waiting

    def _next_batch(self) -> list[_Waiting[T, R]]:
        batch: list[_Waiting[T, R]] = []
        taken: set[str] = set()
        blocked = set(self._busy)
        deferred: list[_Waiting[T, R]] = []
        while self._queue and len(batch) < self.max_batch:
            waiting = self._queue.popleft()
            if waiting.done.done():  # the caller gave up before it started
                continue
            if (waiting.keys & taken and not self.repeat_keys) or waiting.keys & blocked:
                blocked |= waiting.keys
                deferred.append(waiting)
            else:
                taken |= waiting.keys
                batch.append(waiting)
        self._queue.extendleft(reversed(deferred))
        self._busy |= taken
        return batch

    async def _drain(self) -> None:
        batch: list[_Waiting[T, R]] = []
        try:
            while batch := self._next_batch():
                try:
                    await self._write(batch)
                finally:
                    for waiting in batch:
                        self._busy -= waiting.keys
        except asyncio.CancelledError:
            # Shutdown: nobody waits forever.
            for waiting in [*batch, *self._queue]:
                if not waiting.done.done():
                    waiting.done.cancel()
            self._queue.clear()
            raise
        finally:
            self._running -= 1

    async def _write(self, batch: list[_Waiting[T, R]]) -> None:
        try:
            outcomes = await self.apply([waiting.item for waiting in batch])
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - one by one, each with its own error
            if len(batch) > 1:
                log.warning("batch of %d failed; applying one by one", len(batch))
            await self._one_by_one(batch)
            return
        for waiting, outcome in zip(batch, outcomes, strict=True):
            if not waiting.done.done():
                waiting.done.set_result(outcome)
        if self.on_applied is not None:
            self.on_applied()

    async def _one_by_one(self, batch: list[_Waiting[T, R]]) -> None:
        for waiting in batch:
            try:
                outcome = await self.apply_one(waiting.item)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - handed to the waiting caller
                if not waiting.done.done():
                    waiting.done.set_exception(error)
            else:
                if not waiting.done.done():
                    waiting.done.set_result(outcome)

    async def _apply_alone(self, item: T) -> R:
        (outcome,) = await self.apply([item])
        return outcome
