"""Delivery of accepted messages to identity (resolve) and then profile (apply), over gRPC."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import TypeVar

import grpc

from svod.common.v1 import common_pb2
from svod.identity.v1 import identity_pb2, identity_pb2_grpc
from svod.ingestion.v1 import ingestion_pb2
from svod.profile.v1 import profile_pb2, profile_pb2_grpc
from svod_ingestion.domain.attribution import Finding, IdentifierState
from svod_ingestion.domain.model import MessageKind
from svod_runtime.clients import delivery_error
from svod_runtime.outbox import DeliveryError
from svod_runtime.priority import sliced
from svod_runtime.protoconv import enum_short_name
from svod_runtime.telemetry import continuing

T = TypeVar("T")
# Limits of identity's BatchLookupCustomers and profile's ApplyEventBatch.
LOOKUPS_PER_CALL = 5_000
EVENTS_PER_CALL = 1_000
# A relay pass of at least this many identify calls is a bulk import: it goes to identity as
# ResolveBatch streams of RESOLVES_PER_STREAM records.
BULK_IDENTIFY_MIN = 20
RESOLVES_PER_STREAM = 1_000
# Records per profile ApplyBatch call (its limit is 1,000), and at most this many bytes (a
# record may take 128 KiB; profile reads messages of up to 16 MiB).
RECORDS_PER_APPLY = 500
APPLY_BYTES = 4 * 1024 * 1024
# A bulk call's deadline grows with its size: the peer timeout plus this much per record (a
# floor of 100 records/s beyond the fixed part). With the fixed 5 s, whole 1,000-record
# ResolveBatch streams failed on a loaded 2-core machine (load average 14, identity getting a
# quarter of a core) and their pass was retried with growing backoff: minutes of no progress.
# (Streams of 500 instead were slower end to end: 199.5 against 249.1 records/s, same run
# parameters, benchmarks/results/pipeline.json "after_streams500" / "ab_stream1000".)
BULK_S_PER_RECORD = 0.01
# Unary Apply calls in flight at once, towards a profile service without ApplyBatch.
APPLIES_IN_FLIGHT = 16


_ID_TYPE = common_pb2.IdentifierType.DESCRIPTOR
_STATES = {
    identity_pb2.IDENTIFIER_STATE_UNKNOWN: IdentifierState.UNKNOWN,
    identity_pb2.IDENTIFIER_STATE_DECISIVE: IdentifierState.DECISIVE,
    identity_pb2.IDENTIFIER_STATE_SHARED: IdentifierState.SHARED,
    identity_pb2.IDENTIFIER_STATE_BLOCKED: IdentifierState.BLOCKED,
}


def _finding(result: identity_pb2.BatchLookupCustomersResponse.Result) -> Finding | None:
    """Identity's answer for one identifier; None for one it refused as malformed."""
    if result.HasField("error"):
        return None
    # An identity that predates identifier states answers with a customer id or nothing.
    state = _STATES.get(
        result.state,
        IdentifierState.DECISIVE if result.customer_id else IdentifierState.UNKNOWN,
    )
    return Finding(state, result.customer_id, tuple(result.candidate_customer_ids))


def resolve_request(message: ingestion_pb2.IdentifyRequest) -> identity_pb2.ResolveRequest:
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


def _apply_request(
    message: ingestion_pb2.IdentifyRequest,
    resolved: identity_pb2.ResolveResponse,
    carrier: dict[str, str],
) -> profile_pb2.ApplyRequest:
    record = message.record
    return profile_pb2.ApplyRequest(
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
        trace_context=carrier,
    )


def calls_of(
    todo: Sequence[tuple[int, profile_pb2.ApplyRequest]], most_records: int = RECORDS_PER_APPLY
) -> list[list[tuple[int, profile_pb2.ApplyRequest]]]:
    """(position, record)s split, in order, into calls of at most ``most_records`` records
    and APPLY_BYTES serialised (ApplyBatch's, or a customer import's FoldCustomerImport's)."""
    parts: list[list[tuple[int, profile_pb2.ApplyRequest]]] = []
    part: list[tuple[int, profile_pb2.ApplyRequest]] = []
    size = 0
    for item in todo:
        item_size = item[1].ByteSize() + 8
        if part and (len(part) >= most_records or size + item_size > APPLY_BYTES):
            parts.append(part)
            part, size = [], 0
        part.append(item)
        size += item_size
    if part:
        parts.append(part)
    return parts


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
        Profile gets a bulk pass's records as ApplyBatch calls, each record carrying its own
        trace (profile continues it), in the order they came; a few records, one Apply each.
        Measured on 2 cores (benchmarks/pipeline, docs/performance.md): one unary Apply per
        record, 16 in flight, held bulk imports to a fifth of identity's own ResolveBatch rate.
        """
        messages = [ingestion_pb2.IdentifyRequest.FromString(payload) for payload, _ in items]
        carriers = [carrier for _, carrier in items]
        if len(messages) < BULK_IDENTIFY_MIN:
            resolved = await self._resolve_each(messages, carriers)
            return await self._apply_all(messages, carriers, resolved, batched=False)
        answers: list[str | DeliveryError] = []
        applying: asyncio.Task[list[str | DeliveryError]] | None = None
        for start in range(0, len(messages), RESOLVES_PER_STREAM):
            chunk = messages[start : start + RESOLVES_PER_STREAM]
            chunk_carriers = carriers[start : start + len(chunk)]
            resolved = await self._resolve_many(chunk, chunk_carriers)
            # Profile applies this chunk while identity resolves the next one; chunks are
            # applied one after the other, so a customer's records keep their order.
            if applying is not None:
                answers += await applying
            applying = asyncio.create_task(self._apply_all(chunk, chunk_carriers, resolved))
        if applying is not None:
            answers += await applying
        return answers

    async def apply_resolved(
        self,
        messages: list[ingestion_pb2.IdentifyRequest],
        carriers: list[dict[str, str]],
        resolved: list[identity_pb2.ResolveResponse | DeliveryError],
    ) -> list[str | DeliveryError]:
        """Applies records resolved elsewhere (a customer import's results) to their profiles
        as a bulk pass's are: ApplyBatch calls, in order."""
        return await self._apply_all(messages, carriers, resolved)

    async def _apply_all(
        self,
        messages: list[ingestion_pb2.IdentifyRequest],
        carriers: list[dict[str, str]],
        resolved: list[identity_pb2.ResolveResponse | DeliveryError],
        *,
        batched: bool = True,
    ) -> list[str | DeliveryError]:
        """Applies the resolved records to their profiles as ApplyBatch calls (each record
        carrying its own trace), or (not ``batched``: a few interactive records) one Apply
        each in its record's trace; for each, the customer id or the refusal."""
        answers: list[str | DeliveryError] = [
            outcome if isinstance(outcome, DeliveryError) else outcome.customer_id
            for outcome in resolved
        ]
        todo = [
            (index, _apply_request(message, outcome, carrier))
            async for index, (message, carrier, outcome) in sliced(
                enumerate(zip(messages, carriers, resolved, strict=True))
            )
            if not isinstance(outcome, DeliveryError)
        ]
        if not batched:
            each = await self._apply_each([r for _, r in todo])
            for (index, _), outcome in zip(todo, each, strict=True):
                if outcome is not None:
                    answers[index] = outcome
            return answers
        for part in calls_of(todo):
            try:
                reply = await self._call(
                    self.profile.ApplyBatch(
                        profile_pb2.ApplyBatchRequest(records=[r for _, r in part]),
                        timeout=self._bulk_timeout(len(part)),
                    )
                )
            except DeliveryError as error:
                if error.status != "UNIMPLEMENTED":
                    for index, _ in part:
                        answers[index] = error
                    continue
                # A profile service older than ApplyBatch (a rolling upgrade): one call each.
                each = await self._apply_each([r for _, r in part])
                for (index, _), outcome in zip(part, each, strict=True):
                    if outcome is not None:
                        answers[index] = outcome
                continue
            for (index, _), result in zip(part, reply.results, strict=True):
                if not result.HasField("applied"):
                    answers[index] = DeliveryError(result.error_code, result.error_message)
        return answers

    async def _apply_each(
        self, requests: list[profile_pb2.ApplyRequest]
    ) -> list[DeliveryError | None]:
        """Unary Apply calls, APPLIES_IN_FLIGHT at once, each in its record's trace."""
        limit = asyncio.Semaphore(APPLIES_IN_FLIGHT)

        async def apply(request: profile_pb2.ApplyRequest) -> DeliveryError | None:
            async with limit:
                with continuing(dict(request.trace_context)):
                    try:
                        await self._call(self.profile.Apply(request, timeout=self.timeout_s))
                    except DeliveryError as error:
                        return error
            return None

        return list(await asyncio.gather(*map(apply, requests)))

    def _bulk_timeout(self, records: int) -> float:
        return self.timeout_s + records * BULK_S_PER_RECORD

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
                    self.identity.Resolve(resolve_request(message), timeout=self.timeout_s)
                )
            except DeliveryError as error:
                return error

    async def _resolve_many(
        self, messages: list[ingestion_pb2.IdentifyRequest], carriers: list[dict[str, str]]
    ) -> list[identity_pb2.ResolveResponse | DeliveryError]:
        try:
            reply = await self._call(
                self.identity.ResolveBatch(
                    iter([resolve_request(m) for m in messages]),
                    timeout=self._bulk_timeout(len(messages)),
                )
            )
        except DeliveryError as error:
            if error.status != "INVALID_ARGUMENT":
                return [error] * len(messages)
            return await self._resolve_each(messages, carriers)
        return list(reply.results)

    async def lookup_tracks(self, payloads: Sequence[bytes]) -> list[list[Finding | None]]:
        """What identity says about each identifier of each event (None: identity refused it
        as malformed), LOOKUPS_PER_CALL identifiers per call. Raises DeliveryError when
        identity could not be asked."""
        messages = [ingestion_pb2.TrackRequest.FromString(payload) for payload in payloads]
        flat = [i for m in messages for i in m.event.identifiers]
        found = await self._lookup(flat)
        out: list[list[Finding | None]] = []
        position = 0
        for message in messages:
            count = len(message.event.identifiers)
            out.append(found[position : position + count])
            position += count
        return out

    async def apply_tracks(
        self, items: Sequence[tuple[bytes, str, dict[str, str]]]
    ) -> list[DeliveryError | None]:
        """Applies events (stored TrackRequest, customer id, trace carrier) to their customers'
        profiles, EVENTS_PER_CALL per ApplyEventBatch call; for each, None or the refusal.
        Raises DeliveryError when profile could not be asked."""
        answers: list[DeliveryError | None] = []
        for start in range(0, len(items), EVENTS_PER_CALL):
            chunk = items[start : start + EVENTS_PER_CALL]
            reply = await self._call(
                self.profile.ApplyEventBatch(
                    profile_pb2.ApplyEventBatchRequest(
                        events=[
                            profile_pb2.ApplyEventRequest(
                                customer_id=customer_id,
                                record_ref=message.record_ref,
                                channel=message.channel,
                                event=message.event,
                                trace_context=carrier,
                            )
                            async for message, customer_id, carrier in sliced(
                                (ingestion_pb2.TrackRequest.FromString(p), c, t)
                                for p, c, t in chunk
                            )
                        ]
                    ),
                    timeout=self._bulk_timeout(len(chunk)),
                )
            )
            answers += [
                None
                if result.HasField("applied")
                else DeliveryError(result.error_code, result.error_message)
                for result in reply.results
            ]
        return answers

    @staticmethod
    def identifiers_of(kind: MessageKind, payload: bytes) -> list[tuple[str, str, str]]:
        """(type, value, namespace) of a stored identify's or event's identifiers."""
        if kind is MessageKind.IDENTIFY:
            identifiers = ingestion_pb2.IdentifyRequest.FromString(payload).record.identifiers
        else:
            identifiers = ingestion_pb2.TrackRequest.FromString(payload).event.identifiers
        return [
            (enum_short_name(_ID_TYPE, i.type, "IDENTIFIER_TYPE_"), i.value, i.namespace)
            for i in identifiers
        ]

    async def _lookup(self, identifiers: Sequence[common_pb2.Identifier]) -> list[Finding | None]:
        """Identity's answer for each identifier, LOOKUPS_PER_CALL per call."""
        out: list[Finding | None] = []
        for start in range(0, len(identifiers), LOOKUPS_PER_CALL):
            reply = await self._call(
                self.identity.BatchLookupCustomers(
                    identity_pb2.BatchLookupCustomersRequest(
                        identifiers=identifiers[start : start + LOOKUPS_PER_CALL]
                    ),
                    timeout=self.timeout_s,
                )
            )
            out += [_finding(result) for result in reply.results]
        return out

    @staticmethod
    async def _call(call: Awaitable[T]) -> T:
        try:
            return await call
        except grpc.aio.AioRpcError as error:
            raise delivery_error(error) from None
