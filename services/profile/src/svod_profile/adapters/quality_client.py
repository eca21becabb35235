"""Reports delivery failures of customers' contacts to the quality service (outbox handler)."""

from __future__ import annotations

import datetime as dt
import json

import grpc

from svod.common.v1 import common_pb2
from svod.quality.v1 import quality_pb2, quality_pb2_grpc
from svod_runtime.clients import delivery_error
from svod_runtime.outbox import OutboxMessage
from svod_runtime.protoconv import datetime_to_timestamp, enum_value


class QualityReporter:
    def __init__(self, channel: grpc.aio.Channel, timeout_s: float) -> None:
        self.stub = quality_pb2_grpc.QualityServiceStub(channel)
        self.timeout_s = timeout_s

    async def contact_failed(self, message: OutboxMessage) -> None:
        report = json.loads(message.payload)
        at = datetime_to_timestamp(dt.datetime.fromisoformat(report["at"]))
        request = quality_pb2.ReportContactFailuresRequest(
            failures=[
                quality_pb2.ContactFailure(
                    identifier=common_pb2.Identifier(
                        type=enum_value(common_pb2.IdentifierType, t, "IDENTIFIER_TYPE_"),
                        value=v,
                        namespace=n,
                    ),
                    failure_time=at,
                )
                for t, v, n in report["contacts"]
            ]
        )
        try:
            await self.stub.ReportContactFailures(request, timeout=self.timeout_s)
        except grpc.aio.AioRpcError as error:
            raise delivery_error(error) from None
