"""Delivery of accepted messages to identity (resolve) and then profile (apply), over gRPC."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import TypeVar

import grpc
from google.rpc import code_pb2

from svod.common.v1 import common_pb2
from svod.identity.v1 import identity_pb2, identity_pb2_grpc
from svod.ingestion.v1 import ingestion_pb2
from svod.profile.v1 import profile_pb2, profile_pb2_grpc
from svod_runtime.outbox import DeliveryError
from svod_runtime.telemetry import continuing

T = TypeVar("T")
# Limits of identity's BatchLookupCustomers and profile's ApplyEventBatch.
LOOKUPS_PER_CALL = 5_000
EVENTS_PER_CALL = 1_000
# A relay pass of at least this many identify calls is a bulk import: it goes to identity as
# ResolveBatch streams of RESOLVES_PER_STREAM records.
BULK_IDENTIFY_MIN = 20
RESOLVES_PER_STREAM = 1_000
# Profile Apply calls of one pass in flight at once.
APPLIES_IN_FLIGHT = 16


def _resolve_request(message: ingestion_pb2.IdentifyRequest) -> identity_pb2.ResolveRequest:
    record = message.record
    return identity_pb2.ResolveRequest(
        record_ref=message.record_ref,
        channel=message.channel,
        observed_time=message.observed_time,
        identifiers=record.identifiers,
        name=record.name,
        birth_date=record.birth_date,
        gender=record.gender,
        addresses=record.addresses,
    )


class GrpcDownstream:
    def __init__(
        self, identity: grpc.aio.Channel, profile: grpc.aio.Channel, timeout_s: float
    ) -> None:
        self.identity = identity_pb2_grpc.IdentityServiceStub(identity)
        self.profile = profile_pb2_grpc.ProfileServiceStub(profile)
        self.timeout_s = timeout_s

    async def deliver_identifies(
        self, items: Sequence[tuple[bytes, dict[str, str]]]
    ) -> list[str | DeliveryError]:
        """Resolves and applies many identify calls (stored IdentifyRequest, trace carrier);
        each answer is the customer id or the refusal.

        A few records are resolved one call each, concurrently, so that an interactive Identify
        stays one trace end to end. A bulk pass (an import) goes to identity as ResolveBatch
        streams of RESOLVES_PER_STREAM records, one transaction per 500 there; a stream that
        identity refuses as a whole is resolved record by record, so each gets its own answer.
        Profile gets each record's Apply in the record's own trace.
        """
        messages = [ingestion_pb2.IdentifyRequest.FromString(payload) for payload, _ in items]
        carriers = [carrier for _, carrier in items]
        if len(messages) < BULK_IDENTIFY_MIN:
            resolved = await self._resolve_each(messages, carriers)
        else:
            resolved = []
            for start in range(0, len(messages), RESOLVES_PER_STREAM):
                chunk = messages[start : start + RESOLVES_PER_STREAM]
                resolved += await self._resolve_many(chunk, carriers[start : start + len(chunk)])
        limit = asyncio.Semaphore(APPLIES_IN_FLIGHT)

        async def apply(
            message: ingestion_pb2.IdentifyRequest,
            carrier: dict[str, str],
            outcome: identity_pb2.ResolveResponse | DeliveryError,
        ) -> str | DeliveryError:
            if isinstance(outcome, DeliveryError):
                return outcome
            async with limit:
                with continuing(carrier):
                    try:
                        await self._apply(message, outcome)
                    except DeliveryError as error:
                        return error
            return outcome.customer_id

        return list(await asyncio.gather(*map(apply, messages, carriers, resolved)))

    async def _resolve_each(
        self, messages: list[ingestion_pb2.IdentifyRequest], carriers: list[dict[str, str]]
    ) -> list[identity_pb2.ResolveResponse | DeliveryError]:
        """One Resolve call per record, concurrently, each in its record's trace."""
        return list(await asyncio.gather(*map(self._resolve_one, messages, carriers)))

    async def _resolve_one(
        self, message: ingestion_pb2.IdentifyRequest, carrier: dict[str, str]
    ) -> identity_pb2.ResolveResponse | DeliveryError:
        with continuing(carrier):
            try:
                return await self._call(
                    self.identity.Resolve(_resolve_request(message), timeout=self.timeout_s)
                )
            except DeliveryError as error:
                return error

    async def _resolve_many(
        self, messages: list[ingestion_pb2.IdentifyRequest], carriers: list[dict[str, str]]
    ) -> list[identity_pb2.ResolveResponse | DeliveryError]:
        try:
            reply = await self._call(
                self.identity.ResolveBatch(
                    iter([_resolve_request(m) for m in messages]), timeout=self.timeout_s
                )
            )
        except DeliveryError as error:
            if error.status != "INVALID_ARGUMENT":
                return [error] * len(messages)
            return await self._resolve_each(messages, carriers)
        return list(reply.results)

    async def _apply(
        self, message: ingestion_pb2.IdentifyRequest, resolved: identity_pb2.ResolveResponse
    ) -> None:
        record = message.record
        await self._call(
            self.profile.Apply(
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
        )

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
