"""Events waiting for their customer or held unattributed: the ``held_events`` tables of the
``ingestion`` schema (see ``domain/attribution.py`` for the rules)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from svod_ingestion.domain.attribution import HeldEvent, Hold, Issue, recheck_delay_s
from svod_ingestion.domain.model import MessageKind
from svod_runtime.hashing import DEVELOPMENT_SECRET, keyed_hash
from svod_runtime.outbox import OutboxLane, enqueue_many

TRACK_TOPIC = MessageKind.TRACK.topic
IDENTIFY_TOPIC = MessageKind.IDENTIFY.topic


def key_hash(key: str, secret: bytes = DEVELOPMENT_SECRET) -> bytes:
    """What is stored of an identifier key to find held events by it: an HMAC under the
    deployment's secret (SVOD_HASH_SECRET), so a phone cannot be found by trying numbers."""
    return keyed_hash(secret, key)


class HeldEventStore:
    def __init__(
        self,
        engine: AsyncEngine,
        held_recheck_max_s: float,
        hash_secret: bytes = DEVELOPMENT_SECRET,
    ) -> None:
        self.engine = engine
        self.held_recheck_max_s = held_recheck_max_s
        self.hash_secret = hash_secret

    async def hold(self, holds: Sequence[Hold]) -> None:
        """Records each event's state after a look, in one transaction: waiting events stay
        pending, the others become unattributed; the next look is scheduled (at once when
        something woke the event while it was being looked at)."""
        if not holds:
            return
        pks = [h.record_pk for h in holds]
        async with self.engine.begin() as conn:
            known = {
                int(r.record_pk): r
                for r in await conn.execute(
                    text(
                        "SELECT record_pk, checks, queued_at, woken_at FROM held_events "
                        "WHERE record_pk = ANY(:p) FOR UPDATE"
                    ),
                    {"p": pks},
                )
            }
            now = dt.datetime.now(dt.UTC)
            due: list[dt.datetime] = []
            checks: list[int] = []
            for hold in holds:
                row = known.get(hold.record_pk)
                done = 0 if row is None else int(row.checks)
                woken = (
                    row is not None
                    and row.woken_at is not None
                    and (row.queued_at is None or row.woken_at >= row.queued_at)
                )
                delay = 0.0 if woken else recheck_delay_s(hold.issue, done, self.held_recheck_max_s)
                due.append(now + dt.timedelta(seconds=delay))
                checks.append(done + 1)
            await conn.execute(
                text(
                    """
                    INSERT INTO held_events (record_pk, issue, candidates, detail, checks,
                                             next_check_at, trace_carrier)
                    SELECT x.p, x.i, CAST(x.c AS uuid[]), x.d, x.n, x.at, CAST(x.tc AS jsonb)
                    FROM unnest(CAST(:p AS bigint[]), CAST(:i AS text[]), CAST(:c AS text[]),
                                CAST(:d AS text[]), CAST(:n AS int[]),
                                CAST(:at AS timestamptz[]), CAST(:tc AS text[]))
                         AS x(p, i, c, d, n, at, tc)
                    ON CONFLICT (record_pk) DO UPDATE SET
                        issue = excluded.issue, candidates = excluded.candidates,
                        detail = excluded.detail, checks = excluded.checks,
                        next_check_at = excluded.next_check_at, queued_at = NULL,
                        woken_at = NULL
                    """
                ),
                {
                    "p": pks,
                    "i": [h.issue.value for h in holds],
                    "c": ["{" + ",".join(h.candidates) + "}" for h in holds],
                    "d": [h.detail for h in holds],
                    "n": checks,
                    "at": due,
                    "tc": [json.dumps(h.trace_carrier) for h in holds],
                },
            )
            new = [h for h in holds if h.record_pk not in known]
            hashes = [
                (key_hash(k, self.hash_secret), h.record_pk)
                for h in new
                for k in dict.fromkeys(h.keys)
            ]
            if hashes:
                await conn.execute(
                    text(
                        "INSERT INTO held_event_keys (key_hash, record_pk) "
                        "SELECT * FROM unnest(CAST(:h AS bytea[]), CAST(:p AS bigint[])) "
                        "ON CONFLICT DO NOTHING"
                    ),
                    {"h": [h for h, _ in hashes], "p": [p for _, p in hashes]},
                )
            await conn.execute(
                text(
                    """
                    UPDATE records r SET
                        state = CASE WHEN x.w THEN 'pending' ELSE 'unattributed' END,
                        unknown_for_s = x.u, unknown_since = x.s
                    FROM unnest(CAST(:p AS bigint[]), CAST(:w AS bool[]),
                                CAST(:u AS float8[]), CAST(:s AS timestamptz[])) AS x(p, w, u, s)
                    WHERE r.record_pk = x.p AND r.state IN ('pending', 'unattributed')
                    """
                ),
                {
                    "p": pks,
                    "w": [h.issue.waiting for h in holds],
                    "u": [h.clock.used_s for h in holds],
                    "s": [h.clock.counting_since for h in holds],
                },
            )

    async def release(self, record_pks: Sequence[int]) -> None:
        """Events attributed by a look: no longer held (an unattributed one is pending again
        until its delivery to the profile is done)."""
        if not record_pks:
            return
        async with self.engine.begin() as conn:
            deleted = await conn.execute(
                text("DELETE FROM held_events WHERE record_pk = ANY(:p) RETURNING record_pk"),
                {"p": list(record_pks)},
            )
            gone = [int(r[0]) for r in deleted]
            if gone:
                await conn.execute(
                    text(
                        "UPDATE records SET state = 'pending' "
                        "WHERE record_pk = ANY(:p) AND state = 'unattributed'"
                    ),
                    {"p": gone},
                )

    async def requeue_due(self, limit: int) -> int:
        """Hands held events due for a look back to the outbox (each continuing its trace);
        returns how many."""
        return await self._requeue("next_check_at <= now()", limit)

    async def requeue_probe(self) -> int:
        """Hands back one event waiting for identity, due or not: a cheap probe whose answer
        (identity answers again) wakes all the others at once."""
        return await self._requeue("issue = 'identity_unavailable'", 1)

    async def _requeue(self, where: str, limit: int) -> int:
        async with self.engine.begin() as conn:
            rows = list(
                await conn.execute(
                    text(
                        f"""
                        WITH due AS (
                            SELECT record_pk FROM held_events
                            WHERE queued_at IS NULL AND {where}
                            ORDER BY next_check_at LIMIT :n FOR UPDATE SKIP LOCKED
                        )
                        UPDATE held_events h SET queued_at = now() FROM due
                        WHERE h.record_pk = due.record_pk
                        RETURNING h.record_pk, h.trace_carrier
                        """
                    ),
                    {"n": limit},
                )
            )
            await enqueue_many(
                conn,
                TRACK_TOPIC,
                [(str(r.record_pk), b"", dict(r.trace_carrier)) for r in rows],
                # Background work, possibly many at once: not ahead of single calls.
                OutboxLane.BULK,
            )
        return len(rows)

    async def wake_by_keys(self, keys: Iterable[str]) -> int:
        """Held events carrying one of these identifiers get a look now."""
        hashes = sorted({key_hash(k, self.hash_secret) for k in keys})
        if not hashes:
            return 0
        return await self._wake(
            "record_pk IN (SELECT record_pk FROM held_event_keys WHERE key_hash = ANY(:h))",
            {"h": hashes},
        )

    async def wake_by_candidates(self, customer_ids: Sequence[str]) -> int:
        if not customer_ids:
            return 0
        return await self._wake(
            "candidates && CAST(:c AS uuid[])", {"c": "{" + ",".join(customer_ids) + "}"}
        )

    async def wake_all(self) -> int:
        return await self._wake("true", {})

    async def wake_identity_waiters(self) -> int:
        """Identity answers again: events that waited for it get a look now."""
        return await self._wake("issue = 'identity_unavailable'", {})

    async def _wake(self, where: str, params: dict[str, object]) -> int:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                text(
                    "UPDATE held_events SET woken_at = now(), "
                    "next_check_at = least(next_check_at, now()) "
                    f"WHERE {where}"
                ),
                params,
            )
        return int(result.rowcount or 0)

    async def counts(self) -> dict[Issue, int]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT issue, count(*) FROM held_events GROUP BY issue")
            )
            return {Issue(r[0]): int(r[1]) for r in rows}

    async def page(self, issues: Sequence[Issue], after_pk: int, limit: int) -> list[HeldEvent]:
        """Held events with these issues, oldest (by record) first, after ``after_pk``."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                text(
                    """
                    SELECT h.record_pk, r.record_id, r.source, r.message_id, r.payload,
                           h.issue, h.candidates, r.received_at, h.held_at, h.checks,
                           h.next_check_at
                    FROM held_events h JOIN records r USING (record_pk)
                    WHERE h.issue = ANY(:i) AND h.record_pk > :a
                    ORDER BY h.record_pk LIMIT :n
                    """
                ),
                {"i": [i.value for i in issues], "a": after_pk, "n": limit},
            )
            return [
                HeldEvent(
                    int(r.record_pk),
                    str(r.record_id),
                    r.source,
                    r.message_id,
                    None if r.payload is None else bytes(r.payload),
                    Issue(r.issue),
                    tuple(str(c) for c in r.candidates),
                    r.received_at,
                    r.held_at,
                    int(r.checks),
                    r.next_check_at,
                )
                for r in rows
            ]

    async def pending_identify_payloads(self, limit: int) -> list[bytes] | None:
        """The stored requests of identify calls not yet resolved by identity (their outbox
        messages are still to deliver); None when there are more than ``limit`` (a backlog)."""
        async with self.engine.connect() as conn:
            rows = list(
                await conn.execute(
                    text(
                        """
                        SELECT r.payload FROM (
                            SELECT key FROM outbox
                            WHERE topic = :t AND failed_at IS NULL LIMIT :n
                        ) o JOIN records r ON r.record_pk = CAST(o.key AS bigint)
                        WHERE r.payload IS NOT NULL AND r.state = 'pending'
                        """
                    ),
                    {"t": IDENTIFY_TOPIC, "n": limit + 1},
                )
            )
        if len(rows) > limit:
            return None
        return [bytes(r[0]) for r in rows]
