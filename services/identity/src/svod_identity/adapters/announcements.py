"""What changes to the identity graph announce through the outbox: merges and splits to
profile, customers whose events may now be attributed to ingestion, suspected duplicates and
blocked identifiers to quality."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from svod_identity.adapters.encoding import to_json
from svod_identity.domain.announcements import (
    ATTRIBUTION_TOPIC,
    MERGED_TOPIC,
    QUALITY_TOPIC,
    SPLIT_TOPIC,
)
from svod_identity.domain.identifiers import IdentifierKey
from svod_runtime.outbox import enqueue

__all__ = [
    "ATTRIBUTION_TOPIC",
    "MERGED_TOPIC",
    "QUALITY_TOPIC",
    "SPLIT_TOPIC",
    "Announcements",
]


class Announcements:
    """Outbox messages written in the transaction of the change they announce."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def announce(self, topic: str, key: str, payload: bytes) -> None:
        await enqueue(self.conn, topic, key, payload)

    async def announce_changed(self, customer_ids: Sequence[str], everything: bool = False) -> None:
        """Ingestion takes another look at events it holds for these customers (or all)."""
        payload = {"all": True} if everything else {"customer_ids": sorted(set(customer_ids))}
        await enqueue(self.conn, ATTRIBUTION_TOPIC, "changed", to_json(payload).encode())

    async def report_quality(
        self,
        *,
        pairs: Sequence[tuple[str, str, float]] = (),
        resolved: Sequence[tuple[str, str]] = (),
        blocked: Sequence[IdentifierKey] = (),
    ) -> None:
        payload = {
            "at": dt.datetime.now(dt.UTC).isoformat(),
            "pairs": [list(p) for p in pairs if p[0] and p[1]],
            "resolved": [list(p) for p in resolved],
            "blocked": [[k.type, k.namespace, k.value] for k in blocked],
        }
        if payload["pairs"] or payload["resolved"] or payload["blocked"]:
            await enqueue(self.conn, QUALITY_TOPIC, str(uuid.uuid4()), to_json(payload).encode())
