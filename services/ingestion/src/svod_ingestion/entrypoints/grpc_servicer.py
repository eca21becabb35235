"""Thin gRPC adapter of the ingestion service."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.type import money_pb2
from opentelemetry import trace

from svod.common.v1 import common_pb2
from svod.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from svod_ingestion.adapters.quality_client import QualityStandardizer, Standardized
from svod_ingestion.domain.messages import (
    Amount,
    IdentifyMessage,
    Line,
    TrackMessage,
    validate_identify,
    validate_track,
)
from svod_ingestion.domain.model import Accepted, Incoming
from svod_ingestion.service_layer.use_cases import IngestionService
from svod_runtime.errors import InvalidArgument, SvodError, ViolationCollector
from svod_runtime.protoconv import (
    datetime_to_timestamp,
    enum_short_name,
    proto_date_parts,
    timestamp_to_datetime,
)

_ID_TYPE = common_pb2.IdentifierType.DESCRIPTOR
_CHANNEL = common_pb2.SourceChannel.DESCRIPTOR
_EVENT_TYPE = common_pb2.EventType.DESCRIPTOR
_STATE = {
    "pending": ingestion_pb2.RecordStatus.STATE_PENDING,
    "delivered": ingestion_pb2.RecordStatus.STATE_DELIVERED,
    "failed": ingestion_pb2.RecordStatus.STATE_FAILED,
}


def identify_message(request: ingestion_pb2.IdentifyRequest) -> IdentifyMessage:
    record = request.record
    return IdentifyMessage(
        source=request.record_ref.source,
        message_id=request.record_ref.message_id,
        channel=enum_short_name(_CHANNEL, request.channel, "SOURCE_CHANNEL_"),
        observed_at=timestamp_to_datetime(request.observed_time),
        identifiers=[
            (enum_short_name(_ID_TYPE, i.type, "IDENTIFIER_TYPE_"), i.value, i.namespace)
            for i in record.identifiers
        ],
        names={
            "first_name": record.name.first_name,
            "last_name": record.name.last_name,
            "middle_name": record.name.middle_name,
            "full_name": record.name.full_name,
        },
        birth_date=proto_date_parts(record.birth_date),
        attributes=dict(record.attributes),
    )


def _amount(money: money_pb2.Money) -> Amount:
    return Amount(money.currency_code, money.units, money.nanos)


def track_message(request: ingestion_pb2.TrackRequest) -> TrackMessage:
    event = request.event
    return TrackMessage(
        source=request.record_ref.source,
        message_id=request.record_ref.message_id,
        channel=enum_short_name(_CHANNEL, request.channel, "SOURCE_CHANNEL_"),
        event_type=enum_short_name(_EVENT_TYPE, event.type, "EVENT_TYPE_"),
        occurred_at=timestamp_to_datetime(event.occurred_time),
        identifiers=[
            (enum_short_name(_ID_TYPE, i.type, "IDENTIFIER_TYPE_"), i.value, i.namespace)
            for i in event.identifiers
        ],
        total=_amount(event.total),
        lines=[
            Line(line.quantity, _amount(line.unit_price), _amount(line.discount))
            for line in event.lines
        ],
        contact_channel=event.contact_channel,
        loyalty_points=event.loyalty_points,
    )


def _response(accepted: Accepted) -> ingestion_pb2.IdentifyResponse:
    return ingestion_pb2.IdentifyResponse(
        record_id=accepted.record_id,
        duplicate=accepted.duplicate,
        received_time=datetime_to_timestamp(accepted.received_at),
    )


STREAM_CHUNK = 500


def _reject(
    response: ingestion_pb2.BulkResponse, index: int, request: Any, error: SvodError
) -> None:
    rejected = response.rejected.add(
        index=index, record_ref=request.record_ref, reason=error.message
    )
    if isinstance(error, InvalidArgument):
        for v in error.violations:
            rejected.field_violations.add(field=v.field, description=v.description)


def _count(response: ingestion_pb2.BulkResponse, accepted: Accepted) -> None:
    if accepted.duplicate:
        response.duplicate_count += 1
    else:
        response.accepted_count += 1


def mark_span(ref: common_pb2.RecordRef) -> None:
    """Names the message on the call's span, so its trace can be found by source and message
    id (``svod trace record``); ids, not personal data."""
    trace.get_current_span().set_attributes(
        {"svod.record.source": ref.source, "svod.record.message_id": ref.message_id}
    )


class IngestionServicer(ingestion_pb2_grpc.IngestionServiceServicer):
    def __init__(
        self,
        service: IngestionService,
        standardizer: QualityStandardizer,
        currency: str,
        attributes: dict[str, str] | None = None,
    ) -> None:
        self.service = service
        self.standardizer = standardizer
        self.currency = currency
        self.attributes = attributes or {}

    def _checked(self, request: ingestion_pb2.IdentifyRequest, now: dt.datetime) -> None:
        validate_identify(identify_message(request), now, self.attributes)

    def _identify_incoming(
        self, request: ingestion_pb2.IdentifyRequest, standardized: Standardized, now: dt.datetime
    ) -> Incoming:
        """The standardised record to store; the fingerprint is the request as sent."""
        if standardized.violations:
            raise InvalidArgument(standardized.violations)
        stored = ingestion_pb2.IdentifyRequest()
        stored.CopyFrom(request)
        stored.record.CopyFrom(standardized.record)
        if not request.HasField("observed_time"):
            stored.observed_time.FromDatetime(now)
        return Incoming(
            kind="identify",
            source=request.record_ref.source,
            message_id=request.record_ref.message_id,
            channel=enum_short_name(_CHANNEL, request.channel, "SOURCE_CHANNEL_"),
            fingerprint=request.SerializeToString(deterministic=True),
            payload=stored.SerializeToString(deterministic=True),
        )

    async def _identify(self, request: ingestion_pb2.IdentifyRequest) -> Accepted:
        now = dt.datetime.now(dt.UTC)
        self._checked(request, now)
        (standardized,) = await self.standardizer.standardize(
            [(request.record_ref.source, request.record)]
        )
        return await self.service.accept(self._identify_incoming(request, standardized, now))

    def _track_incoming(self, request: ingestion_pb2.TrackRequest, now: dt.datetime) -> Incoming:
        message = track_message(request)
        validate_track(message, now, self.currency)
        payload = request.SerializeToString(deterministic=True)
        return Incoming(
            kind="track",
            source=message.source,
            message_id=message.message_id,
            channel=message.channel,
            fingerprint=payload,
            payload=payload,
        )

    async def _track(self, request: ingestion_pb2.TrackRequest) -> Accepted:
        return await self.service.accept(self._track_incoming(request, dt.datetime.now(dt.UTC)))

    async def _store_chunk(
        self,
        chunk: list[tuple[int, Any, Incoming]],
        response: ingestion_pb2.BulkResponse,
    ) -> None:
        """Stores a stream's checked messages in one transaction; each gets its own answer."""
        outcomes = await self.service.accept_many([incoming for _, _, incoming in chunk])
        for (index, request, _), outcome in zip(chunk, outcomes, strict=True):
            if isinstance(outcome, SvodError):
                _reject(response, index, request, outcome)
            else:
                _count(response, outcome)

    async def Track(
        self, request: ingestion_pb2.TrackRequest, context: grpc.aio.ServicerContext
    ) -> ingestion_pb2.TrackResponse:
        mark_span(request.record_ref)
        accepted = await self._track(request)
        return ingestion_pb2.TrackResponse(
            record_id=accepted.record_id,
            duplicate=accepted.duplicate,
            received_time=datetime_to_timestamp(accepted.received_at),
        )

    async def TrackStream(
        self,
        request_iterator: AsyncIterator[ingestion_pb2.TrackRequest],
        context: grpc.aio.ServicerContext,
    ) -> ingestion_pb2.BulkResponse:
        """Checks each message; stores the good ones STREAM_CHUNK per transaction."""
        response = ingestion_pb2.BulkResponse()
        chunk: list[tuple[int, Any, Incoming]] = []
        index = 0
        async for request in request_iterator:
            try:
                incoming = self._track_incoming(request, dt.datetime.now(dt.UTC))
                chunk.append((index, request, incoming))
            except SvodError as error:
                _reject(response, index, request, error)
            index += 1
            if len(chunk) >= STREAM_CHUNK:
                await self._store_chunk(chunk, response)
                chunk = []
        if chunk:
            await self._store_chunk(chunk, response)
        response.rejected.sort(key=lambda r: r.index)
        return response

    async def Identify(
        self, request: ingestion_pb2.IdentifyRequest, context: grpc.aio.ServicerContext
    ) -> ingestion_pb2.IdentifyResponse:
        mark_span(request.record_ref)
        return _response(await self._identify(request))

    async def IdentifyStream(
        self,
        request_iterator: AsyncIterator[ingestion_pb2.IdentifyRequest],
        context: grpc.aio.ServicerContext,
    ) -> ingestion_pb2.BulkResponse:
        """Checks each message; standardises and stores the good ones STREAM_CHUNK at a time."""
        response = ingestion_pb2.BulkResponse()
        chunk: list[tuple[int, ingestion_pb2.IdentifyRequest]] = []
        index = 0
        async for request in request_iterator:
            chunk.append((index, request))
            index += 1
            if len(chunk) >= STREAM_CHUNK:
                await self._identify_chunk(chunk, response)
                chunk = []
        if chunk:
            await self._identify_chunk(chunk, response)
        return response

    async def _identify_chunk(
        self,
        chunk: list[tuple[int, ingestion_pb2.IdentifyRequest]],
        response: ingestion_pb2.BulkResponse,
    ) -> None:
        now = dt.datetime.now(dt.UTC)
        valid: list[tuple[int, ingestion_pb2.IdentifyRequest]] = []
        for index, request in chunk:
            try:
                self._checked(request, now)
            except SvodError as error:
                _reject(response, index, request, error)
            else:
                valid.append((index, request))
        standardized = await self.standardizer.standardize(
            [(request.record_ref.source, request.record) for _, request in valid]
        )
        storable: list[tuple[int, Any, Incoming]] = []
        for (index, request), result in zip(valid, standardized, strict=True):
            try:
                storable.append((index, request, self._identify_incoming(request, result, now)))
            except SvodError as error:
                _reject(response, index, request, error)
        if storable:
            await self._store_chunk(storable, response)
        response.rejected.sort(key=lambda r: r.index)

    async def ErasePayloads(
        self, request: ingestion_pb2.ErasePayloadsRequest, context: grpc.aio.ServicerContext
    ) -> ingestion_pb2.ErasePayloadsResponse:
        count = await self.service.erase_payloads(
            [(r.source, r.message_id) for r in request.record_refs]
        )
        return ingestion_pb2.ErasePayloadsResponse(erased_count=count)

    async def GetRecordStatus(
        self, request: ingestion_pb2.GetRecordStatusRequest, context: grpc.aio.ServicerContext
    ) -> ingestion_pb2.RecordStatus:
        errors = ViolationCollector()
        if not request.record_ref.source:
            errors.add("record_ref.source", "required")
        if not request.record_ref.message_id:
            errors.add("record_ref.message_id", "required")
        errors.raise_if_any()
        status = await self.service.status(request.record_ref.source, request.record_ref.message_id)
        reply = ingestion_pb2.RecordStatus(
            record_id=status.record_id,
            record_ref=request.record_ref,
            state=_STATE[status.state],  # type: ignore[arg-type]
            customer_id=status.customer_id or "",
            attempts=status.attempts,
            last_error=status.last_error or "",
            received_time=datetime_to_timestamp(status.received_at),
        )
        if status.delivered_at is not None:
            reply.delivered_time.CopyFrom(datetime_to_timestamp(status.delivered_at))
        return reply
