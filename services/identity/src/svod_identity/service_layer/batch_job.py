"""One attempt of a batch job, in its worker process: hold the lease, run, mark it done.

The job's end (succeeded, with its outcome) is written in the same transaction as its last
writes, so an attempt that dies leaves either everything or nothing, and the next attempt
starts from the staged records again.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from svod_identity.adapters.bulk_storage import (
    Announced,
    Graph,
    announce_import,
    bulk_session,
    graph_marker,
    load_graph,
    load_touched,
    lock_graph,
    lock_graph_after_writes,
    write_changes,
    write_plan,
    written_since,
)
from svod_identity.adapters.job_storage import (
    LEASE_RENEW_S,
    Job,
    add_pending_merges,
    finish_job,
    load_job,
    renew_lease,
    staged_count,
    staged_records,
)
from svod_identity.adapters.storage import IdentityStore, IdentityTransaction
from svod_identity.domain.batch import (
    EarlierWindows,
    ImportState,
    changes_dict,
    plan_reresolution,
    record_keys,
)
from svod_identity.domain.engine import Placement, Resolver
from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.jobs import JobKind, JobOutcome, JobPhase
from svod_identity.domain.matching.autofit import AutoFitPolicy
from svod_identity.domain.matching.blocking import _KEYS
from svod_identity.domain.matching.compare import _VIEWS
from svod_identity.domain.matching.model import MatchModel
from svod_identity.domain.matching.scoring import _SCORES
from svod_identity.domain.model import IncomingRecord, new_customer_id
from svod_identity.domain.preview import (
    PreviewResult,
    compare_clusterings,
    identifier_changes,
    keep_decisions,
    name_proposed,
)
from svod_identity.domain.rules import Rules, rules_from_dict
from svod_identity.service_layer.import_fits import ImportFits
from svod_identity.service_layer.use_cases import IdentityService
from svod_runtime.db import create_engine

log = logging.getLogger(__name__)

# Records placed and written per window. The engine's state of a window - its records with
# their views and keys, the graph they can touch, the changes to write - is what the worker
# holds; a window's rows are written in the job's transaction, so the next window reads them
# back like any stored row. One window for the whole import held 909 MiB at 100,748 records
# (about 9 GiB at a million).
DEFAULT_WINDOW = 100_000
# The worker's setting of it (``entrypoints/batch_worker.WorkerSettings``).
WINDOW_ENV = "SVOD_IDENTITY_BATCH_WINDOW"
NO_AUTOFIT = AutoFitPolicy(0)


class LeaseLost(Exception):
    """Another attempt took the job over (this one's lease ran out): stop without writing."""


@dataclass
class Progress:
    phase: JobPhase = JobPhase.LOADING
    done: int = 0
    total: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    _since: float = field(default_factory=time.monotonic)

    def enter(self, phase: JobPhase) -> None:
        now = time.monotonic()
        self.seconds[self.phase.value] = round(
            self.seconds.get(self.phase.value, 0.0) + now - self._since, 3
        )
        self.phase, self._since = phase, now


class Lease:
    """Renews the job's lease every LEASE_RENEW_S and reports progress with it."""

    def __init__(self, engine: AsyncEngine, job_pk: int, attempt: int) -> None:
        self.engine = engine
        self.job_pk = job_pk
        self.attempt = attempt
        self.progress = Progress()
        self.lost = False
        self._task: asyncio.Task[None] | None = None

    async def renew(self) -> None:
        progress = self.progress
        async with self.engine.begin() as conn:
            renewed = await renew_lease(
                conn, self.job_pk, self.attempt, progress.phase, progress.done, progress.total
            )
        if not renewed:
            self.lost = True
            raise LeaseLost(f"job {self.job_pk} attempt {self.attempt} lost its lease")

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(LEASE_RENEW_S)
            try:
                await self.renew()
            except LeaseLost:
                raise
            except Exception:  # the database may be back at the next beat
                log.exception("renewing the batch job's lease failed")

    async def __aenter__(self) -> Lease:
        await self.renew()
        self._task = asyncio.create_task(self._beat())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, LeaseLost):
                await self._task

    def check(self) -> None:
        if self.lost:
            raise LeaseLost(f"job {self.job_pk} attempt {self.attempt} lost its lease")


async def finish(
    conn: AsyncConnection, lease: Lease, outcome: JobOutcome, *, failed: str = ""
) -> None:
    """Marks the job done in ``conn``'s transaction (the one with the job's writes)."""
    lease.progress.enter(JobPhase.DONE)
    outcome = replace(outcome, phase_seconds=dict(lease.progress.seconds))
    if not await finish_job(
        conn, lease.job_pk, lease.attempt, outcome, lease.progress.total, failed=failed
    ):
        raise LeaseLost(f"job {lease.job_pk} attempt {lease.attempt} lost its lease")


Runner = Callable[[AsyncEngine, Job, Lease], Awaitable[None]]


def fit_caches(records: int) -> None:
    """Sizes the matcher's caches by record content for a batch of ``records`` records: it
    asks for each record's blocking keys and view to load its blocks and again to place it,
    and a cache emptied on the way derives them twice. At 100,748 records (bench_bulk's
    generator, in-process) the keys' cache (65,536 entries) was emptied on the way: 201k key
    derivations for 101k records, and blocking and placing took 24.2 and 25.3 s CPU with
    these sizes against 28.7 and 38.7 s without (load 7-10, the same partition). The key
    sets are the ones ``import_keys`` keeps anyway; the views (200,000 by default) get room
    for the import's records beside what the graph brings."""
    _KEYS.limit = max(_KEYS.limit, 2 * records)
    _VIEWS.limit = max(_VIEWS.limit, records + 200_000)


def import_keys(records: Sequence[IncomingRecord]) -> tuple[set[str], list[frozenset[str]]]:
    """Every blocking key the records may get, whichever of their identifiers turn out to be
    blocked (``possible_keys``): the blocks of the graph to load; and each record's own keys
    (``blocking_keys``, for ``ImportState.consider``), derived in the same pass."""
    fit_caches(len(records))
    keys: set[str] = set()
    own: list[frozenset[str]] = []
    for record in records:
        derived = record_keys(record)
        keys |= derived.possible
        own.append(derived.own)
    return keys, own


async def place_window(
    conn: AsyncConnection,
    records: Sequence[IncomingRecord],
    earlier: EarlierWindows,
    rules: Rules,
    model: MatchModel,
    lease: Lease,
) -> tuple[Resolver, list[Placement], set[str]]:
    """Places a window of the import's records after everything in the graph - the earlier
    windows' records included, read back from ``conn``'s transaction - in staging order, with
    the online engine's own rules (``Resolver``) over the part of the graph they can touch.
    Returns the customers that existed before the import among those loaded."""
    lease.progress.enter(JobPhase.BLOCKING)
    keys, own_keys = import_keys(records)
    lease.progress.enter(JobPhase.LOADING)
    loaded = await load_touched(conn, records, keys, rules, earlier)
    existing = set(loaded.state.customers) - earlier.created
    lease.progress.enter(JobPhase.PLACING)
    state = loaded.state
    resolver = Resolver(state, rules, model)
    # The engine pks go on from the earlier windows': -1, -2, ... over the whole import.
    resolver._next_pk = -(earlier.placed + 1)
    placements = []
    placed = earlier.placed
    for record, own in zip(records, own_keys, strict=True):
        if record.ref not in state.resolved:
            placed += 1
            state.consider(record, -placed, own)
        placements.append(resolver.resolve(record))
        lease.progress.done += 1
        if lease.progress.done % 10_000 == 0:
            await asyncio.sleep(0)  # lets the lease's heartbeat run
            lease.check()
    return resolver, placements, existing


async def place_and_write(
    engine: AsyncEngine,
    conn: AsyncConnection,
    job: Job,
    rules: Rules,
    fits: ImportFits,
    lease: Lease,
    window: int = DEFAULT_WINDOW,
) -> tuple[JobOutcome, int]:
    """The import placed and written window after window (``window`` records each, or up to
    the graph's next automatic fit: ``fits``) in ``conn``'s transaction; returns the outcome
    and the ledger entries written."""
    earlier = EarlierWindows()
    announced = Announced()
    unit = IdentityTransaction(conn)
    await bulk_session(conn)
    lease.progress.done = 0
    after = 0
    created = folded = records_written = already = merged = reviews = ledger = 0
    low = high = 0
    while True:
        lease.progress.enter(JobPhase.LOADING)
        records, after = await staged_records(
            engine, job.job_pk, after=after, limit=fits.window(window)
        )
        if not records:
            break
        resolver, placements, existing = await place_window(
            conn, records, earlier, rules, fits.model, lease
        )
        del records
        lease.progress.enter(JobPhase.WRITING)
        written = await write_changes(
            conn,
            resolver.state,
            resolver.changes,
            placements,
            existing,
            earlier,
            announced,
            more=lease.progress.done < lease.progress.total,
        )
        del resolver, placements, existing
        created += written.customers_created
        folded += written.customers_folded
        records_written += written.records_written
        already += written.already_resolved
        merged += written.customers_merged
        reviews += written.review_items
        ledger += written.ledger_entries
        if fits.count(written.records_written):
            lease.progress.enter(JobPhase.FITTING)
            await fits.fit(unit)
        if written.written_pks is not None:
            low = min(low or written.written_pks[0], written.written_pks[0])
            high = max(high, written.written_pks[1])
        # The window's objects are gone; its views, keys and scores need not be remembered.
        clear_caches()
        if lease.progress.done >= lease.progress.total:
            break
    lease.progress.enter(JobPhase.WRITING)
    await announce_import(conn, announced, lambda c: _find(earlier.alias, c))
    await fits.store(unit)
    customers = created - folded
    outcome = JobOutcome(
        customers_created=customers,
        records_linked=records_written - customers,
        records_already_resolved=already,
        customers_merged=merged,
        review_items_opened=reviews,
        written_pks=(low, high) if high else None,
    )
    return outcome, ledger


def _find(alias: dict[str, str], customer_id: str) -> str:
    seen = 0
    while customer_id in alias and seen < 64:
        customer_id = alias[customer_id]
        seen += 1
    return customer_id


def clear_caches() -> None:
    _KEYS.clear()
    _VIEWS.clear()
    _SCORES.clear()


class _Raced(Exception):
    """The graph was written meanwhile, or its writers could not be locked out."""


async def run_import(
    engine: AsyncEngine,
    job: Job,
    lease: Lease,
    window: int = DEFAULT_WINDOW,
    autofit: AutoFitPolicy = NO_AUTOFIT,
) -> None:
    """An import: its staged records placed and written window by window (``DEFAULT_WINDOW``
    records each) in one transaction, with the job's end.

    The graph's writers are not held up while the windows are placed: the transaction locks
    them out only at the end and checks the ledger. If anything was written since the job
    started (or the lock is a deadlock: a writer waits for a row of the import, and Postgres
    stops the lock), the transaction is rolled back and the import placed again, locked from
    the start (docs/bulk-import.md, "Online resolution meanwhile")."""
    service = IdentityService(IdentityStore(engine))
    rules = await service.rules()
    started_with = await service.model_info()
    thresholds = (rules.auto_link_threshold, rules.review_threshold)

    async def fits(conn: AsyncConnection) -> ImportFits:
        records = await IdentityTransaction(conn).export.count_records()
        return ImportFits(autofit, started_with, thresholds, records)

    async with engine.begin() as conn:
        lease.progress.total = await staged_count(conn, job.job_pk)
    async with engine.begin() as conn:
        marker = await graph_marker(conn)
    async with engine.connect() as conn:
        try:
            async with conn.begin():
                outcome, mine = await place_and_write(
                    engine, conn, job, rules, await fits(conn), lease, window
                )
                lease.progress.enter(JobPhase.WRITING)
                if not await lock_graph_after_writes(conn):
                    raise _Raced
                if await written_since(conn, marker) != mine:
                    raise _Raced
                await finish(conn, lease, outcome)
            return
        except _Raced:
            log.info("the graph changed while job %s placed its records: again, locked", job.job_id)
    clear_caches()
    async with engine.begin() as conn:
        await lock_graph(conn)
        outcome, _ = await place_and_write(
            engine, conn, job, rules, await fits(conn), lease, window
        )
        await finish(conn, lease, outcome)


async def run_reresolve(engine: AsyncEngine, job: Job, lease: Lease) -> None:
    """The whole graph placed again, record by record in the order they first came, under
    the rules and model in force; a person's decisions kept (``keep_decisions``); reported as
    PreviewRules reports, and unless a dry run, written and announced (``write_plan``). A
    PreviewRules job (``candidate_rules``, always a dry run) places under its candidate rules."""
    service = IdentityService(IdentityStore(engine))
    if job.candidate_rules is not None:
        rules = rules_from_dict(job.candidate_rules)
    else:
        rules = await service.rules()
    model = (await service.model_info()).model
    async with engine.begin() as conn:
        marker = await graph_marker(conn)
    async with engine.begin() as conn:
        graph = await load_graph(conn)
    proposal = await _propose(graph, rules, model, lease)
    if job.dry_run:
        async with engine.begin() as conn:
            lease.progress.enter(JobPhase.WRITING)
            await finish(conn, lease, JobOutcome(changes=changes_dict(proposal.report)))
        return
    async with engine.begin() as conn:
        lease.progress.enter(JobPhase.WRITING)
        if await lock_graph(conn) != marker:
            log.info("the graph changed while job %s worked: again, locked", job.job_id)
            graph = await load_graph(conn)
            proposal = await _propose(graph, rules, model, lease)
            lease.progress.enter(JobPhase.WRITING)
        plan = plan_reresolution(proposal.proposed, graph.current, graph.created, new_customer_id)
        owners = {
            key: plan.names[cluster]
            for key, cluster in proposal.owners.items()
            if graph.owners.get(key) != plan.names[cluster]
        }
        refs = {pk: r.ref for pk, r in zip(graph.pks, graph.records, strict=True)}
        written = await write_plan(conn, plan, refs, owners, job.actor, job.reason)
        outcome = JobOutcome(
            customers_created=len(plan.new_customers),
            customers_merged=len(plan.merges),
            records_linked=sum(len(pks) for _, _, pks in plan.splits),
            changes=changes_dict(proposal.report),
        )
        await finish(conn, lease, outcome)
        if written.pending_merges:
            await add_pending_merges(
                conn, job.job_pk, written.pending_merges, written.split_sources
            )


@dataclass(frozen=True)
class Proposal:
    proposed: dict[int, str]
    # Identifier -> the proposed cluster whose record first held it.
    owners: dict[IdentifierKey, str]
    report: PreviewResult


# Records re-resolution places between two turns of the event loop, which renews the job's
# lease (``LEASE_S``: 60 s). Without them, placing 100,748 records held the loop for the whole
# 103-312 s of placing at a load average of 12-18: the lease ran out under the job and its
# renewal then failed on a connection timed out while it waited.
YIELD_EVERY = 1_000


async def _propose(graph: Graph, rules: Rules, model: MatchModel, lease: Lease) -> Proposal:
    """Every record placed again into an empty graph, in record order (PreviewRules' way,
    with online's candidate rules: ``ImportState``)."""
    lease.progress.enter(JobPhase.PLACING)
    lease.progress.total = len(graph.records)
    lease.progress.done = 0
    clock = [dt.datetime(2000, 1, 1, tzinfo=dt.UTC)]

    def tick() -> dt.datetime:
        clock[0] += dt.timedelta(microseconds=1)
        return clock[0]

    fit_caches(len(graph.records))  # every record's keys: once to consider it, once to place
    state = ImportState()
    resolver = Resolver(state, rules, model, now=tick)
    placed: dict[int, str] = {}
    unlinked: dict[IdentifierKey, str] = {}
    linked_by: dict[IdentifierKey, int] = {}
    for n, (pk, record) in enumerate(zip(graph.pks, graph.records, strict=True)):
        state.consider(record, -(n + 1))
        placement = resolver.resolve(record)
        placed[pk] = placement.customer_id
        for key, why in placement.unlinked:
            unlinked.setdefault(key, why)
        for key in record.identifiers:
            if key not in linked_by and key in state.owners:
                linked_by[key] = pk
        lease.progress.done += 1
        if lease.progress.done % YIELD_EVERY == 0:
            await asyncio.sleep(0)  # lets the lease's heartbeat run
            lease.check()
    proposed = {pk: state.find(c) for pk, c in placed.items()}
    proposed = keep_decisions(proposed, graph.current, graph.merges, graph.kept_apart)
    refs = {pk: r.ref for pk, r in zip(graph.pks, graph.records, strict=True)}
    owners = {key: proposed[pk] for key, pk in linked_by.items()}
    changes = identifier_changes(
        graph.owners, owners, name_proposed(proposed, graph.current), unlinked
    )
    report = replace(compare_clusterings(graph.current, proposed, refs), identifier_changes=changes)
    return Proposal(proposed, owners, report)


RUNNERS: dict[JobKind, Runner] = {
    JobKind.IMPORT: run_import,
    JobKind.RERESOLVE: run_reresolve,
}


async def run_job(
    database_url: str,
    job_pk: int,
    attempt: int,
    *,
    window: int = DEFAULT_WINDOW,
    autofit: AutoFitPolicy = NO_AUTOFIT,
) -> int:
    engine = create_engine(database_url, pool_size=2)
    started = dt.datetime.now(dt.UTC)
    # The job builds millions of long-lived objects (records, views, blocks) and frees almost
    # nothing cyclic: the collector's passes over them were a third of the worker's CPU, for
    # nothing. Measured in-process on 20,000 staged records (bench_bulk's generator): 9.5 s
    # CPU with the collector, 6.2 s without, and a full collection at the end found 10
    # objects. The worker is a process of its own, so it runs without it.
    gc.disable()
    try:
        job = await load_job(engine, job_pk)
        async with Lease(engine, job_pk, attempt) as lease:
            if job.kind is JobKind.IMPORT:
                await run_import(engine, job, lease, window, autofit)
            else:
                await RUNNERS[job.kind](engine, job, lease)
        log.info(
            "batch job %s attempt %d done in %.1f s",
            job.job_id,
            attempt,
            (dt.datetime.now(dt.UTC) - started).total_seconds(),
        )
        return 0
    except LeaseLost as lost:
        log.warning("%s", lost)
        return 3
    except Exception:
        log.exception("batch job %s attempt %d failed", job_pk, attempt)
        return 1
    finally:
        await engine.dispose()
        gc.enable()
