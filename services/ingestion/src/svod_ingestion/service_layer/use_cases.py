"""Ingestion use cases: accept a message durably, exactly once per (source, message id)."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any, TypeVar

from svod_ingestion.domain.attribution import HeldEvent, Issue, identifier_key
from svod_ingestion.domain.messages import validate_refs
from svod_ingestion.domain.model import (
    Accepted,
    Incoming,
    MessageKind,
    RecordStatus,
    StoredRecord,
)
from svod_ingestion.service_layer.ports import (
    HeldEvents,
    IdentifiersOf,
    IngestionRepository,
    IngestionUnit,
)
from svod_runtime.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    SvodError,
    ViolationCollector,
)
from svod_runtime.ids import MUST_BE_UUID, is_uuid
from svod_runtime.outbox import OutboxLane
from svod_runtime.paging import NOT_A_TOKEN, encode_page_token, number_token
from svod_runtime.transactions import ATTEMPTS as TRANSACTION_ATTEMPTS
from svod_runtime.transactions import run_in_transaction

log = logging.getLogger(__name__)

MAX_PAGE = 1_000
DEFAULT_PAGE = 100
MAX_RECHECK_IDS = 1_000
MAX_ERASED_IDENTIFIERS = 1_000
# last_error of a message dropped because the person it is about was erased.
ERASED_PENDING = "erased on request before delivery: the person was erased"


_Stored = TypeVar("_Stored", bound=tuple[Any, Any])


def _taken_before(
    messages: Sequence[Incoming], stored: Collection[tuple[str, str]]
) -> list[tuple[str, str]]:
    """The (source, message id) of the messages not stored by this call: taken before."""
    return [(m.source, m.message_id) for m in messages if (m.source, m.message_id) not in stored]


def _reused(message: Incoming) -> AlreadyExists:
    return AlreadyExists(
        f"message id {message.message_id!r} of source {message.source!r} was "
        "already used for a different payload"
    )


class IngestionService:
    def __init__(
        self,
        store: IngestionRepository,
        on_enqueued: Callable[[OutboxLane], None],
        held: HeldEvents,
        on_woken: Callable[[], None] | None = None,
        *,
        identifiers_of: IdentifiersOf,
    ) -> None:
        self.store = store
        # (type, value, namespace) of a stored message's identifiers.
        self.identifiers_of = identifiers_of
        # Wakes the local relay of the lane right after commit, so delivery does not wait for
        # a poll (only that lane's: a stream's chunk used to wake the interactive relay too,
        # a claim that found nothing for every chunk).
        self.on_enqueued = on_enqueued
        self.held = held
        # Wakes the held-event sweeper when events were made due.
        self.on_woken = on_woken or (lambda: None)

    async def accept(self, message: Incoming) -> Accepted:
        """Stores the message and its outbox entry in one transaction.

        A retry (same fingerprint) answers as the first time did; a different payload under a
        used message id is refused with ALREADY_EXISTS.
        """
        (outcome,) = await self.accept_many([message], OutboxLane.INTERACTIVE)
        if isinstance(outcome, SvodError):
            raise outcome
        return outcome

    async def accept_many(
        self, messages: Sequence[Incoming], lane: OutboxLane = OutboxLane.BULK
    ) -> list[Accepted | SvodError]:
        """Stores many messages and their outbox entries in one transaction (bulk streams):
        one commit instead of one per message. Each gets its own answer, as ``accept``.
        Their delivery waits in ``lane``: a bulk stream's in the bulk lane, so a single call
        accepted meanwhile is not queued behind it."""
        hashes = [hashlib.sha256(m.fingerprint).digest() for m in messages]
        rows = list(zip(messages, hashes, strict=True))

        async def store(
            tx: IngestionUnit,
        ) -> tuple[dict[tuple[str, str], StoredRecord], dict[tuple[str, str], StoredRecord]]:
            stored = await tx.store_new(rows, lane)
            return stored, await tx.existing_many(_taken_before(messages, stored))

        stored, earlier = await self._stored(store, lane)
        outcomes: list[Accepted | SvodError] = []
        claimed: set[tuple[str, str]] = set()
        for message, payload_hash in rows:
            ref = (message.source, message.message_id)
            if ref in stored and ref not in claimed:
                claimed.add(ref)  # a repeat inside the same call is a retry of this one
                repeated = stored[ref]
                outcomes.append(Accepted(repeated.record_id, False, repeated.received_at))
                continue
            record = stored[ref] if ref in stored else earlier.get(ref)
            if record is None:  # pragma: no cover - the conflicting row cannot vanish
                outcomes.append(NotFound("message vanished during retry"))
            elif record.payload_hash != payload_hash:
                outcomes.append(_reused(message))
            else:
                outcomes.append(Accepted(record.record_id, True, record.received_at))
        return outcomes

    async def accept_counted(
        self, messages: Sequence[Incoming], lane: OutboxLane = OutboxLane.BULK
    ) -> list[bool | SvodError]:
        """As ``accept_many``, for an answer that only counts them (a stream's): each
        message's outcome is True when this call stored it, False for a retry of one stored
        before (a duplicate), or its refusal. The records of the new ones are not read back
        (issue #20: that was a quarter of the CPU of storing a chunk)."""
        hashes = [hashlib.sha256(m.fingerprint).digest() for m in messages]
        rows = list(zip(messages, hashes, strict=True))

        async def store(
            tx: IngestionUnit,
        ) -> tuple[set[tuple[str, str]], dict[tuple[str, str], StoredRecord]]:
            new = await tx.store_new_refs(rows, lane)
            if len(new) == len(rows):
                return new, {}  # every message stored now (so no repeat among them either)
            return new, await tx.existing_many(_taken_before(messages, new))

        new, earlier = await self._stored(store, lane)
        if len(new) == len(rows):
            # The common case, answered without a look per message: as many new rows as
            # messages means every message was stored now.
            return [True] * len(rows)
        # The hash stored for each new message: its first copy's (a repeat is its retry).
        first: dict[tuple[str, str], bytes] = {}
        outcomes: list[bool | SvodError] = []
        for message, payload_hash in rows:
            ref = (message.source, message.message_id)
            if ref in new and ref not in first:
                first[ref] = payload_hash  # a repeat inside the same call is a retry of this one
                outcomes.append(True)
                continue
            if ref in new:
                stored_hash = first[ref]
            else:
                record = earlier.get(ref)
                if record is None:  # pragma: no cover - the conflicting row cannot vanish
                    outcomes.append(NotFound("message vanished during retry"))
                    continue
                stored_hash = record.payload_hash
            outcomes.append(False if stored_hash == payload_hash else _reused(message))
        return outcomes

    async def _stored(
        self, store: Callable[[IngestionUnit], Awaitable[_Stored]], lane: OutboxLane
    ) -> _Stored:
        # Concurrent streams sending the same ids in different orders wait on each other's
        # rows and one of them loses a deadlock: its chunk is stored again here (a stream is
        # read once, so the interceptor cannot run it again; the client would have to). Twice
        # the runtime's attempts: four such streams lost five in a row once at load 15.
        stored = await run_in_transaction(
            self.store.transaction, store, attempts=2 * TRANSACTION_ATTEMPTS
        )
        if stored[0]:
            self.on_enqueued(lane)
        return stored

    async def erase_payloads(
        self, refs: list[tuple[str, str]], identifiers: Sequence[tuple[str, str, str]] = ()
    ) -> int:
        """Drops the stored requests (they hold personal data); the message ids stay, so a
        retry is still recognised and nothing is processed again.

        Messages not delivered yet that carry one of ``identifiers`` are dropped too and fail
        as erased: delivered later they would bring the erased person back.
        """
        errors = ViolationCollector()
        if not refs and not identifiers:
            errors.add("record_refs", "give record_refs or identifiers")
        if len(identifiers) > MAX_ERASED_IDENTIFIERS:
            errors.add("identifiers", f"at most {MAX_ERASED_IDENTIFIERS}")
        errors.raise_if_any()
        if refs:
            validate_refs(refs, "record_refs")
        erased = 0
        keys = {identifier_key(*i) for i in identifiers if i[1].strip()}
        if keys:

            def carries(kind: MessageKind, payload: bytes) -> bool:
                return any(identifier_key(*i) in keys for i in self.identifiers_of(kind, payload))

            erased = await self.store.erase_pending(carries, ERASED_PENDING)
        return erased + await self.store.erase_payloads(refs)

    async def purge_expired_payloads(self, retention_days: float) -> int:
        """Drops the payloads kept longer than the retention after their delivery."""
        total = 0
        age = dt.timedelta(days=retention_days)
        while (purged := await self.store.purge_payloads(age)) > 0:
            total += purged
        return total

    async def run_payload_retention(self, retention_days: float, every_s: float = 3600.0) -> None:
        """Purges expired payloads now and then every ``every_s`` seconds."""
        while True:
            try:
                purged = await self.purge_expired_payloads(retention_days)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("purging expired payloads failed")
            else:
                if purged:
                    log.info(
                        "payloads purged after %g days", retention_days, extra={"count": purged}
                    )
            await asyncio.sleep(every_s)

    async def status(self, source: str, message_id: str) -> RecordStatus:
        found = await self.store.status(source, message_id)
        if found is None:
            raise NotFound(f"source {source!r} never sent message {message_id!r}")
        return found

    async def unattributed(
        self, issues: Sequence[Issue], page_size: int, page_token: str
    ) -> tuple[list[HeldEvent], str, dict[Issue, int]]:
        """A page of events not attributed (held ones unless ``issues`` says otherwise), the
        next page's token and the counts per issue."""
        errors = ViolationCollector()
        if page_size < 0 or page_size > MAX_PAGE:
            errors.add("page_size", f"between 0 and {MAX_PAGE}")
        after = 0
        if page_token:
            try:
                after = number_token(page_token)
            except InvalidArgument:
                errors.add("page_token", NOT_A_TOKEN)
        errors.raise_if_any()
        wanted = list(issues) or [i for i in Issue if not i.waiting]
        size = page_size or DEFAULT_PAGE
        rows = await self.held.page(wanted, after, size + 1)
        token = ""
        if len(rows) > size:
            rows = rows[:size]
            token = encode_page_token([str(rows[-1].record_pk)])
        return rows, token, await self.held.counts()

    async def recheck(self, customer_ids: Sequence[str], everything: bool) -> int:
        """Schedules a look now at held events naming one of these customers, or all."""
        errors = ViolationCollector()
        if not everything and not customer_ids:
            errors.add("customer_ids", "give customer ids, or all")
        if len(customer_ids) > MAX_RECHECK_IDS:
            errors.add("customer_ids", f"at most {MAX_RECHECK_IDS}")
        for index, value in enumerate(customer_ids):
            if not is_uuid(value):
                errors.add(f"customer_ids[{index}]", MUST_BE_UUID)
        errors.raise_if_any()
        if everything:
            count = await self.held.wake_all()
        else:
            count = await self.held.wake_by_candidates(sorted(set(customer_ids)))
        if count:
            self.on_woken()
        return count
