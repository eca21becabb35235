"""Batch jobs and staged import records in the ``identity`` schema (the service's side).

The batch worker reads and writes the graph through ``bulk_storage`` (its own process); this
module is what the gRPC service does with jobs: stage records (``COPY``), commit, read a job,
claim the next one to run, and stream an import's results.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from svod_identity.adapters.bulk_storage import dumps, release_merges
from svod_identity.adapters.job_queue import queue_reresolve
from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.jobs import (
    MAX_ATTEMPTS,
    ImportResult,
    Job,
    JobKind,
    JobOutcome,
    JobPhase,
    JobState,
    StageResult,
)
from svod_identity.domain.model import IncomingRecord, RecordRef, ResolutionOutcome

# How long a worker's claim on a job lasts without its heartbeat (it renews every
# LEASE_RENEW_S); a job whose worker died is started again after it.
LEASE_S = 60
LEASE_RENEW_S = 10
# Results of ListImportResults fetched per query.
RESULTS_PAGE = 5_000
# Staged records the batch worker reads per query.
READ_PAGE = 5_000
_CLAIM_LOCK = "identity-batch-claim"

__all__ = ["LEASE_RENEW_S", "LEASE_S", "ImportResult", "Job", "JobStore", "StageResult", "job_of"]


_JOB_COLUMNS = (
    "job_pk, job_id, kind, state, phase, dry_run, actor, reason, records_staged, records_total, "
    "records_done, outcome, error, attempts, created_at, started_at, finished_at, candidate_rules"
)


def job_of(row: Any) -> Job:
    return Job(
        job_pk=int(row.job_pk),
        job_id=row.job_id,
        kind=JobKind(row.kind),
        state=JobState(row.state),
        phase=JobPhase(row.phase),
        dry_run=bool(row.dry_run),
        actor=row.actor,
        reason=row.reason,
        records_staged=int(row.records_staged),
        records_total=int(row.records_total),
        records_done=int(row.records_done),
        outcome=JobOutcome.from_dict(row.outcome),
        error=row.error,
        attempts=int(row.attempts),
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        candidate_rules=row.candidate_rules,
    )


class JobStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def job(self, job_id: str) -> Job | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    text(f"SELECT {_JOB_COLUMNS} FROM resolution_jobs WHERE job_id = :j"),
                    {"j": job_id},
                )
            ).first()
        return None if row is None else job_of(row)

    async def stage(self, job_id: str, records: Sequence[IncomingRecord]) -> StageResult | Job:
        """Stages ``records`` in the import ``job_id`` (opened if new), in one transaction.

        Returns the job instead when it is not an import taking records (committed, or a
        re-resolution's id): nothing is staged then.
        """
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO resolution_jobs (job_id, kind, state) "
                    "VALUES (:j, 'import', 'staging') ON CONFLICT (job_id) DO NOTHING"
                ),
                {"j": job_id},
            )
            row = (
                await conn.execute(
                    text(
                        f"SELECT {_JOB_COLUMNS} FROM resolution_jobs WHERE job_id = :j FOR UPDATE"
                    ),
                    {"j": job_id},
                )
            ).one()
            job = job_of(row)
            if job.kind is not JobKind.IMPORT or job.state is not JobState.STAGING:
                return job
            staged = await _copy_staged(conn, job.job_pk, records) if records else 0
            total = (
                await conn.execute(
                    text(
                        "UPDATE resolution_jobs SET records_staged = records_staged + :n "
                        "WHERE job_pk = :p RETURNING records_staged"
                    ),
                    {"n": staged, "p": job.job_pk},
                )
            ).scalar_one()
        return StageResult(staged, len(records) - staged, int(total))

    async def commit_import(self, job_id: str) -> Job | None:
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE resolution_jobs SET state = 'queued', queued_at = now() "
                    "WHERE job_id = :j AND kind = 'import' AND state = 'staging'"
                ),
                {"j": job_id},
            )
            row = (
                await conn.execute(
                    text(f"SELECT {_JOB_COLUMNS} FROM resolution_jobs WHERE job_id = :j"),
                    {"j": job_id},
                )
            ).first()
        return None if row is None else job_of(row)

    async def request_reresolve(self, job_id: str, dry_run: bool, actor: str, reason: str) -> Job:
        """Queues a re-resolution named ``job_id``, or returns the job of that name."""
        async with self.engine.begin() as conn:
            await queue_reresolve(conn, job_id, dry_run, actor, reason)
            row = (
                await conn.execute(
                    text(f"SELECT {_JOB_COLUMNS} FROM resolution_jobs WHERE job_id = :j"),
                    {"j": job_id},
                )
            ).one()
        return job_of(row)

    async def request_preview(self, job_id: str, candidate_rules: dict[str, Any]) -> Job:
        """Queues a PreviewRules job: a dry-run re-resolution under ``candidate_rules``."""
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    text(
                        "INSERT INTO resolution_jobs (job_id, kind, state, dry_run, reason, "
                        "candidate_rules, queued_at) VALUES (:j, 'reresolve', 'queued', true, "
                        f"'preview', CAST(:c AS jsonb), now()) RETURNING {_JOB_COLUMNS}"
                    ),
                    {"j": job_id, "c": dumps(candidate_rules)},
                )
            ).one()
        return job_of(row)

    async def claim(self) -> tuple[Job, int] | None:
        """The next job to run, marked running with a lease for its worker - unless a job
        runs already (its lease still good). A job whose attempts are spent fails instead.
        Returns the job and the attempt number its worker must hold the lease by."""
        async with self.engine.begin() as conn:
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": _CLAIM_LOCK}
            )
            busy = (
                await conn.execute(
                    text(
                        "SELECT 1 FROM resolution_jobs WHERE state = 'running' "
                        "AND lease_until > now() LIMIT 1"
                    )
                )
            ).first()
            if busy is not None:
                return None
            while True:
                row = (
                    await conn.execute(
                        text(
                            f"SELECT {_JOB_COLUMNS} FROM resolution_jobs "
                            "WHERE state IN ('queued', 'running') ORDER BY queued_at, job_pk "
                            "LIMIT 1 FOR UPDATE"
                        )
                    )
                ).first()
                if row is None:
                    return None
                job = job_of(row)
                if job.attempts < MAX_ATTEMPTS:
                    break
                await conn.execute(
                    text(
                        "UPDATE resolution_jobs SET state = 'failed', finished_at = now(), "
                        "lease_until = NULL, error = CASE WHEN error = '' THEN :e "
                        "ELSE error END WHERE job_pk = :p"
                    ),
                    {"p": job.job_pk, "e": "the job's worker stopped before it finished"},
                )
            attempt = job.attempts + 1
            await conn.execute(
                text(
                    "UPDATE resolution_jobs SET state = 'running', attempts = :a, "
                    "phase = 'loading', records_done = 0, started_at = now(), "
                    f"lease_until = now() + interval '{LEASE_S} seconds' WHERE job_pk = :p"
                ),
                {"a": attempt, "p": job.job_pk},
            )
        return job, attempt

    async def release_merges(self) -> int:
        """Announces re-resolutions' merges whose splits went out (``bulk_storage``)."""
        async with self.engine.begin() as conn:
            return await release_merges(conn)

    async def attempt_ended(self, job_pk: int, attempt: int, error: str) -> None:
        """The worker of ``attempt`` exited without finishing the job: queued again for
        another attempt, or failed once the attempts are spent."""
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE resolution_jobs SET "
                    "state = CASE WHEN attempts >= :max THEN 'failed' ELSE 'queued' END, "
                    "finished_at = CASE WHEN attempts >= :max THEN now() END, "
                    "lease_until = NULL, error = :e "
                    "WHERE job_pk = :p AND attempts = :a AND state = 'running'"
                ),
                {"p": job_pk, "a": attempt, "e": error, "max": MAX_ATTEMPTS},
            )

    async def results(self, job: Job, after_sequence: int) -> AsyncIterator[ImportResult]:
        """The import's records in staging order from ``after_sequence``, as they are now.

        A page is the staged records' next ``RESULTS_PAGE`` first (``MATERIALIZED``), then
        their rows in ``records``: joined in one step, a planner that took the import for a
        few hundred rows (``import_records`` unanalyzed since staging) looked up every
        remaining record in ``records`` and sorted them all for each page of 5,000 - 1.8 s a
        page at 200k records, 358 s for the results of a million. The batch worker analyzes
        ``import_records`` as the job starts (``run_import``), so the page is an index range."""
        low, high = job.outcome.written_pks or (0, -1)
        after = after_sequence
        while True:
            async with self.engine.connect() as conn:
                rows = list(
                    await conn.execute(
                        text(
                            """
                            WITH s AS MATERIALIZED (
                                SELECT seq, source, message_id FROM import_records
                                WHERE job_pk = :p AND seq > :a ORDER BY seq LIMIT :n
                            )
                            SELECT s.seq, s.source, s.message_id, r.record_pk, r.customer_id,
                                   r.identifiers, r.outcome, r.rule
                            FROM s JOIN records r ON r.source = s.source
                                AND r.message_id = s.message_id
                            ORDER BY s.seq
                            """
                        ),
                        {"p": job.job_pk, "a": after, "n": RESULTS_PAGE},
                    )
                )
            for row in rows:
                ours = low <= int(row.record_pk) <= high
                yield ImportResult(
                    sequence=int(row.seq),
                    ref=RecordRef(row.source, row.message_id),
                    customer_id=str(row.customer_id),
                    outcome=ResolutionOutcome(row.outcome)
                    if ours
                    else ResolutionOutcome.ALREADY_RESOLVED,
                    identifiers=tuple(IdentifierKey(t, v, n) for t, n, v in row.identifiers or ()),
                    rule=row.rule if ours else "",
                )
            if len(rows) < RESULTS_PAGE:
                return
            after = int(rows[-1].seq)


async def _copy_staged(
    conn: AsyncConnection, job_pk: int, records: Sequence[IncomingRecord]
) -> int:
    """COPYs the records into a scratch table, then keeps those new to the import, in order."""
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    cursor = driver.cursor()  # type: ignore[union-attr]
    await cursor.execute(
        "CREATE TEMP TABLE IF NOT EXISTS stage_in (n int, source text, message_id text, "
        "channel text, observed_at timestamptz, identifiers text, attributes text) "
        "ON COMMIT DELETE ROWS"
    )
    async with cursor.copy(
        "COPY stage_in (n, source, message_id, channel, observed_at, identifiers, attributes) "
        "FROM STDIN"
    ) as copy:
        for n, record in enumerate(records):
            await copy.write_row(
                (
                    n,
                    record.ref.source,
                    record.ref.message_id,
                    record.channel,
                    record.observed_at,
                    dumps([[k.type, k.namespace, k.value] for k in record.identifiers]),
                    dumps(record.attributes),
                )
            )
    await cursor.execute(
        """
        INSERT INTO import_records (job_pk, seq, source, message_id, channel, observed_at,
                                    identifiers, attributes)
        SELECT %(p)s, nextval('import_records_seq'), source, message_id, channel, observed_at,
               CAST(identifiers AS jsonb), CAST(attributes AS jsonb)
        FROM (SELECT * FROM stage_in ORDER BY n) s
        ON CONFLICT (job_pk, source, message_id) DO NOTHING
        """,
        {"p": job_pk},
    )
    return int(cursor.rowcount or 0)


# -- the batch worker's side: its job's row and staged records --------------------------------


async def renew_lease(
    conn: AsyncConnection, job_pk: int, attempt: int, phase: JobPhase, done: int, total: int
) -> bool:
    """Extends the lease of ``attempt`` and reports its progress (``phase``, records ``done``
    of ``total``); False when the attempt no longer holds the job (another took it over)."""
    renewed = await conn.execute(
        text(
            f"UPDATE resolution_jobs SET lease_until = now() + interval '{LEASE_S} "
            "seconds', phase = :ph, records_done = :d, records_total = :t "
            "WHERE job_pk = :p AND attempts = :a AND state = 'running'"
        ),
        {
            "p": job_pk,
            "a": attempt,
            "ph": phase.value,
            "d": done,
            "t": total,
        },
    )
    return bool(renewed.rowcount)


async def finish_job(
    conn: AsyncConnection,
    job_pk: int,
    attempt: int,
    outcome: JobOutcome,
    total: int,
    *,
    failed: str = "",
) -> bool:
    """Marks the job done in ``conn``'s transaction (the one with its writes); False when
    ``attempt`` no longer holds the job."""
    done = await conn.execute(
        text(
            "UPDATE resolution_jobs SET state = :s, phase = 'done', outcome = CAST(:o AS jsonb), "
            "error = :e, finished_at = now(), lease_until = NULL, records_done = :t, "
            "records_total = :t "
            "WHERE job_pk = :p AND attempts = :a AND state = 'running'"
        ),
        {
            "s": "failed" if failed else "succeeded",
            "o": dumps(outcome.to_dict()),
            "e": failed,
            "p": job_pk,
            "a": attempt,
            "t": total,
        },
    )
    return bool(done.rowcount)


async def add_pending_merges(
    conn: AsyncConnection,
    job_pk: int,
    pending_merges: list[dict[str, Any]],
    split_sources: list[str],
) -> None:
    """A re-resolution's merges to announce once its splits are delivered (``release_merges``)."""
    await conn.execute(
        text("UPDATE resolution_jobs SET outcome = outcome || CAST(:x AS jsonb) WHERE job_pk = :p"),
        {
            "x": dumps({"pending_merges": pending_merges, "split_sources": split_sources}),
            "p": job_pk,
        },
    )


async def load_job(engine: AsyncEngine, job_pk: int) -> Job:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(f"SELECT {_JOB_COLUMNS} FROM resolution_jobs WHERE job_pk = :p"),
                {"p": job_pk},
            )
        ).one()
    return job_of(row)


async def staged_count(conn: AsyncConnection, job_pk: int) -> int:
    """The import's staged records, counted as its job starts - after ANALYZE: the staged
    rows came after the table's statistics, and a planner that takes them for a few hundred
    rows reads each page of them (``staged_records``, and ListImportResults' after the job)
    with a scan and sort of every row after the page - quadratic, 0.2 s a page at 200k staged
    records and about 1 s at a million, 200 pages a million. Sampled, ANALYZE takes well under
    a second at a million rows."""
    await conn.execute(text("ANALYZE import_records"))
    return int(
        (
            await conn.execute(
                text("SELECT count(*) FROM import_records WHERE job_pk = :p"), {"p": job_pk}
            )
        ).scalar_one()
    )


async def staged_records(
    engine: AsyncEngine, job_pk: int, page: int = READ_PAGE, *, after: int = 0, limit: int = 0
) -> tuple[list[IncomingRecord], int]:
    """The import's staged records in staging order after sequence ``after`` (at most
    ``limit`` of them, 0: all), and the sequence of the last one read."""
    records: list[IncomingRecord] = []
    async with engine.connect() as conn:
        while True:
            n = page if not limit else min(page, limit - len(records))
            rows = (
                await conn.execute(
                    text(
                        "SELECT seq, source, message_id, channel, observed_at, identifiers, "
                        "attributes FROM import_records WHERE job_pk = :p AND seq > :a "
                        "ORDER BY seq LIMIT :n"
                    ),
                    {"p": job_pk, "a": after, "n": n},
                )
            ).all()
            records.extend(
                IncomingRecord(
                    RecordRef(source, message_id),
                    channel,
                    observed_at,
                    tuple(IdentifierKey(t, v, ns) for t, ns, v in identifiers),
                    dict(attributes or {}),
                )
                for _, source, message_id, channel, observed_at, identifiers, attributes in rows
            )
            if rows:
                after = int(rows[-1][0])
            if len(rows) < n or (limit and len(records) >= limit):
                return records, after
