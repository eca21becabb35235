"""The ``ingestion`` schema of customer and event imports: the import jobs (``customer_imports``,
``kind`` telling them apart) and the records stored under an import (``records.import_id``, no
outbox entry)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from svod_ingestion.adapters.storage import DELIVERY_LOCK
from svod_ingestion.domain.imports import (
    CustomerImport,
    ImportKind,
    ImportPhase,
    ImportState,
    LostLease,
    OtherKind,
    Staged,
)
from svod_ingestion.domain.model import Incoming, MessageKind, StoredRecord
from svod_runtime.db import (
    array_literal,
    bytea_array_literal,
    fetch_direct,
    fetch_direct_pipelined,
)
from svod_runtime.outbox import OutboxLane, enqueue_many
from svod_runtime.telemetry import current_trace_carrier

# A new record id: a UUID of version 7 (RFC 9562: the time in milliseconds, then random bits),
# so an import's ids land at the right edge of ``records``' record_id index instead of at
# random pages of it. Measured on a copy of ``records`` (200,000 rows, 2,000 a statement, each
# written twice as an import does, two runs each under a load average of 17-19): 26.8-27.5 us
# of Postgres CPU per row against 29.7-30.2 with gen_random_uuid(); and a 10M-row import's
# index outgrows the buffer cache without random reads.
TIME_ORDERED_UUID = (
    "CAST(encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing "
    "substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) "
    "FROM 3) FROM 1 FOR 6), 52, 1), 53, 1), 'hex') AS uuid)"
)

# An import message's records, each under a new record id; only what the answer needs comes
# back: the hash is the one sent and received_at the transaction's now() (the column's
# default), and reading them back (a hex bytea and a timestamptz parsed in Python per row) was
# 121 of ImportStore.stage's 1,012 py-spy samples (bench_events_path, 200,000 events).
_INSERT_RECORDS = f"""
    INSERT INTO records (record_id, source, message_id, kind, channel, payload, payload_hash,
                         import_id)
    SELECT {TIME_ORDERED_UUID}, x.s, x.m, %(kind)s, x.ch, x.p, x.h, %(i)s
    FROM unnest(CAST(%(s)s AS text[]), CAST(%(m)s AS text[]), CAST(%(ch)s AS text[]),
                CAST(%(p)s AS bytea[]), CAST(%(h)s AS bytea[]))
         WITH ORDINALITY AS x(s, m, ch, p, h, n)
    ORDER BY x.n
    {{conflict}}
    RETURNING record_pk, record_id::text, source, message_id
    """

_COLUMNS = (
    "import_id, state, phase, records_staged, resolution_phase, records_total, "
    "records_resolved, results_after, records_delivered, records_failed, customers_created, "
    "records_linked, records_already_resolved, customers_merged, review_items_opened, error, "
    "created_at, committed_at, finished_at, kind, events_handed_over, events_applied, "
    "events_duplicate, events_erased, customers_changed"
)


def _job(row: Any) -> CustomerImport:
    return CustomerImport(
        import_id=row.import_id,
        state=ImportState(row.state),
        phase=ImportPhase(row.phase),
        records_staged=row.records_staged,
        resolution_phase=row.resolution_phase,
        records_total=row.records_total,
        records_resolved=row.records_resolved,
        results_after=row.results_after,
        records_delivered=row.records_delivered,
        records_failed=row.records_failed,
        customers_created=row.customers_created,
        records_linked=row.records_linked,
        records_already_resolved=row.records_already_resolved,
        customers_merged=row.customers_merged,
        review_items_opened=row.review_items_opened,
        error=row.error,
        created_at=row.created_at,
        committed_at=row.committed_at,
        finished_at=row.finished_at,
        kind=ImportKind(row.kind),
        events_handed_over=row.events_handed_over,
        events_applied=row.events_applied,
        events_duplicate=row.events_duplicate,
        events_erased=row.events_erased,
        customers_changed=row.customers_changed,
    )


class ImportStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def stage(
        self,
        import_id: str,
        rows: Sequence[tuple[Incoming, bytes]],
        kind: ImportKind = ImportKind.CUSTOMERS,
    ) -> Staged | ImportState:
        """Stores an import's records (message, payload hash) in one transaction, each under
        a new record id, opening the import if new; the import's state instead when it takes
        no records now.
        The import's row is held FOR SHARE meanwhile, so a commit waits for the message.
        OtherKind when the id names an import of the other kind."""
        async with self.engine.begin() as conn:
            # The import opened and held in one round trip, past SQLAlchemy.
            _, held = await fetch_direct_pipelined(
                conn,
                [
                    (
                        "INSERT INTO customer_imports (import_id, kind) VALUES (%(i)s, %(k)s) "
                        "ON CONFLICT (import_id) DO NOTHING",
                        {"i": import_id, "k": kind.value},
                    ),
                    (
                        "SELECT state, kind, now() AS now FROM customer_imports "
                        "WHERE import_id = %(i)s FOR SHARE",
                        {"i": import_id},
                    ),
                ],
            )
            current = held[0]
            if current.kind != kind:
                raise OtherKind(ImportKind(current.kind))
            state = current.state
            if state != ImportState.STAGING:
                return ImportState(state)
            if not rows:
                return Staged({}, {})
            # Past SQLAlchemy (fetch_direct), record ids made by Postgres (TIME_ORDERED_UUID):
            # building the answer from SQLAlchemy's rows was 130 of ingestion's 1,536 py-spy
            # samples of staging and uuid4 with its str() 90 (bench_events_path, 200,000
            # events). Array literals, one text parameter each: psycopg dumping the lists element by
            # element was 65 of this method's 170 py-spy samples (100,000 events through
            # `svod import events`, bench_events_path).
            params = {
                "i": import_id,
                "kind": (
                    MessageKind.IDENTIFY if kind is ImportKind.CUSTOMERS else MessageKind.TRACK
                ).value,
                "s": array_literal(r[0].source for r in rows),
                "m": array_literal(r[0].message_id for r in rows),
                "ch": array_literal(r[0].channel for r in rows),
                "p": bytea_array_literal(r[0].payload for r in rows),
                "h": bytea_array_literal(r[1] for r in rows),
            }
            # A plain INSERT first, in a savepoint: a message's records are new unless it is
            # sent again (or repeats one), which is rare; only when it meets a stored one (a
            # unique violation) is it inserted again with ON CONFLICT DO NOTHING. ON CONFLICT's
            # speculative insertion cost about 4 us of Postgres CPU per row (a copy of
            # ``records``, 100,000 rows 1,000 a statement: 22.5 against 18.1 us/row, probe).
            driver = (await conn.get_raw_connection()).driver_connection
            try:
                # driver_connection is typed as any DBAPI driver's (or None); here it is
                # psycopg's AsyncConnection, whose transaction() is the savepoint.
                async with driver.transaction():  # type: ignore[union-attr]
                    inserted = await fetch_direct(conn, _INSERT_RECORDS.format(conflict=""), params)
            except psycopg.errors.UniqueViolation:
                inserted = await fetch_direct(
                    conn,
                    _INSERT_RECORDS.format(conflict="ON CONFLICT (source, message_id) DO NOTHING"),
                    params,
                )
            received_at = current.now
            # A ref twice in the message: the first copy is the one inserted (ORDER BY x.n).
            hashes = {(r[0].source, r[0].message_id): r[1] for r in reversed(rows)}
            stored = {
                (source, message_id): StoredRecord(
                    pk, record_id, hashes[(source, message_id)], received_at
                )
                for pk, record_id, source, message_id in inserted
            }
            others = [(r[0].source, r[0].message_id) for r in rows]
            others = [ref for ref in others if ref not in stored]
            earlier: dict[tuple[str, str], tuple[StoredRecord, str | None]] = {}
            if others:
                found = await conn.execute(
                    text(
                        "SELECT r.record_pk, r.record_id, r.source, r.message_id, "
                        "r.payload_hash, r.received_at, r.import_id, r.payload "
                        "FROM records r JOIN unnest(CAST(:s AS text[]), CAST(:m AS text[])) "
                        "AS x(s, m) ON r.source = x.s AND r.message_id = x.m"
                    ),
                    {"s": [r[0] for r in others], "m": [r[1] for r in others]},
                )
                earlier = {
                    (r.source, r.message_id): (
                        StoredRecord(
                            r.record_pk, str(r.record_id), bytes(r.payload_hash), r.received_at
                        ),
                        r.import_id,
                    )
                    for r in found
                }
            return Staged(stored, earlier)

    async def payloads_by_pk(self, record_pks: Sequence[int]) -> dict[int, bytes]:
        """Stored requests of records (erased ones left out)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT record_pk, payload FROM records "
                    "WHERE record_pk = ANY(:p) AND payload IS NOT NULL"
                ),
                {"p": list(record_pks)},
            )
            return {int(r.record_pk): bytes(r.payload) for r in rows}

    async def staged_with_identity(self, import_id: str, import_staged: int) -> None:
        """Identity's count of the import's staged records (over every stream)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE customer_imports SET records_staged = greatest(records_staged, :n) "
                    "WHERE import_id = :i"
                ),
                {"i": import_id, "n": import_staged},
            )

    async def fail_records(self, record_pks: Sequence[int], errors: Sequence[str]) -> None:
        """Records of an import refused by identity: failed with the reason, never resolved."""
        if not record_pks:
            return
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE records r SET state = 'failed', last_error = x.e, attempts = 1 "
                    "FROM unnest(CAST(:p AS bigint[]), CAST(:e AS text[])) AS x(p, e) "
                    "WHERE r.record_pk = x.p AND r.state = 'pending'"
                ),
                {"p": list(record_pks), "e": list(errors)},
            )

    async def get(self, import_id: str, kind: ImportKind | None = None) -> CustomerImport | None:
        """The import (of ``kind`` when given: None for one of the other kind)."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    text(f"SELECT {_COLUMNS} FROM customer_imports WHERE import_id = :i"),
                    {"i": import_id},
                )
            ).first()
        if row is None or (kind is not None and row.kind != kind):
            return None
        return _job(row)

    async def commit(
        self, import_id: str, kind: ImportKind = ImportKind.CUSTOMERS
    ) -> CustomerImport | None:
        """Starts the import's job (once: a committed import stays as it is); None when there
        is no import of ``kind`` by that id."""
        # An event import's job starts by profile's fold; a customer import's by resolving.
        phase = ImportPhase.RESOLVING if kind is ImportKind.CUSTOMERS else ImportPhase.FOLDING
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE customer_imports SET state = 'running', phase = :p, "
                    "committed_at = now() "
                    "WHERE import_id = :i AND state = 'staging' AND kind = :k"
                ),
                {"i": import_id, "p": phase.value, "k": kind.value},
            )
        return await self.get(import_id, kind)

    # -- event imports ---------------------------------------------------------------------

    async def staged_with_profile(
        self, import_id: str, attributed: Sequence[tuple[int, str]], import_staged: int
    ) -> None:
        """Events of the import profile now has staged (record pk, customer id), noted as one
        row of ``event_import_staged`` (the job delivers exactly these, to these customers), and
        profile's count of the import's staged events. Not an UPDATE of their ``records`` rows:
        that was a second write of each row through its four indexes, in a plan scanning the
        whole import so far per message (migration ingestion_0008)."""
        async with self.engine.begin() as conn:
            if attributed:
                await conn.execute(
                    text(
                        "INSERT INTO event_import_staged (import_id, record_pks, customer_ids) "
                        "VALUES (:i, CAST(:p AS bigint[]), CAST(:c AS uuid[]))"
                    ),
                    {
                        "i": import_id,
                        "p": array_literal(str(a[0]) for a in attributed),
                        "c": array_literal(a[1] for a in attributed),
                    },
                )
            await conn.execute(
                text(
                    "UPDATE customer_imports SET records_staged = greatest(records_staged, :n) "
                    "WHERE import_id = :i"
                ),
                {"i": import_id, "n": import_staged},
            )

    async def hand_over(self, import_id: str, record_pks: Sequence[int]) -> int:
        """Events of the import not attributable now, handed to the streaming delivery in one
        transaction: they leave the import (a re-sent copy is then a duplicate of another path)
        and get an outbox entry in the bulk lane, as a TrackStream's events do; how many."""
        if not record_pks:
            return 0
        async with self.engine.begin() as conn:
            moved = [
                int(r.record_pk)
                for r in await conn.execute(
                    text(
                        "UPDATE records SET import_id = NULL "
                        "WHERE record_pk = ANY(:p) AND import_id = :i AND state = 'pending' "
                        "RETURNING record_pk"
                    ),
                    {"i": import_id, "p": list(record_pks)},
                )
            ]
            moved.sort()
            carrier = current_trace_carrier()
            await enqueue_many(
                conn,
                MessageKind.TRACK.topic,
                [(str(pk), b"", carrier) for pk in moved],
                OutboxLane.BULK,
            )
            await conn.execute(
                text(
                    "UPDATE customer_imports SET events_handed_over = events_handed_over + :n "
                    "WHERE import_id = :i"
                ),
                {"i": import_id, "n": len(moved)},
            )
        return len(moved)

    async def deliver_staged(
        self, import_id: str, owner: str, lease_s: float, not_staged: str
    ) -> tuple[int, int]:
        """Once profile has folded the import: its events staged with profile delivered (to
        the customer noted at staging), the others still pending (stored, never staged with
        profile) failed with ``not_staged``, in one transaction under the delivery lock
        (shared, as the relay's passes: an erasure waits); (delivered, failed)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": DELIVERY_LOCK}
            )
            # No nested loop: the import's rows were just written, so until autovacuum's
            # ANALYZE the planner takes the import for one row and joined it with the staged
            # notes in a nested loop, rescanning all of them for each record (EXPLAIN ANALYZE,
            # 20,000 events with fresh statistics: 103.8 s, 199,990,000 rows compared; as a
            # hash join 0.35 s). A bench import of 20,000 events took 82-110 s end to end.
            await conn.execute(text("SET LOCAL enable_nestloop = off"))
            # The first noted customer of a record: profile keeps the first staged copy.
            delivered = await conn.execute(
                text(
                    """
                    WITH s AS (
                        SELECT DISTINCT ON (x.p) x.p, x.c
                        FROM event_import_staged m,
                             unnest(m.record_pks, m.customer_ids) AS x(p, c)
                        WHERE m.import_id = :i ORDER BY x.p, m.seq
                    )
                    UPDATE records r SET state = 'delivered', customer_id = s.c,
                           attempts = r.attempts + 1, delivered_at = now(), last_error = NULL
                    FROM s
                    WHERE r.record_pk = s.p AND r.import_id = :i AND r.state = 'pending'
                    """
                ),
                {"i": import_id},
            )
            # The rest: delivered when noted on the row itself (staged before ingestion_0008),
            # otherwise never staged with profile: failed.
            rest = (
                await conn.execute(
                    text(
                        """
                        WITH u AS (
                            UPDATE records SET
                                state = CASE WHEN customer_id IS NULL THEN 'failed'
                                             ELSE 'delivered' END,
                                attempts = CASE WHEN customer_id IS NULL THEN 1
                                                ELSE attempts + 1 END,
                                delivered_at = CASE WHEN customer_id IS NULL THEN NULL
                                                    ELSE now() END,
                                last_error = CASE WHEN customer_id IS NULL THEN :e END
                            WHERE import_id = :i AND state = 'pending'
                            RETURNING state
                        )
                        SELECT count(*) FILTER (WHERE state = 'delivered') AS delivered,
                               count(*) FILTER (WHERE state = 'failed') AS failed
                        FROM u
                        """
                    ),
                    {"i": import_id, "e": not_staged},
                )
            ).one()
            await conn.execute(
                text("DELETE FROM event_import_staged WHERE import_id = :i"), {"i": import_id}
            )
            counts = (int(delivered.rowcount or 0) + int(rest.delivered), int(rest.failed))
            await self._fenced(
                conn,
                import_id,
                owner,
                lease_s,
                "records_delivered = records_delivered + :d, records_failed = records_failed + :f",
                {"d": counts[0], "f": counts[1]},
            )
        return counts

    async def claim(self, owner: str, lease_s: float) -> CustomerImport | None:
        """The oldest running import whose job nobody holds (or whose holder's lease ran out:
        it crashed), now leased to ``owner``."""
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    text(
                        f"""
                        UPDATE customer_imports SET lease_owner = :o,
                               lease_until = now() + make_interval(secs => :s)
                        WHERE import_id = (
                            SELECT import_id FROM customer_imports
                            WHERE state = 'running'
                              AND (lease_until IS NULL OR lease_until < now())
                            ORDER BY committed_at LIMIT 1 FOR UPDATE SKIP LOCKED)
                        RETURNING {_COLUMNS}
                        """
                    ),
                    {"o": owner, "s": lease_s},
                )
            ).first()
        return None if row is None else _job(row)

    async def _fenced(
        self,
        conn: AsyncConnection,
        import_id: str,
        owner: str,
        lease_s: float,
        fields: str,
        values: dict[str, Any],
    ) -> None:
        result = await conn.execute(
            text(
                f"UPDATE customer_imports SET {fields}"
                f"{', ' if fields else ''}lease_until = now() + make_interval(secs => :lease_s) "
                "WHERE import_id = :import_id AND lease_owner = :owner"
            ),
            {**values, "import_id": import_id, "owner": owner, "lease_s": lease_s},
        )
        if result.rowcount != 1:
            raise LostLease(import_id)

    async def update(self, import_id: str, owner: str, lease_s: float, **values: Any) -> None:
        """Sets the job's fields (names of ``customer_imports``' columns) and renews its lease;
        LostLease when another worker holds it now."""
        fields = ", ".join(f"{name} = :{name}" for name in values)
        if "finished_at" in values:
            values["finished_at"] = None
            fields = fields.replace("finished_at = :finished_at", "finished_at = now()")
        async with self.engine.begin() as conn:
            await self._fenced(conn, import_id, owner, lease_s, fields, values)

    async def pending_records(
        self, import_id: str, refs: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[int, bytes]]:
        """The import's records not delivered yet among ``refs``: (record pk, stored request)
        by (source, message id); erased or settled ones left out."""
        if not refs:
            return {}
        # Past SQLAlchemy, the refs as two text parameters: psycopg dumping the lists element
        # by element and SQLAlchemy's rows were 36% of ingestion's py-spy samples of the fold
        # (bench_customers_path --paths batch, 99,962 records).
        async with self.engine.connect() as conn:
            rows = await fetch_direct(
                conn,
                "SELECT r.record_pk, r.source, r.message_id, r.payload FROM records r "
                "JOIN unnest(CAST(%(s)s AS text[]), CAST(%(m)s AS text[])) AS x(s, m) "
                "ON r.source = x.s AND r.message_id = x.m "
                "WHERE r.import_id = %(i)s AND r.state = 'pending' AND r.payload IS NOT NULL",
                {
                    "i": import_id,
                    "s": array_literal(r[0] for r in refs),
                    "m": array_literal(r[1] for r in refs),
                },
            )
            return {(r.source, r.message_id): (r.record_pk, bytes(r.payload)) for r in rows}

    async def settle(
        self,
        import_id: str,
        owner: str,
        lease_s: float,
        delivered: Sequence[tuple[int, str]],
        failed: Sequence[tuple[int, str]],
        results_after: int,
    ) -> None:
        """One transaction: records delivered (record pk, customer id) and failed (record pk,
        reason), and the job's resume point moved past them - so a crash either redoes the
        part (profile's ApplyBatch is idempotent by record) or not at all. Holds the delivery
        lock shared, as the relay's passes do: an erasure waits for it."""
        async with self.engine.begin() as conn:
            await conn.execute(
                text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": DELIVERY_LOCK}
            )
            await self._fenced(
                conn,
                import_id,
                owner,
                lease_s,
                "results_after = :after, records_delivered = records_delivered + :d, "
                "records_failed = records_failed + :f",
                {"after": results_after, "d": len(delivered), "f": len(failed)},
            )
            if delivered:
                await fetch_direct(
                    conn,
                    "UPDATE records r SET state = 'delivered', customer_id = x.c, "
                    "attempts = attempts + 1, delivered_at = now(), last_error = NULL "
                    "FROM unnest(CAST(%(p)s AS bigint[]), CAST(%(c)s AS uuid[])) AS x(p, c) "
                    "WHERE r.record_pk = x.p AND r.state = 'pending'",
                    {
                        "p": array_literal(str(d[0]) for d in delivered),
                        "c": array_literal(d[1] for d in delivered),
                    },
                )
            if failed:
                await conn.execute(
                    text(
                        "UPDATE records r SET state = 'failed', last_error = x.e, "
                        "attempts = attempts + 1 "
                        "FROM unnest(CAST(:p AS bigint[]), CAST(:e AS text[])) AS x(p, e) "
                        "WHERE r.record_pk = x.p AND r.state = 'pending'"
                    ),
                    {"p": [f[0] for f in failed], "e": [f[1] for f in failed]},
                )

    async def fail_leftovers(self, import_id: str, owner: str, lease_s: float, error: str) -> int:
        """The import's records still pending once every result is folded (never staged with
        identity): failed with ``error``; how many."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                text(
                    "UPDATE records SET state = 'failed', last_error = :e, attempts = 1 "
                    "WHERE import_id = :i AND state = 'pending'"
                ),
                {"i": import_id, "e": error},
            )
            count = int(result.rowcount or 0)
            await self._fenced(
                conn,
                import_id,
                owner,
                lease_s,
                "records_failed = records_failed + :n",
                {"n": count},
            )
        return count

    async def release(self, import_id: str, owner: str) -> None:
        """Gives the job's lease up (the worker stops): another may take it at once."""
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE customer_imports SET lease_owner = NULL, lease_until = NULL "
                    "WHERE import_id = :i AND lease_owner = :o"
                ),
                {"i": import_id, "o": owner},
            )
