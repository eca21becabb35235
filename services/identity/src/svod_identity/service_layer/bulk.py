"""Bulk import and re-resolution jobs, as the gRPC service sees them (docs/bulk-import.md).

Staging, committing and reading jobs happen here; the resolution itself runs in a worker
process (``entrypoints/batch_worker.py``) that ``JobRunner`` starts for one job at a time, so
that a minute of matching never holds up the service's own requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from svod_identity.domain.jobs import (
    MAX_STAGE_RECORDS,
    ImportResult,
    Job,
    JobKind,
    JobState,
    StageResult,
    check_job_id,
    check_request_text,
    new_preview_id,
    new_reresolve_id,
)
from svod_identity.domain.matching.autofit import AUTOMATIC_FIT_ACTOR, reresolution_job_id
from svod_identity.domain.model import IncomingRecord
from svod_identity.domain.records import RawRecord, build_record
from svod_identity.domain.rules import rules_from_dict
from svod_identity.service_layer.ports import JobRepository
from svod_identity.service_layer.use_cases import ModelInfo
from svod_runtime.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    Unavailable,
    ViolationCollector,
)

log = logging.getLogger(__name__)

# How often the runner looks for work when nothing woke it.
POLL_S = 5.0
# How often PreviewRules looks at its job while it waits for the answer.
PREVIEW_POLL_S = 0.25
# Environment of the worker process: the database it works on.
WORKER_DATABASE_ENV = "SVOD_IDENTITY_BATCH_DATABASE_URL"


@dataclass(frozen=True)
class Refused:
    index: int
    source: str
    message_id: str
    error: InvalidArgument


@dataclass(frozen=True)
class StageOutcome:
    staged: int
    duplicates: int
    refused: list[Refused]
    import_staged: int


def _job_id(value: str, field_name: str) -> str:
    errors = ViolationCollector()
    check_job_id(value, field_name, errors)
    errors.raise_if_any()
    return value


class BulkJobs:
    def __init__(self, store: JobRepository, runner: JobRunner | None = None) -> None:
        self.store = store
        self.runner = runner

    async def stage(
        self, import_id: str, raws: Sequence[RawRecord], now: dt.datetime
    ) -> StageOutcome:
        _job_id(import_id, "import_id")
        if len(raws) > MAX_STAGE_RECORDS:
            raise InvalidArgument(
                [FieldViolation("records", f"at most {MAX_STAGE_RECORDS} records per message")]
            )
        good: list[IncomingRecord] = []
        refused: list[Refused] = []
        for index, raw in enumerate(raws):
            try:
                good.append(build_record(raw, now))
            except InvalidArgument as invalid:
                refused.append(Refused(index, raw.source, raw.message_id, invalid))
        result = await self.store.stage(import_id, good)
        if isinstance(result, Job):
            raise _not_staging(result)
        assert isinstance(result, StageResult)
        return StageOutcome(result.staged, result.duplicates, refused, result.import_staged)

    async def commit(self, import_id: str) -> Job:
        _job_id(import_id, "import_id")
        job = await self.store.commit_import(import_id)
        if job is None:
            raise NotFound(f"import {import_id} was never staged")
        if job.kind is not JobKind.IMPORT:
            raise FailedPrecondition(f"{import_id} names a re-resolution, not an import")
        if self.runner is not None:
            self.runner.wake()
        return job

    async def get(self, job_id: str) -> Job:
        _job_id(job_id, "job_id")
        job = await self.store.job(job_id)
        if job is None:
            raise NotFound(f"no batch job {job_id}")
        return job

    async def results(self, import_id: str, after_sequence: int) -> AsyncIterator[ImportResult]:
        _job_id(import_id, "import_id")
        if after_sequence < 0:
            raise InvalidArgument([FieldViolation("after_sequence", "must not be negative")])
        job = await self.store.job(import_id)
        if job is None or job.kind is not JobKind.IMPORT:
            raise NotFound(f"no import {import_id}")
        if job.state is not JobState.SUCCEEDED:
            raise FailedPrecondition(
                f"import {import_id} is {job.state.value}: results come once it has succeeded"
            )
        async for result in self.store.results(job, after_sequence):
            yield result

    async def reresolve(self, job_id: str, dry_run: bool, actor: str, reason: str) -> Job:
        errors = ViolationCollector()
        if job_id:
            check_job_id(job_id, "job_id", errors)
        if not dry_run and not actor.strip():
            errors.add("actor", "required unless dry_run")
        check_request_text(actor, reason, errors)
        errors.raise_if_any()
        job = await self.store.request_reresolve(
            job_id or new_reresolve_id(), dry_run, actor, reason
        )
        if job.kind is not JobKind.RERESOLVE:
            raise FailedPrecondition(f"{job.job_id} names an import, not a re-resolution")
        if self.runner is not None:
            self.runner.wake()
        return job

    async def automatic_reresolution(self, model: ModelInfo) -> str:
        """The re-resolution identity queued with ``model``, its own fit
        (``AutoFitPolicy.reresolves``); "" where there is none."""
        if model.created_by != AUTOMATIC_FIT_ACTOR:
            return ""
        job = await self.store.job(reresolution_job_id(model.version))
        return job.job_id if job is not None else ""

    async def preview(self, body: dict[str, Any]) -> dict[str, Any]:
        """PreviewRules: a dry-run re-resolution under the candidate rules ``body``, run by
        the batch worker as a job (``batch_job.run_reresolve``) and awaited: its report
        (``batch.changes_dict``). In the worker it serves graphs of any size (the service
        process placed at most 200,000 records before, holding the whole graph itself), and
        it is ReresolveAll's own placing - what applying the rules would do. Queued behind a
        batch job that runs already, as every job is."""
        candidate = rules_from_dict(body)  # INVALID_ARGUMENT before anything is queued
        assert self.runner is not None
        job = await self.store.request_preview(new_preview_id(), candidate.to_dict())
        self.runner.wake()
        while True:
            await asyncio.sleep(PREVIEW_POLL_S)
            current = await self.store.job(job.job_id)
            if current is None:  # cannot happen: jobs are never deleted
                raise Unavailable(f"preview job {job.job_id} vanished")
            if current.state is JobState.SUCCEEDED:
                return current.outcome.changes or {}
            if current.state is JobState.FAILED:
                raise Unavailable(f"preview job {job.job_id} failed: {current.error}")


def _not_staging(job: Job) -> FailedPrecondition:
    if job.kind is not JobKind.IMPORT:
        return FailedPrecondition(f"{job.job_id} names a re-resolution, not an import")
    return FailedPrecondition(
        f"import {job.job_id} is {job.state.value}: it takes no more records once committed"
    )


class JobRunner:
    """Runs batch jobs one at a time, each in a worker process of its own.

    The worker holds the job's lease (it renews it while it works) and marks the job done in
    the same transaction as its writes; the runner only starts it, and when it exits without
    finishing, queues the job for another attempt (or fails it when the attempts are spent).
    A job whose worker and runner both died is claimed again when its lease runs out.
    """

    def __init__(
        self,
        store: JobRepository,
        database_url: str,
        on_announced: Callable[[], None] | None = None,
        worker_env: Mapping[str, str] | None = None,
    ) -> None:
        self.store = store
        self.database_url = database_url
        # Settings of the service's the worker needs (read where the service read them).
        self.worker_env = dict(worker_env or {})
        self.on_announced = on_announced or (lambda: None)
        self._wake = asyncio.Event()
        self._worker: asyncio.subprocess.Process | None = None

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        try:
            while True:
                self._wake.clear()
                try:
                    ran = await self.run_once()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("batch job runner pass failed")
                    ran = False
                if not ran:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), POLL_S)
        finally:
            await self.stop_worker()

    async def run_once(self) -> bool:
        if await self.store.release_merges():
            self.on_announced()
        claimed = await self.store.claim()
        if claimed is None:
            return False
        job, attempt = claimed
        log.info("batch job %s (%s) attempt %d starts", job.job_id, job.kind.value, attempt)
        env = dict(os.environ) | self.worker_env
        env[WORKER_DATABASE_ENV] = self.database_url
        self._worker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "svod_identity.entrypoints.batch_worker",
            str(job.job_pk),
            str(attempt),
            env=env,
        )
        code = await self._worker.wait()
        self._worker = None
        if code != 0:
            await self.store.attempt_ended(
                job.job_pk, attempt, f"attempt {attempt} stopped (worker exit status {code})"
            )
        log.info("batch job %s attempt %d ended (exit %d)", job.job_id, attempt, code)
        return True

    async def stop_worker(self) -> None:
        worker = self._worker
        if worker is not None and worker.returncode is None:
            worker.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(worker.wait(), 10)
            if worker.returncode is None:
                worker.kill()
