"""The per-record work of StandardizeBatch: proto -> domain -> proto for every record.

Small batches (ingestion's one-by-one calls) run right on the event loop: a record takes tens of
microseconds. Up to THREAD_MAX records (an IdentifyStream's chunk of 500) run in a thread of the
server's own process. Larger ones are cut into chunks that run in worker processes, so a
10,000-record batch uses every core and never stalls the server's event loop; chunks travel as
serialised protobuf (cheap to pickle) and their serialised answers are concatenated, which for
repeated fields is exactly the merged message. Without workers, large batches run in a thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import logging
import multiprocessing
import signal
from collections.abc import Iterable, Sequence
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Final

from svod.common.v1 import common_pb2
from svod.quality.v1 import quality_pb2
from svod_quality.domain import BatchTally, RuleSet, parse_rule, standardize_and_validate
from svod_quality.entrypoints.convert import record_from_proto, result_to_proto
from svod_quality.service_layer.use_cases import ActiveRules

log = logging.getLogger(__name__)

INLINE_MAX: Final = 64  # records handled on the event loop itself
# Records handled in a thread of the server's own process; only larger batches go to the
# worker processes (and only they start them). An IdentifyStream's chunks of 500 in workers cost
# 22.3 us of CPU a record (2.8 here pickling and merging, 19.5 in the worker) against 15.9 us in
# a thread at load 5, 36.3 against 19.1 us at load 11 (probes), and the first one started the
# workers - about 0.25 s of CPU each, charged to the first records streamed (quality's 0.2-0.3
# ms of CPU per identify record in the pipeline benchmark's 4,000-record phase;
# docs/performance.md, worktree idpath).
THREAD_MAX: Final = 1_000
CHUNK_RECORDS: Final = 1_000  # records per worker task
_PHONE: Final = common_pb2.IDENTIFIER_TYPE_PHONE
_EMAIL: Final = common_pb2.IDENTIFIER_TYPE_EMAIL


def standardize_records(
    records: Iterable[common_pb2.CustomerRecord],
    rule_set: RuleSet,
    source: str,
    today: dt.date,
    out: quality_pb2.StandardizeBatchResponse,
) -> BatchTally:
    """Appends one result per record to ``out``; returns what the records' findings add up to."""
    tally = BatchTally()
    add = out.results.add
    for rec in records:
        raw, problem = record_from_proto(rec)
        result = standardize_and_validate(raw, rule_set, source, today)
        if problem is not None:
            result.findings.insert(0, problem)
            result.rejected = True
        tally.add(raw, result)
        result_to_proto(result, add())
    return tally


# In a worker process: the rules last seen, prepared once per change.
_worker_rules: dict[str, RuleSet] = {}


def _rules_in_worker(key: str, definitions: Sequence[dict[str, Any]]) -> RuleSet:
    rule_set = _worker_rules.get(key)
    if rule_set is None:
        _worker_rules.clear()
        rule_set = _worker_rules[key] = RuleSet(parse_rule(d) for d in definitions)
    return rule_set


def run_chunk(
    payload: bytes,
    source: str,
    rules_key: str,
    definitions: Sequence[dict[str, Any]],
    today_ordinal: int,
) -> tuple[bytes, BatchTally]:
    """Worker task: a serialised StandardizeBatchRequest in, a serialised response out."""
    request = quality_pb2.StandardizeBatchRequest.FromString(payload)
    out = quality_pb2.StandardizeBatchResponse()
    rules = _rules_in_worker(rules_key, definitions)
    today = dt.date.fromordinal(today_ordinal)
    tally = standardize_records(request.records, rules, source, today, out)
    return out.SerializeToString(), tally


def _warm_up() -> None:
    """Loads the reference data and compiles the patterns before the first real chunk.

    Workers ignore Ctrl-C: the service itself drains and stops them; a terminal's interrupt
    reaching them directly would only print tracebacks.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sample = quality_pb2.StandardizeBatchRequest(
        records=[
            common_pb2.CustomerRecord(
                identifiers=[
                    common_pb2.Identifier(type=_PHONE, value="89161234567"),
                    common_pb2.Identifier(type=_EMAIL, value="a@gmial.com"),
                ],
                name=common_pb2.PersonName(full_name="Иванова Анна Сергеевна"),
                addresses=[common_pb2.PostalAddress(city="г. Москва", address_line="ул Мира д 1")],
            )
        ]
    )
    run_chunk(sample.SerializeToString(), "warm-up", "", (), dt.date.today().toordinal())


class BatchRunner:
    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._warming: asyncio.Task[None] | None = None

    def _get_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_warm_up,
            )
        return self._pool

    async def warm_up(self) -> None:
        """Starts the worker processes (each loads the reference data once)."""
        if self.workers:
            loop = asyncio.get_running_loop()
            pool = self._get_pool()
            await asyncio.gather(
                *(loop.run_in_executor(pool, _warm_up) for _ in range(self.workers))
            )

    def _warm_up_soon(self) -> None:
        """On the first batch larger than THREAD_MAX, so a service that never gets one (or a
        test suite that does not) never starts processes."""
        if self.workers and self._pool is None and self._warming is None:
            self._warming = asyncio.get_running_loop().create_task(self._warm_up_logged())

    async def _warm_up_logged(self) -> None:
        try:
            await self.warm_up()
        except Exception:  # the first large batch will try again (and say why)
            log.warning("quality worker processes did not start", exc_info=True)

    async def run(
        self, request: quality_pb2.StandardizeBatchRequest, rules: ActiveRules, today: dt.date
    ) -> tuple[quality_pb2.StandardizeBatchResponse, BatchTally]:
        out = quality_pb2.StandardizeBatchResponse()
        records = request.records
        if len(records) <= INLINE_MAX:
            tally = standardize_records(records, rules.rule_set, request.source, today, out)
        elif not self.workers or len(records) <= THREAD_MAX:
            tally = await asyncio.to_thread(
                standardize_records, records, rules.rule_set, request.source, today, out
            )
        else:
            self._warm_up_soon()
            try:
                tally = await self._in_workers(request, rules, today, out)
            except BrokenProcessPool:
                log.warning("quality worker processes died; restarting them")
                self._pool = None
                out.Clear()
                tally = await asyncio.to_thread(
                    standardize_records, records, rules.rule_set, request.source, today, out
                )
        out.rejected_count = tally.rejected
        out.flagged_count = tally.flagged
        return out, tally

    async def _in_workers(
        self,
        request: quality_pb2.StandardizeBatchRequest,
        rules: ActiveRules,
        today: dt.date,
        out: quality_pb2.StandardizeBatchResponse,
    ) -> BatchTally:
        records = request.records
        size = max(INLINE_MAX, min(CHUNK_RECORDS, -(-len(records) // self.workers)))
        loop = asyncio.get_running_loop()
        pool = self._get_pool()
        futures = []
        for start in range(0, len(records), size):
            chunk = quality_pb2.StandardizeBatchRequest(records=records[start : start + size])
            futures.append(
                loop.run_in_executor(
                    pool,
                    run_chunk,
                    chunk.SerializeToString(),
                    request.source,
                    rules.key,
                    rules.definitions,
                    today.toordinal(),
                )
            )
        tally = BatchTally()
        for payload, part in await asyncio.gather(*futures):
            out.MergeFromString(payload)
            tally.merge(part)
        return tally

    def close(self) -> None:
        if self._warming is not None:
            self._warming.cancel()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
