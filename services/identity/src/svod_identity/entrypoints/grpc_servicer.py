"""Thin gRPC adapter: proto <-> domain; errors become status codes in the shared interceptor."""

from __future__ import annotations

import datetime as dt

import grpc

from svod.common.v1 import common_pb2
from svod.identity.v1 import identity_pb2, identity_pb2_grpc
from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.model import CustomerView
from svod_identity.domain.records import RawRecord, build_record
from svod_identity.service_layer.use_cases import IdentityService
from svod_runtime.protoconv import (
    datetime_to_timestamp,
    enum_number,
    enum_short_name,
    proto_date_parts,
    timestamp_to_datetime,
)

_ID_TYPE = common_pb2.IdentifierType.DESCRIPTOR
_CHANNEL = common_pb2.SourceChannel.DESCRIPTOR
_GENDER = common_pb2.Gender.DESCRIPTOR
_OUTCOME = {
    "created": identity_pb2.RESOLUTION_OUTCOME_CREATED,
    "linked_exact": identity_pb2.RESOLUTION_OUTCOME_LINKED_EXACT,
    "linked_fuzzy": identity_pb2.RESOLUTION_OUTCOME_LINKED_FUZZY,
    "already_resolved": identity_pb2.RESOLUTION_OUTCOME_ALREADY_RESOLVED,
}


def identifier_triple(identifier: common_pb2.Identifier) -> tuple[str, str, str]:
    return (
        enum_short_name(_ID_TYPE, identifier.type, "IDENTIFIER_TYPE_"),
        identifier.value,
        identifier.namespace,
    )


def identifier_proto(key: IdentifierKey) -> common_pb2.Identifier:
    return common_pb2.Identifier(
        type=enum_number(_ID_TYPE, key.type, "IDENTIFIER_TYPE_"),  # type: ignore[arg-type]
        value=key.value,
        namespace=key.namespace,
    )


def raw_record(request: identity_pb2.ResolveRequest) -> RawRecord:
    name = request.name
    return RawRecord(
        source=request.record_ref.source,
        message_id=request.record_ref.message_id,
        channel=enum_short_name(_CHANNEL, request.channel, "SOURCE_CHANNEL_"),
        observed_at=timestamp_to_datetime(request.observed_time),
        identifiers=[identifier_triple(i) for i in request.identifiers],
        name={
            "first_name": name.first_name,
            "last_name": name.last_name,
            "middle_name": name.middle_name,
            "full_name": name.full_name,
        },
        birth_date=proto_date_parts(request.birth_date),
        gender=enum_short_name(_GENDER, request.gender, "GENDER_"),
        addresses=[
            {
                "country_code": a.country_code,
                "postal_code": a.postal_code,
                "region": a.region,
                "city": a.city,
                "address_line": a.address_line,
            }
            for a in request.addresses
        ],
    )


def customer_proto(view: CustomerView) -> identity_pb2.Customer:
    return identity_pb2.Customer(
        customer_id=view.customer_id,
        merged_ids=list(view.merged_ids),
        identifiers=[
            identity_pb2.LinkedIdentifier(
                identifier=identifier_proto(key),
                source=source,
                first_seen_time=datetime_to_timestamp(first),
                last_seen_time=datetime_to_timestamp(last),
            )
            for key, source, first, last in view.identifiers
        ],
        create_time=datetime_to_timestamp(view.created_at),
        record_count=view.record_count,
    )


class IdentityServicer(identity_pb2_grpc.IdentityServiceServicer):
    def __init__(self, service: IdentityService) -> None:
        self.service = service

    async def Resolve(
        self, request: identity_pb2.ResolveRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.ResolveResponse:
        record = build_record(raw_record(request), dt.datetime.now(dt.UTC))
        resolution = await self.service.resolve(record)
        return identity_pb2.ResolveResponse(
            customer_id=resolution.customer_id,
            outcome=_OUTCOME[resolution.outcome],  # type: ignore[arg-type]
            normalized_identifiers=[identifier_proto(k) for k in resolution.identifiers],
        )

    async def EraseCustomer(
        self, request: identity_pb2.EraseCustomerRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.EraseCustomerResponse:
        refs, identifiers = await self.service.erase(
            request.customer_id, request.actor, request.reason
        )
        return identity_pb2.EraseCustomerResponse(
            erased_records=[
                common_pb2.RecordRef(source=r.source, message_id=r.message_id) for r in refs
            ],
            erased_identifier_count=identifiers,
        )

    async def LookupCustomer(
        self, request: identity_pb2.LookupCustomerRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.Customer:
        if request.WhichOneof("key") == "identifier":
            view = await self.service.lookup_by_identifier(identifier_triple(request.identifier))
        else:
            view = await self.service.lookup_by_id(request.customer_id)
        return customer_proto(view)
