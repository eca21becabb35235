"""Delivery of accepted messages to identity (resolve) and then profile (apply), over gRPC."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import TypeVar

import grpc
from google.rpc import code_pb2

from svod.common.v1 import common_pb2
from svod.identity.v1 import identity_pb2, identity_pb2_grpc
from svod.ingestion.v1 import ingestion_pb2
from svod.profile.v1 import profile_pb2, profile_pb2_grpc
from svod_runtime.outbox import DeliveryError

T = TypeVar("T")
# Limits of identity's BatchLookupCustomers and profile's ApplyEventBatch.
LOOKUPS_PER_CALL = 5_000
EVENTS_PER_CALL = 1_000


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

    async def deliver_tracks(
        self, items: Sequence[tuple[bytes, dict[str, str]]]
    ) -> list[str | DeliveryError | None]:
        """Applies many events: one identifier look-up call and one ApplyEventBatch call per
        chunk. Each item is (stored TrackRequest, trace carrier); its answer is the customer id
        (applied), None (no customer has any of its identifiers yet) or the refusal."""
        messages = [ingestion_pb2.TrackRequest.FromString(payload) for payload, _ in items]
        flat = [i for m in messages for i in m.event.identifiers]
        owners = await self._lookup(flat)
        answers: list[str | DeliveryError | None] = []
        position = 0
        for message in messages:
            mine = owners[position : position + len(message.event.identifiers)]
            position += len(message.event.identifiers)
            # The first identifier identity knows names the customer (events never create one).
            known = next((o for o in mine if isinstance(o, str)), None)
            refused = next((o for o in mine if isinstance(o, DeliveryError)), None)
            answers.append(known if known is not None else refused)
        events = [
            (index, message, carrier)
            for index, (message, (_, carrier), answer) in enumerate(
                zip(messages, items, answers, strict=True)
            )
            if isinstance(answer, str)
        ]
        for start in range(0, len(events), EVENTS_PER_CALL):
            chunk = events[start : start + EVENTS_PER_CALL]
            reply = await self._call(
                self.profile.ApplyEventBatch(
                    profile_pb2.ApplyEventBatchRequest(
                        events=[
                            profile_pb2.ApplyEventRequest(
                                customer_id=str(answers[index]),
                                record_ref=message.record_ref,
                                channel=message.channel,
                                event=message.event,
                                trace_context=carrier,
                            )
                            for index, message, carrier in chunk
                        ]
                    ),
                    timeout=self.timeout_s,
                )
            )
            for (index, _, _), result in zip(chunk, reply.results, strict=True):
                if not result.HasField("applied"):
                    answers[index] = DeliveryError(result.error_code, result.error_message)
        return answers

    async def _lookup(
        self, identifiers: Sequence[common_pb2.Identifier]
    ) -> list[str | DeliveryError | None]:
        """Each identifier's customer (None: nobody's), LOOKUPS_PER_CALL per call."""
        out: list[str | DeliveryError | None] = []
        for start in range(0, len(identifiers), LOOKUPS_PER_CALL):
            reply = await self._call(
                self.identity.BatchLookupCustomers(
                    identity_pb2.BatchLookupCustomersRequest(
                        identifiers=identifiers[start : start + LOOKUPS_PER_CALL]
                    ),
                    timeout=self.timeout_s,
                )
            )
            for result in reply.results:
                if result.HasField("error"):
                    out.append(
                        DeliveryError(code_pb2.Code.Name(result.error.code), result.error.message)
                    )
                else:
                    out.append(result.customer_id or None)
        return out

    @staticmethod
    async def _call(call: Awaitable[T]) -> T:
        try:
            return await call
        except grpc.aio.AioRpcError as error:
            raise DeliveryError(error.code().name, error.details() or "") from None
