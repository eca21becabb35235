"""Ingestion use cases: accept a message durably, exactly once per (source, message id)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Sequence

from svod_ingestion.adapters.storage import IngestionStore
from svod_ingestion.domain.messages import validate_refs
from svod_ingestion.domain.model import Accepted, Incoming, RecordStatus
from svod_runtime.errors import AlreadyExists, NotFound, SvodError


class IngestionService:
    def __init__(self, store: IngestionStore, on_enqueued: Callable[[], None]) -> None:
        self.store = store
        # Wakes the local relay right after commit, so delivery does not wait for a poll.
        self.on_enqueued = on_enqueued

    async def accept(self, message: Incoming) -> Accepted:
        """Stores the message and its outbox entry in one transaction.

        A retry (same fingerprint) answers as the first time did; a different payload under a
        used message id is refused with ALREADY_EXISTS.
        """
        (outcome,) = await self.accept_many([message])
        if isinstance(outcome, SvodError):
            raise outcome
        return outcome

    async def accept_many(self, messages: Sequence[Incoming]) -> list[Accepted | SvodError]:
        """Stores many messages and their outbox entries in one transaction (bulk streams):
        one commit instead of one per message. Each gets its own answer, as ``accept``."""
        hashes = [hashlib.sha256(m.fingerprint).digest() for m in messages]
        async with self.store.transaction() as tx:
            stored = await tx.insert_records(
                [(str(uuid.uuid4()), m, h) for m, h in zip(messages, hashes, strict=True)]
            )
            await tx.enqueue_many([(s.record_pk, k) for (k, s) in stored.values()])
            taken = [(m.source, m.message_id) for m in messages]
            earlier = await tx.existing_many([ref for ref in taken if ref not in stored])
        if stored:
            self.on_enqueued()
        outcomes: list[Accepted | SvodError] = []
        claimed: set[tuple[str, str]] = set()
        for message, payload_hash, ref in zip(messages, hashes, taken, strict=True):
            if ref in stored and ref not in claimed:
                claimed.add(ref)  # a repeat inside the same call is a retry of this one
                record = stored[ref][1]
                outcomes.append(Accepted(record.record_id, False, record.received_at))
                continue
            record = stored[ref][1] if ref in stored else earlier.get(ref)
            if record is None:  # pragma: no cover - the conflicting row cannot vanish
                outcomes.append(NotFound("message vanished during retry"))
            elif record.payload_hash != payload_hash:
                outcomes.append(
                    AlreadyExists(
                        f"message id {message.message_id!r} of source {message.source!r} was "
                        "already used for a different payload"
                    )
                )
            else:
                outcomes.append(Accepted(record.record_id, True, record.received_at))
        return outcomes

    async def erase_payloads(self, refs: list[tuple[str, str]]) -> int:
        """Drops the stored requests (they hold personal data); the message ids stay, so a
        retry is still recognised and nothing is processed again."""
        validate_refs(refs, "record_refs")
        return await self.store.erase_payloads(refs)

    async def status(self, source: str, message_id: str) -> RecordStatus:
        found = await self.store.status(source, message_id)
        if found is None:
            raise NotFound(f"source {source!r} never sent message {message_id!r}")
        return found
