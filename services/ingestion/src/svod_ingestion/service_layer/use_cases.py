"""Ingestion use cases: accept a message durably, exactly once per (source, message id)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable

from svod_ingestion.adapters.storage import IngestionStore
from svod_ingestion.domain.model import Accepted, RecordStatus
from svod_runtime.errors import AlreadyExists, NotFound, ViolationCollector


class IngestionService:
    def __init__(self, store: IngestionStore, on_enqueued: Callable[[], None]) -> None:
        self.store = store
        # Wakes the local relay right after commit, so delivery does not wait for a poll.
        self.on_enqueued = on_enqueued

    async def accept(
        self,
        *,
        kind: str,
        source: str,
        message_id: str,
        channel: str,
        fingerprint: bytes,
        payload: bytes,
    ) -> Accepted:
        """Stores the message and its outbox entry in one transaction.

        ``fingerprint`` is the request as the client sent it: a retry has the same one; a
        different payload under a used message id is refused with ALREADY_EXISTS.
        """
        payload_hash = hashlib.sha256(fingerprint).digest()
        async with self.store.transaction() as tx:
            stored = await tx.insert_record(
                record_id=str(uuid.uuid4()),
                source=source,
                message_id=message_id,
                kind=kind,
                channel=channel,
                payload=payload,
                payload_hash=payload_hash,
            )
            if stored is not None:
                await tx.enqueue(stored.record_pk, kind)
        if stored is not None:
            self.on_enqueued()
            return Accepted(stored.record_id, False, stored.received_at)
        async with self.store.transaction() as tx:
            existing = await tx.existing(source, message_id)
        if existing is None:  # pragma: no cover - the conflicting row cannot vanish
            raise NotFound("message vanished during retry")
        if existing.payload_hash != payload_hash:
            raise AlreadyExists(
                f"message id {message_id!r} of source {source!r} was already used for a "
                "different payload"
            )
        return Accepted(existing.record_id, True, existing.received_at)

    async def erase_payloads(self, refs: list[tuple[str, str]]) -> int:
        """Drops the stored requests (they hold personal data); the message ids stay, so a
        retry is still recognised and nothing is processed again."""
        errors = ViolationCollector()
        for index, (source, message_id) in enumerate(refs):
            if not source or not message_id:
                errors.add(f"record_refs[{index}]", "source and message_id are required")
        errors.raise_if_any()
        return await self.store.erase_payloads(refs)

    async def status(self, source: str, message_id: str) -> RecordStatus:
        found = await self.store.status(source, message_id)
        if found is None:
            raise NotFound(f"source {source!r} never sent message {message_id!r}")
        return found
