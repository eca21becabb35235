"""Standardisation and validation of records by the quality service, in batches.

The front door stays open when quality is not: a record is then accepted as sent, marked
unchecked, and checked before it is delivered (``check``, from ingestion's relay): quality
unreachable then means "retry later", and a reject rule fails the record with its violation.
No record reaches identity without quality having judged it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import grpc

from svod.common.v1 import common_pb2
from svod.quality.v1 import quality_pb2, quality_pb2_grpc
from svod_runtime.errors import FieldViolation

log = logging.getLogger(__name__)
MAX_BATCH = 10_000
# quality.proto's Finding.action of a finding that refused the record (a reject rule failed).
REJECTED = "rejected"


@dataclass(frozen=True)
class Standardized:
    record: common_pb2.CustomerRecord
    # Set when a reject rule refused the record: what to tell the caller.
    violations: tuple[FieldViolation, ...] = ()
    # False when quality could not be asked: the record is as sent, to check before delivery.
    checked: bool = True


@dataclass(frozen=True)
class Unchecked:
    """Quality could not judge the record now (its gRPC status name): try again later."""

    status: str


class QualityStandardizer:
    def __init__(self, channel: grpc.aio.Channel, timeout_s: float) -> None:
        self.stub = quality_pb2_grpc.QualityServiceStub(channel)
        self.timeout_s = timeout_s

    async def standardize(
        self, items: Sequence[tuple[str, common_pb2.CustomerRecord]]
    ) -> list[Standardized]:
        """One result per (source, record), in order; records pass unchanged, marked
        unchecked, if quality cannot be reached."""
        results: list[Standardized] = []
        for (_, record), result in zip(items, await self.check(items), strict=True):
            if isinstance(result, Unchecked):
                results.append(Standardized(record, checked=False))
            else:
                results.append(result)
        return results

    async def check(
        self, items: Sequence[tuple[str, common_pb2.CustomerRecord]]
    ) -> list[Standardized | Unchecked]:
        """One result per (source, record), in order: quality's verdict, or Unchecked with
        the status of the call that failed."""
        results: list[Standardized | Unchecked] = [Unchecked("UNKNOWN") for _ in items]
        by_source: dict[str, list[int]] = defaultdict(list)
        for index, (source, _) in enumerate(items):
            by_source[source].append(index)
        for source, indexes in by_source.items():
            for start in range(0, len(indexes), MAX_BATCH):
                chunk = indexes[start : start + MAX_BATCH]
                try:
                    reply = await self.stub.StandardizeBatch(
                        quality_pb2.StandardizeBatchRequest(
                            source=source, records=[items[i][1] for i in chunk]
                        ),
                        timeout=self.timeout_s,
                    )
                except grpc.aio.AioRpcError as error:
                    log.warning(
                        "quality could not standardise %d records of %s (%s); checked later",
                        len(chunk),
                        source,
                        error.code().name,
                    )
                    for index in chunk:
                        results[index] = Unchecked(error.code().name)
                    continue
                for index, result in zip(chunk, reply.results, strict=True):
                    violations = tuple(
                        FieldViolation(f"record.{f.field}", f.message)
                        for f in result.findings
                        if f.action == REJECTED
                    )
                    results[index] = Standardized(result.record, violations)
        return results
