"""Delivery of accepted messages to identity (resolve) and then profile (apply), over gRPC."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from svod.common.v1 import common_pb2
from svod.identity.v1 import identity_pb2, identity_pb2_grpc
from svod.ingestion.v1 import ingestion_pb2
from svod.profile.v1 import profile_pb2, profile_pb2_grpc
from svod_runtime.outbox import DeliveryError


class GrpcDownstream:
    def __init__(
        self, identity: grpc.aio.Channel, profile: grpc.aio.Channel, timeout_s: float
    ) -> None:
        self.identity = identity_pb2_grpc.IdentityServiceStub(identity)
        self.profile = profile_pb2_grpc.ProfileServiceStub(profile)
        self.timeout_s = timeout_s

    async def deliver_identify(self, payload: bytes) -> str:
        message = ingestion_pb2.IdentifyRequest.FromString(payload)
        record = message.record
        try:
            resolved = await self.identity.Resolve(
                identity_pb2.ResolveRequest(
                    record_ref=message.record_ref,
                    channel=message.channel,
                    observed_time=message.observed_time,
                    identifiers=record.identifiers,
                    name=record.name,
                    birth_date=record.birth_date,
                    gender=record.gender,
                    addresses=record.addresses,
                ),
                timeout=self.timeout_s,
            )
            await self.profile.Apply(
                profile_pb2.ApplyRequest(
                    customer_id=resolved.customer_id,
                    record_ref=message.record_ref,
                    channel=message.channel,
                    observed_time=message.observed_time,
                    identifiers=resolved.normalized_identifiers,
                    name=record.name,
                    birth_date=record.birth_date,
                    gender=record.gender,
                    addresses=record.addresses,
                    attributes=record.attributes,
                ),
                timeout=self.timeout_s,
            )
        except grpc.aio.AioRpcError as error:
            raise DeliveryError(error.code().name, error.details() or "") from None
        return resolved.customer_id

    async def _customer_of(self, identifiers: Sequence[common_pb2.Identifier]) -> str | None:
        """The customer of the first identifier identity knows (events never create one)."""
        for identifier in identifiers:
            try:
                customer = await self.identity.LookupCustomer(
                    identity_pb2.LookupCustomerRequest(identifier=identifier),
                    timeout=self.timeout_s,
                )
            except grpc.aio.AioRpcError as error:
                if error.code() == grpc.StatusCode.NOT_FOUND:
                    continue
                raise DeliveryError(error.code().name, error.details() or "") from None
            return customer.customer_id
        return None

    async def deliver_track(self, payload: bytes) -> str | None:
        message = ingestion_pb2.TrackRequest.FromString(payload)
        customer_id = await self._customer_of(message.event.identifiers)
        if customer_id is None:
            return None
        try:
            await self.profile.ApplyEvent(
                profile_pb2.ApplyEventRequest(
                    customer_id=customer_id,
                    record_ref=message.record_ref,
                    channel=message.channel,
                    event=message.event,
                ),
                timeout=self.timeout_s,
            )
        except grpc.aio.AioRpcError as error:
            raise DeliveryError(error.code().name, error.details() or "") from None
        return customer_id
