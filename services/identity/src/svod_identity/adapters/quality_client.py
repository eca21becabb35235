"""Reports suspected duplicates and blocked identifiers to the quality service (outbox handler).

UNIMPLEMENTED (a quality service without the method yet) and UNAVAILABLE are retried with the
outbox's backoff; nothing is dropped.
"""

from __future__ import annotations

import datetime as dt
import json

import grpc

from svod.common.v1 import common_pb2
from svod.quality.v1 import quality_pb2, quality_pb2_grpc
from svod_runtime.clients import delivery_error
from svod_runtime.outbox import OutboxMessage
from svod_runtime.protoconv import datetime_to_timestamp, enum_value


def _identifier(raw: list[str]) -> common_pb2.Identifier:
    id_type, namespace, value = raw
    return common_pb2.Identifier(
        type=enum_value(common_pb2.IdentifierType, id_type, "IDENTIFIER_TYPE_"),
        value=value,
        namespace=namespace,
    )


def report_request(payload: bytes) -> quality_pb2.ReportDuplicatesRequest:
    report = json.loads(payload)
    return quality_pb2.ReportDuplicatesRequest(
        pairs=[
            quality_pb2.DuplicatePair(first_customer_id=a, second_customer_id=b, score=s)
            for a, b, s in report.get("pairs", ())
        ],
        resolved_pairs=[
            quality_pb2.DuplicatePair(first_customer_id=a, second_customer_id=b)
            for a, b in report.get("resolved", ())
        ],
        blocked_identifiers=[_identifier(k) for k in report.get("blocked", ())],
        report_time=datetime_to_timestamp(dt.datetime.fromisoformat(report["at"])),
    )


class QualityReporter:
    def __init__(self, channel: grpc.aio.Channel, timeout_s: float) -> None:
        self.stub = quality_pb2_grpc.QualityServiceStub(channel)
        self.timeout_s = timeout_s

    async def report(self, message: OutboxMessage) -> None:
        try:
            await self.stub.ReportDuplicates(
                report_request(message.payload), timeout=self.timeout_s
            )
        except grpc.aio.AioRpcError as error:
            # Not built yet on the other side: keep it and try again later.
            raise delivery_error(error, unimplemented_is_outage=True) from None
