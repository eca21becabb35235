"""Thin gRPC adapter: proto <-> domain; errors become status codes in the shared interceptor."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.type import date_pb2

from svod.common.v1 import common_pb2
from svod.identity.v1 import identity_pb2, identity_pb2_grpc
from svod_identity.adapters.job_storage import ImportResult, Job
from svod_identity.domain import jobs
from svod_identity.domain.engine import Placement
from svod_identity.domain.explain import Evidence
from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.lookup import IdentifierAnswer, IdentifierState, Lookups
from svod_identity.domain.model import CustomerView, RecordRef, ResolutionOutcome
from svod_identity.domain.preview import MAX_SAMPLES
from svod_identity.domain.records import RawRecord, build_record
from svod_identity.domain.review import Side
from svod_identity.domain.rules import Rules
from svod_identity.entrypoints.metrics import IdentityMetrics
from svod_identity.service_layer.bulk import BulkJobs
from svod_identity.service_layer.use_cases import IdentityService, ModelInfo
from svod_runtime.auth import acting_as
from svod_runtime.dead_letters import DeadLetterRpcs
from svod_runtime.errors import FieldViolation, InvalidArgument
from svod_runtime.interceptors import status_proto_for
from svod_runtime.protoconv import (
    datetime_to_timestamp,
    enum_number,
    enum_short_name,
    enum_short_names,
    enum_value,
    proto_date_parts,
    timestamp_to_datetime,
)

_ID_TYPE = common_pb2.IdentifierType.DESCRIPTOR
# identifier_triple's and identifier_proto's conversions as look-ups, for the loops over many.
_TYPE_NAMES = enum_short_names(_ID_TYPE, "IDENTIFIER_TYPE_")
_TYPE_NUMBER = {name: number for number, name in _TYPE_NAMES.items()}
_CHANNEL = common_pb2.SourceChannel.DESCRIPTOR
_GENDER = common_pb2.Gender.DESCRIPTOR
_OUTCOME = {
    ResolutionOutcome.CREATED: identity_pb2.RESOLUTION_OUTCOME_CREATED,
    ResolutionOutcome.LINKED_EXACT: identity_pb2.RESOLUTION_OUTCOME_LINKED_EXACT,
    ResolutionOutcome.LINKED_FUZZY: identity_pb2.RESOLUTION_OUTCOME_LINKED_FUZZY,
    ResolutionOutcome.ALREADY_RESOLVED: identity_pb2.RESOLUTION_OUTCOME_ALREADY_RESOLVED,
}
MAX_BATCH = 100_000
MAX_LOOKUPS = 5_000


def identifier_triple(identifier: common_pb2.Identifier) -> tuple[str, str, str]:
    return (
        enum_short_name(_ID_TYPE, identifier.type, "IDENTIFIER_TYPE_"),
        identifier.value,
        identifier.namespace,
    )


def identifier_proto(key: IdentifierKey) -> common_pb2.Identifier:
    return common_pb2.Identifier(
        type=enum_value(common_pb2.IdentifierType, key.type, "IDENTIFIER_TYPE_"),
        value=key.value,
        namespace=key.namespace,
    )


def ref_proto(ref: RecordRef | None) -> common_pb2.RecordRef:
    if ref is None:
        return common_pb2.RecordRef()
    return common_pb2.RecordRef(source=ref.source, message_id=ref.message_id)


def ref_of(proto: common_pb2.RecordRef) -> RecordRef:
    return RecordRef(proto.source, proto.message_id)


def raw_record(request: identity_pb2.ResolveRequest) -> RawRecord:
    name = request.name
    return RawRecord(
        source=request.record_ref.source,
        message_id=request.record_ref.message_id,
        channel=enum_short_name(_CHANNEL, request.channel, "SOURCE_CHANNEL_"),
        observed_at=timestamp_to_datetime(request.observed_time, "observed_time"),
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


def resolve_response(placement: Placement) -> identity_pb2.ResolveResponse:
    return identity_pb2.ResolveResponse(
        customer_id=placement.customer_id,
        outcome=_OUTCOME[placement.outcome],
        normalized_identifiers=[identifier_proto(k) for k in placement.identifiers],
        unlinked_identifiers=[
            identity_pb2.UnlinkedIdentifier(identifier=identifier_proto(k), reason=why)
            for k, why in placement.unlinked
        ],
        rule=placement.rule,
        score=placement.score,
        review_item_ids=list(placement.review_item_ids),
        merged_customer_ids=list(placement.merged),
    )


def _refused(
    index: int, ref: common_pb2.RecordRef, error: InvalidArgument
) -> identity_pb2.RefusedImportRecord:
    return identity_pb2.RefusedImportRecord(
        index=index,
        record_ref=common_pb2.RecordRef(source=ref.source, message_id=ref.message_id),
        error=status_proto_for(error),
    )


def rules_body(rules: identity_pb2.Rules) -> dict[str, Any]:
    """Rules from the API as plain data for the domain's validation."""
    return {
        "identifier_rules": [
            {
                "type": enum_short_name(_ID_TYPE, r.type, "IDENTIFIER_TYPE_"),
                "namespace": r.namespace,
                "priority": r.priority,
                "max_values_per_customer": r.max_values_per_customer,
                "blocked_values": list(r.blocked_values),
                "max_people_per_value": r.max_people_per_value,
            }
            for r in rules.identifier_rules
        ],
        "auto_link_threshold": rules.auto_link_threshold,
        "review_threshold": rules.review_threshold,
        "link_placeholder_phones": rules.link_placeholder_phones,
        "fuzzy_disabled": rules.fuzzy_disabled,
    }


def rules_proto(rules: Rules) -> identity_pb2.Rules:
    return identity_pb2.Rules(
        version=rules.version,
        identifier_rules=[
            identity_pb2.IdentifierRule(
                type=enum_value(common_pb2.IdentifierType, r.type, "IDENTIFIER_TYPE_"),
                namespace=r.namespace,
                priority=r.priority,
                max_values_per_customer=r.max_values_per_customer,
                blocked_values=sorted(r.blocked_values),
                max_people_per_value=r.max_people_per_value,
            )
            for r in rules.identifier_rules
        ],
        auto_link_threshold=rules.auto_link_threshold,
        review_threshold=rules.review_threshold,
        update_time=datetime_to_timestamp(rules.updated_at),
        updated_by=rules.updated_by,
        link_placeholder_phones=rules.link_placeholder_phones,
        fuzzy_disabled=rules.fuzzy_disabled,
    )


def model_proto(info: ModelInfo) -> identity_pb2.MatchModel:
    return identity_pb2.MatchModel(
        version=info.version,
        model_json=info.model.to_json(),
        trained_pairs=info.trained_pairs,
        create_time=datetime_to_timestamp(info.created_at),
        created_by=info.created_by,
    )


def evidence_proto(step: Evidence) -> identity_pb2.EvidenceStep:
    proto = identity_pb2.EvidenceStep(
        kind=step.kind,
        from_record=ref_proto(step.from_ref),
        to_record=ref_proto(step.to_ref),
        identifier=identifier_proto(step.identifier) if step.identifier else None,
        score=step.score,
        rule_version=step.rule,
        actor=step.actor,
        reason=step.reason,
        disagreements=list(step.disagreements),
        vetoes=list(step.vetoes),
        feature_levels=dict(step.levels),
        decision=step.decision,
    )
    if step.at is not None:  # a moment it happened, never 1970-01-01
        proto.time.CopyFrom(datetime_to_timestamp(step.at))
    return proto


_IDENTIFIER_STATE = identity_pb2.IdentifierState.DESCRIPTOR
_LOOKUP_RESULT = identity_pb2.BatchLookupCustomersResponse.Result
_STATE_NUMBER = {
    state: enum_number(_IDENTIFIER_STATE, state.value, "IDENTIFIER_STATE_")
    for state in IdentifierState
}


# BatchLookupCustomersResponse.results on the wire, written directly. Issue #22: building a
# Result message per identifier (kwargs, a repeated field, the nested Identifier) and
# serialising it cost 2.4 us an identifier (py-spy: 18% of identity's CPU for an event import);
# these bytes cost 1.5 us. test_lookup_response holds them equal, byte for byte, to the
# message protobuf builds from the same answer, for every state and field. Field numbers:
# Result customer_id 1, error 2, state 3, candidate_customer_ids 4, blocked_reason 5,
# identifier 6; Identifier type 1, value 2, namespace 3.
_SMALL = [bytes([n]) for n in range(0x80)]
_STATE_FIELD = {state: b"\x18" + _SMALL[number] for state, number in _STATE_NUMBER.items()}
_TYPE_FIELD = {name: b"\x08" + _SMALL[number] for name, number in _TYPE_NUMBER.items()}


def _varint(size: int) -> bytes:
    if size < 0x80:
        return _SMALL[size]
    out = bytearray()
    while size > 0x7F:
        out.append(size & 0x7F | 0x80)
        size >>= 7
    out.append(size)
    return bytes(out)


def _text(tag: bytes, text: str) -> bytes:
    data = text.encode()
    return tag + _varint(len(data)) + data


def _result_bytes(found: IdentifierAnswer | InvalidArgument) -> bytes:
    """One result as an element of ``results`` (field 1, length-delimited)."""
    if isinstance(found, InvalidArgument):
        body = _LOOKUP_RESULT(error=status_proto_for(found)).SerializeToString()
        return b"\n" + _varint(len(body)) + body
    key = found.key
    identifier = _TYPE_FIELD[key.type] + _text(b"\x12", key.value)
    if key.namespace:
        identifier += _text(b"\x1a", key.namespace)
    parts = [_text(b"\n", found.customer_id)] if found.customer_id else []
    parts.append(_STATE_FIELD[found.state])
    parts += [_text(b'"', candidate) for candidate in found.candidates]
    if found.blocked_reason:
        parts.append(_text(b"*", found.blocked_reason))
    parts.append(b"2" + _varint(len(identifier)) + identifier)
    body = b"".join(parts)
    return b"\n" + _varint(len(body)) + body


def lookup_response(found: Lookups) -> identity_pb2.BatchLookupCustomersResponse:
    """The response: each distinct identifier's result encoded once, and the results in request
    order put together from those bytes (one parse in C): an event import asks for the same
    customers again and again."""
    answers = [_result_bytes(answer) for answer in found.answers]
    wire = b"".join(
        answers[slot] if isinstance(slot, int) else _result_bytes(slot) for slot in found.slots
    )
    return identity_pb2.BatchLookupCustomersResponse.FromString(wire)


def side_proto(side: Side) -> identity_pb2.ReviewSide:
    return identity_pb2.ReviewSide(
        customer_id=side.customer_id,
        record_ref=ref_proto(side.compared),
        first_names=list(side.first_names),
        last_names=list(side.last_names),
        middle_names=list(side.middle_names),
        birth_dates=[
            date_pb2.Date(year=d.year, month=d.month, day=d.day) for d in side.birth_dates
        ],
        cities=list(side.cities),
        identifiers=[identifier_proto(k) for k in side.identifiers],
        record_count=side.record_count,
    )


def job_proto(job: Job) -> identity_pb2.ResolutionJob:
    outcome = job.outcome
    proto = identity_pb2.ResolutionJob(
        job_id=job.job_id,
        kind=enum_value(identity_pb2.ResolutionJobKind, job.kind.value, "RESOLUTION_JOB_KIND_"),
        state=enum_value(identity_pb2.ResolutionJobState, job.state.value, "RESOLUTION_JOB_STATE_"),
        phase=enum_value(identity_pb2.ResolutionJobPhase, job.phase.value, "RESOLUTION_JOB_PHASE_"),
        records_staged=job.records_staged,
        records_total=job.records_total,
        records_done=job.records_done,
        customers_created=outcome.customers_created,
        records_linked=outcome.records_linked,
        records_already_resolved=outcome.records_already_resolved,
        customers_merged=outcome.customers_merged,
        review_items_opened=outcome.review_items_opened,
        dry_run=job.dry_run,
        error=job.error,
        attempts=job.attempts,
        create_time=datetime_to_timestamp(job.created_at),
        phase_seconds=outcome.phase_seconds,
        actor=job.actor,
        reason=job.reason,
    )
    if job.started_at is not None:
        proto.start_time.CopyFrom(datetime_to_timestamp(job.started_at))
    if job.finished_at is not None:
        proto.finish_time.CopyFrom(datetime_to_timestamp(job.finished_at))
    if outcome.changes is not None:
        proto.changes.CopyFrom(preview_proto(outcome.changes))
    return proto


def preview_proto(changes: dict[str, Any]) -> identity_pb2.PreviewRulesResponse:
    """A re-resolution's report (``preview.PreviewResult.to_dict``) as PreviewRules gives it."""

    def pairs(samples: list[list[list[str]]]) -> list[identity_pb2.RecordPair]:
        return [
            identity_pb2.RecordPair(
                first=common_pb2.RecordRef(source=a[0], message_id=a[1]),
                second=common_pb2.RecordRef(source=b[0], message_id=b[1]),
            )
            for a, b in samples
        ]

    return identity_pb2.PreviewRulesResponse(
        would_merge_count=changes.get("would_merge_count", 0),
        would_split_count=changes.get("would_split_count", 0),
        sample_merges=pairs(changes.get("sample_merges", [])),
        sample_splits=pairs(changes.get("sample_splits", [])),
        records_evaluated=changes.get("records", 0),
        customers_before=changes.get("customers_before", 0),
        customers_after=changes.get("customers_after", 0),
        identifier_change_count=changes.get("identifier_change_count", 0),
        sample_identifier_changes=[
            identity_pb2.IdentifierChange(
                identifier=identifier_proto(IdentifierKey(c["type"], c["value"], c["namespace"])),
                current_customer_id=c["current_customer_id"],
                change=c["change"],
                proposed_customer_id=c["proposed_customer_id"],
                reason=c["reason"],
            )
            for c in changes.get("sample_identifier_changes", [])
        ],
    )


def import_result_proto(result: ImportResult) -> identity_pb2.ImportRecordResult:
    return identity_pb2.ImportRecordResult(
        sequence=result.sequence,
        record_ref=ref_proto(result.ref),
        customer_id=result.customer_id,
        outcome=_OUTCOME[result.outcome],
        normalized_identifiers=[identifier_proto(k) for k in result.identifiers],
        rule=result.rule,
    )


class IdentityServicer(DeadLetterRpcs, identity_pb2_grpc.IdentityServiceServicer):
    def __init__(
        self, service: IdentityService, bulk: BulkJobs, metrics: IdentityMetrics | None = None
    ) -> None:
        self.service = service
        self.bulk = bulk
        self.metrics = metrics

    # -- bulk import and re-resolution (docs/bulk-import.md) --------------------------------

    async def StageImportRecords(
        self,
        request_iterator: AsyncIterator[identity_pb2.StageImportRecordsRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[identity_pb2.StageImportRecordsResponse]:
        import_id = ""
        async for request in request_iterator:
            if request.import_id and import_id and request.import_id != import_id:
                raise InvalidArgument([FieldViolation("import_id", "one stream stages one import")])
            import_id = import_id or request.import_id
            if not import_id:
                raise InvalidArgument(
                    [FieldViolation("import_id", "required in the stream's first message")]
                )
            raws = []
            refused: list[identity_pb2.RefusedImportRecord] = []
            for index, record in enumerate(request.records):
                try:
                    raws.append((index, raw_record(record)))
                except InvalidArgument as invalid:
                    refused.append(_refused(index, record.record_ref, invalid))
            outcome = await self.bulk.stage(
                import_id, [raw for _, raw in raws], dt.datetime.now(dt.UTC)
            )
            refused += [
                _refused(raws[r.index][0], request.records[raws[r.index][0]].record_ref, r.error)
                for r in outcome.refused
            ]
            yield identity_pb2.StageImportRecordsResponse(
                staged_count=outcome.staged,
                duplicate_count=outcome.duplicates,
                refused=sorted(refused, key=lambda r: r.index),
                import_staged_count=outcome.import_staged,
            )

    async def CommitImport(
        self, request: identity_pb2.CommitImportRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.ResolutionJob:
        return job_proto(await self.bulk.commit(request.import_id))

    async def GetResolutionJob(
        self, request: identity_pb2.GetResolutionJobRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.ResolutionJob:
        return job_proto(await self.bulk.get(request.job_id))

    async def ListImportResults(
        self, request: identity_pb2.ListImportResultsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[identity_pb2.ImportRecordResult]:
        async for result in self.bulk.results(request.import_id, request.after_sequence):
            yield import_result_proto(result)

    async def ListImportResultPages(
        self, request: identity_pb2.ListImportResultsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[identity_pb2.ImportResultPage]:
        page: list[identity_pb2.ImportRecordResult] = []
        async for result in self.bulk.results(request.import_id, request.after_sequence):
            page.append(import_result_proto(result))
            if len(page) >= jobs.RESULTS_PER_PAGE:
                yield identity_pb2.ImportResultPage(results=page)
                page = []
        if page:
            yield identity_pb2.ImportResultPage(results=page)

    async def ReresolveAll(
        self, request: identity_pb2.ReresolveAllRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.ResolutionJob:
        job = await self.bulk.reresolve(
            request.job_id, request.dry_run, request.actor, request.reason
        )
        return job_proto(job)

    async def Resolve(
        self, request: identity_pb2.ResolveRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.ResolveResponse:
        record = build_record(raw_record(request), dt.datetime.now(dt.UTC))
        placement = await self.service.resolve(record)
        if self.metrics is not None:
            self.metrics.placed([placement])
        return resolve_response(placement)

    async def ResolveBatch(
        self,
        request_iterator: AsyncIterator[identity_pb2.ResolveRequest],
        context: grpc.aio.ServicerContext,
    ) -> identity_pb2.ResolveBatchResponse:
        # Everything is validated before anything is written: a bad record refuses the batch.
        now = dt.datetime.now(dt.UTC)
        records = []
        violations: list[FieldViolation] = []
        index = 0
        async for request in request_iterator:
            if index >= MAX_BATCH:
                raise InvalidArgument(
                    [FieldViolation("requests", f"at most {MAX_BATCH} records per stream")]
                )
            try:
                records.append(build_record(raw_record(request), now))
            except InvalidArgument as invalid:
                violations.extend(
                    FieldViolation(f"requests[{index}].{v.field}", v.description)
                    for v in invalid.violations
                )
            index += 1
        if violations:
            raise InvalidArgument(violations)
        placements = await self.service.resolve_batch(records)
        if self.metrics is not None:
            self.metrics.placed(placements)
        return identity_pb2.ResolveBatchResponse(results=[resolve_response(p) for p in placements])

    async def EraseCustomer(
        self, request: identity_pb2.EraseCustomerRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.EraseCustomerResponse:
        erased = await self.service.erase(
            request.customer_id, acting_as(request.actor), request.reason
        )
        return identity_pb2.EraseCustomerResponse(
            erased_records=[ref_proto(r) for r in erased.refs],
            erased_identifier_count=erased.identifier_count,
            erased_customer_ids=erased.customer_ids,
        )

    async def LookupCustomer(
        self, request: identity_pb2.LookupCustomerRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.Customer:
        if request.WhichOneof("key") == "identifier":
            view = await self.service.lookup_by_identifier(identifier_triple(request.identifier))
        else:
            view = await self.service.lookup_by_id(request.customer_id)
        return customer_proto(view)

    async def BatchLookupCustomers(
        self, request: identity_pb2.BatchLookupCustomersRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.BatchLookupCustomersResponse:
        if not 1 <= len(request.identifiers) <= MAX_LOOKUPS:
            raise InvalidArgument(
                [FieldViolation("identifiers", f"1 to {MAX_LOOKUPS} identifiers per call")]
            )
        names = _TYPE_NAMES
        found = await self.service.lookup_many(
            [(names.get(i.type, ""), i.value, i.namespace) for i in request.identifiers]
        )
        return lookup_response(found)

    async def GetRecordCustomer(
        self, request: identity_pb2.GetRecordCustomerRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.Customer:
        ref = request.record_ref
        if not ref.source or not ref.message_id:
            raise InvalidArgument(
                [FieldViolation("record_ref", "source and message_id are required")]
            )
        return customer_proto(await self.service.record_customer(ref_of(ref)))

    async def MergeCustomers(
        self, request: identity_pb2.MergeCustomersRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.MergeCustomersResponse:
        survivor, merged = await self.service.merge_customers(
            list(request.customer_ids), request.reason, acting_as(request.actor)
        )
        if self.metrics is not None:
            self.metrics.merged("manual", len(merged))
        return identity_pb2.MergeCustomersResponse(
            surviving_customer_id=survivor, merged_customer_ids=list(merged)
        )

    async def SplitCustomer(
        self, request: identity_pb2.SplitCustomerRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.SplitCustomerResponse:
        source, target, moved, redirected = await self.service.split_customer(
            request.customer_id,
            [ref_of(r) for r in request.record_refs],
            request.target_customer_id,
            request.reason,
            acting_as(request.actor),
        )
        if self.metrics is not None:
            self.metrics.split()
        return identity_pb2.SplitCustomerResponse(
            source_customer_id=source,
            target_customer_id=target,
            moved_identifiers=[identifier_proto(k) for k in moved],
            redirected_customer_ids=redirected,
        )

    async def Explain(
        self, request: identity_pb2.ExplainRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.ExplainResponse:
        subject = request.WhichOneof("subject")
        if subject is None:
            raise InvalidArgument([FieldViolation("subject", "records or customer_id required")])
        if subject == "records":
            pair = (ref_of(request.records.first), ref_of(request.records.second))
            same, customer, steps = await self.service.explain(pair, None)
        else:
            same, customer, steps = await self.service.explain(None, request.customer_id)
        return identity_pb2.ExplainResponse(
            same_customer=same,
            customer_id=customer,
            steps=[evidence_proto(s) for s in steps],
        )

    async def ListReviewItems(
        self, request: identity_pb2.ListReviewItemsRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.ListReviewItemsResponse:
        views, token = await self.service.list_review_items(
            request.page_size, request.page_token, request.include_decided, request.customer_id
        )
        items = []
        for view in views:
            row = view.row
            explanation = row.explanation or {}
            features = explanation.get("features", [])
            items.append(
                identity_pb2.ReviewItem(
                    review_item_id=str(row.review_item_id),
                    record_ref=common_pb2.RecordRef(source=row.source, message_id=row.message_id),
                    candidate_customer_id=str(row.candidate_customer_id),
                    score=row.score,
                    feature_weights={f["feature"]: f["weight"] for f in features},
                    feature_levels={f["feature"]: f["level"] for f in features},
                    vetoes=list(explanation.get("vetoes", [])),
                    create_time=datetime_to_timestamp(row.created_at),
                    record_customer_id=str(row.record_customer_id),
                    state=row.state,
                    probability=row.probability,
                    record_side=side_proto(view.record_side),
                    candidate_side=side_proto(view.candidate_side),
                    field_comparison=view.fields,
                )
            )
        return identity_pb2.ListReviewItemsResponse(items=items, next_page_token=token)

    async def DecideReviewItem(
        self, request: identity_pb2.DecideReviewItemRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.DecideReviewItemResponse:
        customer = await self.service.decide_review_item(
            request.review_item_id, request.accept, acting_as(request.actor), request.reason
        )
        if self.metrics is not None and request.accept:
            self.metrics.merged("review", 1)
        return identity_pb2.DecideReviewItemResponse(customer_id=customer)

    async def GetRules(
        self, request: identity_pb2.GetRulesRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.Rules:
        return rules_proto(await self.service.get_rules())

    async def UpdateRules(
        self, request: identity_pb2.UpdateRulesRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.Rules:
        if not request.HasField("rules"):
            raise InvalidArgument([FieldViolation("rules", "required")])
        rules = await self.service.update_rules(
            rules_body(request.rules), request.expected_version, acting_as(request.actor)
        )
        return rules_proto(rules)

    async def PreviewRules(
        self, request: identity_pb2.PreviewRulesRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.PreviewRulesResponse:
        if not request.HasField("rules"):
            raise InvalidArgument([FieldViolation("rules", "required")])
        if self.bulk.runner is not None:
            return preview_proto(await self.bulk.preview(rules_body(request.rules)))
        # No batch worker (a service started without one): in this process, within
        # ``MAX_PREVIEW_RECORDS``.
        result = await self.service.preview_rules(rules_body(request.rules))

        def pairs(samples: list[tuple[RecordRef, RecordRef]]) -> list[identity_pb2.RecordPair]:
            return [
                identity_pb2.RecordPair(first=ref_proto(a), second=ref_proto(b)) for a, b in samples
            ]

        return identity_pb2.PreviewRulesResponse(
            would_merge_count=result.would_merge_count,
            would_split_count=result.would_split_count,
            sample_merges=pairs(result.sample_merges),
            sample_splits=pairs(result.sample_splits),
            records_evaluated=result.records,
            customers_before=result.customers_before,
            customers_after=result.customers_after,
            identifier_change_count=len(result.identifier_changes),
            sample_identifier_changes=[
                identity_pb2.IdentifierChange(
                    identifier=identifier_proto(c.key),
                    current_customer_id=c.current_customer_id,
                    change=c.change,
                    proposed_customer_id=c.proposed_customer_id,
                    reason=c.reason,
                )
                for c in result.identifier_changes[:MAX_SAMPLES]
            ],
        )

    async def ListLedgerEntries(
        self, request: identity_pb2.ListLedgerEntriesRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.ListLedgerEntriesResponse:
        rows, token = await self.service.ledger(
            request.customer_id, list(request.kinds), request.page_size, request.page_token
        )
        return identity_pb2.ListLedgerEntriesResponse(
            entries=[
                identity_pb2.LedgerEntry(
                    entry_id=int(r.entry_id),
                    time=datetime_to_timestamp(r.at),
                    kind=r.kind,
                    customer_id=str(r.customer_id),
                    other_customer_id=str(r.other_customer_id or ""),
                    record_ref=common_pb2.RecordRef(
                        source=r.source or "", message_id=r.message_id or ""
                    ),
                    actor=r.actor,
                    reason=r.reason,
                    detail_json=json.dumps(r.detail or {}, ensure_ascii=False, sort_keys=True),
                )
                for r in rows
            ],
            next_page_token=token,
        )

    async def ListBlockedIdentifiers(
        self,
        request: identity_pb2.ListBlockedIdentifiersRequest,
        context: grpc.aio.ServicerContext,
    ) -> identity_pb2.ListBlockedIdentifiersResponse:
        items = []
        if not request.page_token:
            # Values blocked by the rules come first, then what the service blocked itself.
            items = [
                identity_pb2.BlockedIdentifier(identifier=identifier_proto(key), reason=reason)
                for key, reason in await self.service.configured_blocked()
            ]
        rows, token = await self.service.list_blocked(request.page_size, request.page_token)
        items += [
            identity_pb2.BlockedIdentifier(
                identifier=identifier_proto(IdentifierKey(r.id_type, r.value, r.namespace)),
                reason=r.reason,
                people_count=r.people_count,
                block_time=datetime_to_timestamp(r.blocked_at),
            )
            for r in rows
        ]
        return identity_pb2.ListBlockedIdentifiersResponse(identifiers=items, next_page_token=token)

    async def ExportRecordMapping(
        self, request: identity_pb2.ExportRecordMappingRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[identity_pb2.RecordMapping]:
        async for row in self.service.export_mapping():
            yield identity_pb2.RecordMapping(
                record_ref=common_pb2.RecordRef(source=row.source, message_id=row.message_id),
                customer_id=str(row.customer_id),
                resolve_time=datetime_to_timestamp(row.resolved_at),
                rule=row.rule,
            )

    async def GetMatchModel(
        self, request: identity_pb2.GetMatchModelRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.MatchModel:
        info = await self.service.get_model()
        model = model_proto(info)
        model.reresolution_job_id = await self.bulk.automatic_reresolution(info)
        return model

    async def RefitMatchModel(
        self, request: identity_pb2.RefitMatchModelRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.MatchModel:
        info = await self.service.refit_model(
            request.max_pairs, request.dry_run, acting_as(request.actor), request.model_json
        )
        return model_proto(info)
