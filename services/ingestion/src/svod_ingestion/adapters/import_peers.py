"""Identity's batch engine, profile's customer import fold and segmentation's recompute, as a
customer import's job calls them; identity's look-ups and profile's event fold, as an event import's
staging and job call them (docs/bulk-import.md)."""

from __future__ import annotations

import asyncio
import os
import zlib
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import TypeVar

import grpc
from google.rpc import error_details_pb2

from svod.common.v1 import common_pb2
from svod.identity.v1 import identity_pb2, identity_pb2_grpc
from svod.ingestion.v1 import ingestion_pb2
from svod.profile.v1 import profile_pb2, profile_pb2_grpc
from svod.segmentation.v1 import segmentation_pb2, segmentation_pb2_grpc
from svod_ingestion.adapters.downstream import (
    LOOKUPS_PER_CALL,
    GrpcDownstream,
    _apply_request,
    _finding,
    calls_of,
    resolve_request,
)
from svod_ingestion.domain.attribution import Finding
from svod_ingestion.domain.imports import EventFoldProgress, ImportResult, ResolutionProgress
from svod_runtime.clients import delivery_error
from svod_runtime.errors import FieldViolation
from svod_runtime.outbox import DeliveryError

T = TypeVar("T")

_JOB_STATES = {
    identity_pb2.RESOLUTION_JOB_STATE_STAGING: "staging",
    identity_pb2.RESOLUTION_JOB_STATE_QUEUED: "queued",
    identity_pb2.RESOLUTION_JOB_STATE_RUNNING: "running",
    identity_pb2.RESOLUTION_JOB_STATE_SUCCEEDED: "succeeded",
    identity_pb2.RESOLUTION_JOB_STATE_FAILED: "failed",
}
# Deadline of a StageImportRecords message (2,000 records written with COPY there) and of the
# recompute of every segment, which is a full recompute in SQL.
STAGE_TIMEOUT_S = 120.0
# FoldCustomerImport calls in flight while folding (records split by customer): profile's
# Python and its Postgres overlap. SVOD_IMPORT_APPLY_LANES overrides it (for the
# measurement of bench_customers_path --lanes-ab; read nowhere else).
APPLY_LANES = int(os.environ.get("SVOD_IMPORT_APPLY_LANES", "2"))
# Records per FoldCustomerImport call: profile's most (FoldCustomerImportRequest.records).
FOLD_RECORDS = 2000
# Deadline of a FoldCustomerImport call: the peer timeout and this per record (2,000 records:
# 105 s). ApplyBatch's allowance (BULK_S_PER_RECORD, 25 s for 2,000) expired under a load
# average of 35-40 (bench_customers_path --paths batch, 50,115 records): profile's
# transaction was cancelled and rolled back, the step done again with backoff up to 30 s, and
# the job spent more than 10 minutes on its last 10,000 records, doing each call's work
# again. A call that ends late costs less than one done twice; a takeover of the job meanwhile
# is fenced (settle) and the fold idempotent by record.
FOLD_S_PER_RECORD = 0.05
# SVOD_IMPORT_FOLD=apply_batch folds with ApplyBatch calls as before FoldCustomerImport (the
# baseline of bench_customers_path --with-apply-batch; read nowhere else).
APPLY_BATCH_FOLD = os.environ.get("SVOD_IMPORT_FOLD", "") == "apply_batch"
RECOMPUTE_TIMEOUT_S = 600.0


def _progress(job: identity_pb2.ResolutionJob) -> ResolutionProgress:
    return ResolutionProgress(
        state=_JOB_STATES.get(job.state, "unspecified"),
        phase=identity_pb2.ResolutionJobPhase.Name(job.phase)
        .removeprefix("RESOLUTION_JOB_PHASE_")
        .lower(),
        records_total=job.records_total,
        records_done=job.records_done,
        customers_created=job.customers_created,
        records_linked=job.records_linked,
        records_already_resolved=job.records_already_resolved,
        customers_merged=job.customers_merged,
        review_items_opened=job.review_items_opened,
        error=job.error,
    )


# Fields of identity's ResolveRequest that an IdentifyRequest has at its top level; the others
# are the record's.
_TOP_LEVEL = ("record_ref", "channel", "observed_time")


def _our_field(field: str) -> str:
    if not field or field.startswith(_TOP_LEVEL):
        return field
    return f"record.{field}"


def _violations(refused: identity_pb2.RefusedImportRecord) -> list[FieldViolation]:
    out: list[FieldViolation] = []
    for detail in refused.error.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            # identity names the fields of a ResolveRequest; ours are of an IdentifyRequest
            out += [
                FieldViolation(_our_field(v.field), v.description) for v in bad.field_violations
            ]
    return out


def _import_result(result: identity_pb2.ImportRecordResult) -> ImportResult:
    return ImportResult(
        result.sequence,
        result.record_ref.source,
        result.record_ref.message_id,
        result.customer_id,
        tuple(i.SerializeToString() for i in result.normalized_identifiers),
    )


class GrpcImportPeers:
    def __init__(
        self,
        identity: grpc.aio.Channel,
        segmentation: grpc.aio.Channel,
        downstream: GrpcDownstream,
        timeout_s: float,
    ) -> None:
        self.identity = identity_pb2_grpc.IdentityServiceStub(identity)
        self.segmentation = segmentation_pb2_grpc.SegmentationServiceStub(segmentation)
        self.profile = downstream.profile
        self.downstream = downstream
        self.timeout_s = timeout_s
        # Whether identity serves ListImportResultPages (False once it answered UNIMPLEMENTED).
        self.result_pages = True

    async def stage(
        self, import_id: str, payloads: Sequence[bytes]
    ) -> tuple[dict[int, tuple[str, list[FieldViolation]]], int]:
        """Stages stored requests with identity under ``import_id``, as one message: the
        refused ones by position (reason, violations) and the import's staged count. Raises
        DeliveryError when identity could not stage them (nothing answered is durable)."""
        request = identity_pb2.StageImportRecordsRequest(
            import_id=import_id,
            records=[
                resolve_request(ingestion_pb2.IdentifyRequest.FromString(p)) for p in payloads
            ],
        )
        try:
            call = self.identity.StageImportRecords(iter([request]), timeout=STAGE_TIMEOUT_S)
            answers = [answer async for answer in call]
        except grpc.aio.AioRpcError as error:
            raise delivery_error(error) from None
        if len(answers) != 1:
            raise DeliveryError("UNAVAILABLE", "identity did not answer the staged message")
        (answer,) = answers
        refused = {
            r.index: (r.error.message or "refused by identity", _violations(r))
            for r in answer.refused
        }
        return refused, answer.import_staged_count

    async def commit(self, import_id: str) -> ResolutionProgress:
        job = await self._call(
            self.identity.CommitImport(
                identity_pb2.CommitImportRequest(import_id=import_id), timeout=self.timeout_s
            )
        )
        return _progress(job)

    async def progress(self, import_id: str) -> ResolutionProgress:
        job = await self._call(
            self.identity.GetResolutionJob(
                identity_pb2.GetResolutionJobRequest(job_id=import_id), timeout=self.timeout_s
            )
        )
        return _progress(job)

    async def results(self, import_id: str, after_sequence: int) -> AsyncIterator[ImportResult]:
        """Identity's results after ``after_sequence``, in staging order. Raises DeliveryError
        when the stream breaks (read again from the last sequence).

        Read with ListImportResultPages (up to 2,000 a message: at 200,000 records 14-18 s
        against ListImportResults' 30 s, and 0.3 s of the reader's CPU against 9-10 s,
        docs/bulk-import.md); an identity without it (UNIMPLEMENTED, before any result: a
        rolling upgrade) is read one result a message, and remembered as such."""
        request = identity_pb2.ListImportResultsRequest(
            import_id=import_id, after_sequence=after_sequence
        )
        if self.result_pages:
            call = self.identity.ListImportResultPages(request)
            pages = 0
            try:
                async for page in call:
                    pages += 1
                    for result in page.results:
                        yield _import_result(result)
                return
            except grpc.aio.AioRpcError as error:
                if pages or error.code() != grpc.StatusCode.UNIMPLEMENTED:
                    raise delivery_error(error) from None
                self.result_pages = False
            finally:
                call.cancel()
        single = self.identity.ListImportResults(request)
        try:
            async for result in single:
                yield _import_result(result)
        except grpc.aio.AioRpcError as error:
            raise delivery_error(error) from None
        finally:
            single.cancel()

    async def fold(
        self, import_id: str, items: Sequence[tuple[bytes, ImportResult]]
    ) -> list[str | DeliveryError]:
        """Folds resolved records (stored request, identity's result) into their profiles with
        profile's FoldCustomerImport, each record the ApplyRequest the streaming path sends
        (GrpcDownstream's own conversion); for each, the customer id or the refusal. A profile
        without the fold (UNIMPLEMENTED: a rolling upgrade) gets ApplyBatch calls instead."""
        # Records split into APPLY_LANES groups by customer, folded at once: a customer's
        # records stay in one group, in order (the caller's steps run one after another).
        lanes: list[list[int]] = [[] for _ in range(APPLY_LANES)]
        for position, (_, result) in enumerate(items):
            lanes[zlib.crc32(result.customer_id.encode()) % APPLY_LANES].append(position)
        answers: list[str | DeliveryError] = [DeliveryError("UNKNOWN", "not applied")] * len(items)

        def resolved(position: int) -> identity_pb2.ResolveResponse:
            result = items[position][1]
            response = identity_pb2.ResolveResponse(customer_id=result.customer_id)
            for raw in result.normalized_identifiers:
                response.normalized_identifiers.add().ParseFromString(raw)
            return response

        async def fold(positions: list[int]) -> None:
            messages = [ingestion_pb2.IdentifyRequest.FromString(items[i][0]) for i in positions]
            responses = [resolved(i) for i in positions]
            if APPLY_BATCH_FOLD:
                done = await self.downstream.apply_resolved(
                    messages, [{} for _ in positions], list(responses)
                )
                for i, outcome in zip(positions, done, strict=True):
                    answers[i] = outcome
                return
            for part in calls_of(
                list(
                    enumerate(
                        _apply_request(m, r, {}) for m, r in zip(messages, responses, strict=True)
                    )
                ),
                FOLD_RECORDS,
            ):
                done = await self._fold_call(
                    import_id,
                    [messages[p] for p, _ in part],
                    [r for _, r in part],
                    [responses[p] for p, _ in part],
                )
                for (p, _), outcome in zip(part, done, strict=True):
                    answers[positions[p]] = outcome

        await asyncio.gather(*(fold(lane) for lane in lanes if lane))
        return answers

    async def _fold_call(
        self,
        import_id: str,
        messages: list[ingestion_pb2.IdentifyRequest],
        records: list[profile_pb2.ApplyRequest],
        resolved: list[identity_pb2.ResolveResponse],
    ) -> list[str | DeliveryError]:
        try:
            reply = await self._call(
                self.profile.FoldCustomerImport(
                    profile_pb2.FoldCustomerImportRequest(import_id=import_id, records=records),
                    timeout=self.timeout_s + FOLD_S_PER_RECORD * len(records),
                )
            )
        except DeliveryError as error:
            if error.status == "UNIMPLEMENTED":
                return await self.downstream.apply_resolved(
                    messages, [{} for _ in messages], list(resolved)
                )
            return [error] * len(records)
        return [
            r.customer_id
            if result.HasField("applied")
            else DeliveryError(result.error_code, result.error_message)
            for r, result in zip(resolved, reply.results, strict=True)
        ]

    async def finish(self, import_id: str) -> int:
        """Profile announces the customers the import's folds changed (once each); how many.
        0 from a profile without the fold (its ApplyBatch announced them)."""
        if APPLY_BATCH_FOLD:
            return 0
        try:
            reply = await self._call(
                self.profile.FinishCustomerImport(
                    profile_pb2.FinishCustomerImportRequest(import_id=import_id),
                    timeout=self.timeout_s,
                )
            )
        except DeliveryError as error:
            if error.status == "UNIMPLEMENTED":
                return 0
            raise
        return reply.customers_announced

    async def recompute_segments(self) -> None:
        await self._call(
            self.segmentation.RecomputeSegments(
                segmentation_pb2.RecomputeSegmentsRequest(), timeout=RECOMPUTE_TIMEOUT_S
            )
        )

    @staticmethod
    async def _call(call: Awaitable[T]) -> T:
        try:
            return await call
        except grpc.aio.AioRpcError as error:
            raise delivery_error(error) from None


_FOLD_STATES = {
    profile_pb2.EventImport.STATE_STAGING: "staging",
    profile_pb2.EventImport.STATE_COMMITTING: "committing",
    profile_pb2.EventImport.STATE_COMMITTED: "committed",
}


def _fold(job: profile_pb2.EventImport) -> EventFoldProgress:
    return EventFoldProgress(
        state=_FOLD_STATES.get(job.state, "unspecified"),
        staged=job.staged_count,
        applied=job.applied_count,
        duplicate=job.duplicate_count,
        erased=job.erased_count,
        customers=job.customer_count,
    )


# A stored TrackRequest's top-level tags (record_ref = 1, channel = 2, event = 3) and those
# of the same fields in ApplyEventRequest (record_ref = 2, channel = 3, event = 4).
_RETAG = {0x0A: b"\x12", 0x10: b"\x18", 0x1A: b"\x22"}


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def apply_event_bytes(payload: bytes, customer_id: str) -> bytes:
    """The serialised ApplyEventRequest of a stored TrackRequest and its customer, made from
    the stored bytes by renumbering its three top-level fields (the messages inside are the
    same bytes): parsing each stored event, copying it into an ApplyEventRequest and
    serialising that again was 92 of ingestion's 1,536 py-spy samples of staging
    (bench_events_path, 200,000 events). A payload with any other top-level field (one a
    newer client sent) goes the parsing way, which leaves such fields out."""
    customer = customer_id.encode()
    out = [b"\x0a", _varint(len(customer)), customer]
    position, end = 0, len(payload)
    try:
        while position < end:
            tag = payload[position]
            renumbered = _RETAG.get(tag)
            if renumbered is None:
                return _parsed_apply_event(payload, customer_id)
            start = position + 1
            if tag == 0x10:  # a varint
                position = start
                while payload[position] & 0x80:
                    position += 1
                position += 1
            else:  # length-delimited: the length's varint, then the bytes
                position, length, shift = start, 0, 0
                while True:
                    byte = payload[position]
                    length |= (byte & 0x7F) << shift
                    position += 1
                    if not byte & 0x80:
                        break
                    shift += 7
                position += length
            if position > end:
                return _parsed_apply_event(payload, customer_id)
            out += (renumbered, payload[start:position])
    except IndexError:  # pragma: no cover - a stored payload is whole
        return _parsed_apply_event(payload, customer_id)
    return b"".join(out)


def _parsed_apply_event(payload: bytes, customer_id: str) -> bytes:
    message = ingestion_pb2.TrackRequest.FromString(payload)
    return profile_pb2.ApplyEventRequest(
        customer_id=customer_id,
        record_ref=message.record_ref,
        channel=message.channel,
        event=message.event,
    ).SerializeToString()


_DECISIVE = identity_pb2.IDENTIFIER_STATE_DECISIVE
# The varints of lengths below 16,384 (a stored event is about 100-200 bytes), made once.
_LENGTHS = tuple(_varint(n) for n in range(1 << 14))


def _length(value: int) -> bytes:
    return _LENGTHS[value] if value < 1 << 14 else _varint(value)


def stage_request_bytes(import_id: str, items: Sequence[tuple[bytes, str]]) -> bytes:
    """A serialised StageEventImportRequest (import_id = 1, events = 2) of stored
    TrackRequests and their customers."""
    name = import_id.encode()
    out = [b"\x0a", _varint(len(name)), name]
    for payload, customer_id in items:
        event = apply_event_bytes(payload, customer_id)
        out += (b"\x12", _varint(len(event)), event)
    return b"".join(out)


class GrpcEventImportPeers:
    """Identity's BatchLookupCustomers (through GrpcDownstream, as the streaming path asks it)
    and profile's set-based event fold, as an event import calls them."""

    def __init__(
        self, profile: grpc.aio.Channel, downstream: GrpcDownstream, timeout_s: float
    ) -> None:
        self.profile = profile_pb2_grpc.ProfileServiceStub(profile)
        # StageEventImport with the request as bytes, built by stage_request_bytes.
        self._stage_raw = profile.stream_stream(
            "/svod.profile.v1.ProfileService/StageEventImport",
            request_serializer=None,
            response_deserializer=profile_pb2.StageEventImportResponse.FromString,
        )
        self.downstream = downstream
        self.timeout_s = timeout_s

    async def lookup(self, payloads: Sequence[bytes]) -> list[list[Finding | None]]:
        """Identity's findings for each stored event's identifiers: what the streaming path's
        ``lookup_tracks`` answers, asked with the same BatchLookupCustomers calls. Raises
        DeliveryError when identity could not be asked.

        Cheaper per event (ingestion's py-spy samples of a 200,000-event import: parsing each
        payload apart, flattening and slicing the answers, and a Finding made per identifier
        were 9% of the process): the payloads parsed in one call, framed as a message's
        repeated field; and one Finding kept per customer for the usual answer (a DECISIVE
        identifier, its customer its one candidate), not made again per identifier (Finding
        is frozen: findings are shared, never changed). 5.1-5.6 -> 4.0 us an event (probe,
        2,000 bench events against a fake identity, least of 40 runs, load 17-20)."""
        framed = b"".join(part for p in payloads for part in (b"\x12", _length(len(p)), p))
        events = ingestion_pb2.StageEventImportRequest.FromString(framed).events
        counts: list[int] = []
        flat: list[common_pb2.Identifier] = []
        for message in events:
            identifiers = message.event.identifiers
            counts.append(len(identifiers))
            flat.extend(identifiers)
        found: list[Finding | None] = []
        decisive: dict[tuple[str, int], Finding] = {}
        for start in range(0, len(flat), LOOKUPS_PER_CALL):
            reply = await GrpcDownstream._call(
                self.downstream.identity.BatchLookupCustomers(
                    identity_pb2.BatchLookupCustomersRequest(
                        identifiers=flat[start : start + LOOKUPS_PER_CALL]
                    ),
                    timeout=self.downstream.timeout_s,
                )
            )
            for result in reply.results:
                customer_id = result.customer_id
                candidates = result.candidate_customer_ids
                if (
                    customer_id
                    and result.state == _DECISIVE
                    and (not candidates or (len(candidates) == 1 and candidates[0] == customer_id))
                    and not result.HasField("error")
                ):
                    key = (customer_id, len(candidates))
                    finding = decisive.get(key)
                    if finding is None:
                        made = _finding(result)
                        assert made is not None  # no error: identity's finding
                        finding = decisive[key] = made
                    found.append(finding)
                else:
                    found.append(_finding(result))
        out: list[list[Finding | None]] = []
        position = 0
        for count in counts:
            out.append(found[position : position + count])
            position += count
        return out

    async def stage(
        self, import_id: str, items: Sequence[tuple[bytes, str]]
    ) -> tuple[dict[int, tuple[str, list[FieldViolation]]], int]:
        """Stages attributed events (stored TrackRequest, customer id) with profile under
        ``import_id``, as one message, each the ApplyEventRequest the streaming path sends:
        the refused ones by position (reason, violations) and the import's staged count.
        Raises DeliveryError when profile could not stage them."""
        request = stage_request_bytes(import_id, items)
        try:
            call = self._stage_raw(iter([request]), timeout=STAGE_TIMEOUT_S)
            answers = [answer async for answer in call]
        except grpc.aio.AioRpcError as error:
            raise delivery_error(error) from None
        if len(answers) != 1:
            raise DeliveryError("UNAVAILABLE", "profile did not answer the staged message")
        (answer,) = answers
        refused: dict[int, tuple[str, list[FieldViolation]]] = {}
        for r in answer.refused:
            violations: list[FieldViolation] = []
            for detail in r.error.details:
                bad = error_details_pb2.BadRequest()
                if detail.Unpack(bad):
                    violations += [
                        FieldViolation(v.field, v.description) for v in bad.field_violations
                    ]
            refused[r.index] = (r.error.message or "refused by profile", violations)
        return refused, answer.import_staged_count

    async def commit(self, import_id: str) -> EventFoldProgress:
        return _fold(
            await GrpcImportPeers._call(
                self.profile.CommitEventImport(
                    profile_pb2.CommitEventImportRequest(import_id=import_id),
                    timeout=self.timeout_s,
                )
            )
        )

    async def progress(self, import_id: str) -> EventFoldProgress:
        return _fold(
            await GrpcImportPeers._call(
                self.profile.GetEventImport(
                    profile_pb2.GetEventImportRequest(import_id=import_id), timeout=self.timeout_s
                )
            )
        )
