"""Thin gRPC adapter of the segmentation service."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import code_pb2, status_pb2
from opentelemetry import trace

from svod.segmentation.v1 import segmentation_pb2 as pb
from svod.segmentation.v1 import segmentation_pb2_grpc
from svod_runtime.auth import acting_as, current_principal
from svod_runtime.db import database_refusal
from svod_runtime.dead_letters import DeadLetterRpcs
from svod_runtime.errors import FieldViolation, InvalidArgument, SvodError
from svod_runtime.interceptors import status_proto_for
from svod_runtime.priority import sliced
from svod_runtime.protoconv import timestamp_to_datetime
from svod_runtime.telemetry import item_span
from svod_segmentation.domain.access import UNRESTRICTED, Scope
from svod_segmentation.domain.model import ProfileChange
from svod_segmentation.entrypoints.activation_convert import (
    binding_from_proto,
    binding_to_proto,
    delivery_state_from_proto,
    delivery_to_proto,
    destination_from_proto,
    destination_to_proto,
    report_to_proto,
    responsiveness_to_proto,
    sync_to_proto,
)
from svod_segmentation.entrypoints.convert import (
    change_from_proto,
    event_to_proto,
    member_to_proto,
    rule_from_proto,
    segment_from_proto,
    segment_to_proto,
)
from svod_segmentation.entrypoints.metrics import SegmentationMetrics
from svod_segmentation.service_layer.activation import ActivationService
from svod_segmentation.service_layer.campaigns import CampaignService
from svod_segmentation.service_layer.use_cases import SegmentationService, encode_position

log = logging.getLogger(__name__)

MAX_CHANGES_PER_CALL = 1000


def changed_at(request: pb.ApplyProfileChangeRequest) -> Timestamp:
    """The profile's update time a change carries (a metrics change carries it on its own)."""
    if request.HasField("profile"):
        return request.profile.update_time
    return request.profile_update_time


class AccessPolicy:
    """The segments the calling principal may use (its ``segments`` in the key file)."""

    def scope(self, context: grpc.aio.ServicerContext) -> Scope:
        principal = current_principal()
        if principal.segments is None:
            return UNRESTRICTED
        return Scope(principal.name, principal.segments)


class SegmentationServicer(DeadLetterRpcs, segmentation_pb2_grpc.SegmentationServiceServicer):
    def __init__(
        self,
        service: SegmentationService,
        access: AccessPolicy | None = None,
        tracer: trace.Tracer | None = None,
        activation: ActivationService | None = None,
        campaigns: CampaignService | None = None,
        currency: str = "RUB",
        metrics: SegmentationMetrics | None = None,
    ) -> None:
        self.service = service
        self.access = access or AccessPolicy()
        self.tracer = tracer or trace.get_tracer(__name__)
        self.activation = activation
        self.campaigns = campaigns
        self.currency = currency
        self.metrics = metrics

    async def CreateSegment(
        self, request: pb.CreateSegmentRequest, context: grpc.aio.ServicerContext
    ) -> pb.Segment:
        self.access.scope(context).require(request.segment.segment_id)
        segment = await self.service.create_segment(
            segment_from_proto(request.segment), acting_as("")
        )
        return segment_to_proto(segment)

    async def UpdateSegment(
        self, request: pb.UpdateSegmentRequest, context: grpc.aio.ServicerContext
    ) -> pb.Segment:
        self.access.scope(context).require(request.segment.segment_id)
        segment = await self.service.update_segment(
            segment_from_proto(request.segment), request.expected_version, acting_as("")
        )
        return segment_to_proto(segment)

    async def GetSegment(
        self, request: pb.GetSegmentRequest, context: grpc.aio.ServicerContext
    ) -> pb.Segment:
        segment = await self.service.get_segment(request.segment_id, self.access.scope(context))
        return segment_to_proto(segment)

    async def ListSegments(
        self, request: pb.ListSegmentsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListSegmentsResponse:
        segments, token = await self.service.list_segments(
            request.page_token, request.page_size, self.access.scope(context)
        )
        return pb.ListSegmentsResponse(
            segments=[segment_to_proto(s) for s in segments], next_page_token=token
        )

    async def DeleteSegment(
        self, request: pb.DeleteSegmentRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteSegmentResponse:
        await self.service.delete_segment(
            request.segment_id, self.access.scope(context), acting_as("")
        )
        return pb.DeleteSegmentResponse()

    async def PreviewSegment(
        self, request: pb.PreviewSegmentRequest, context: grpc.aio.ServicerContext
    ) -> pb.PreviewSegmentResponse:
        rule = rule_from_proto(request.rule) if request.HasField("rule") else None
        count, sample = await self.service.preview(
            rule, request.sample_size, self.access.scope(context)
        )
        return pb.PreviewSegmentResponse(count=count, sample_customer_ids=sample)

    async def ListMembers(
        self, request: pb.ListMembersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListMembersResponse:
        members, token = await self.service.list_members(
            request.segment_id, request.page_token, request.page_size, self.access.scope(context)
        )
        return pb.ListMembersResponse(
            members=[member_to_proto(m) for m in members], next_page_token=token
        )

    async def ExportMembers(
        self, request: pb.ExportMembersRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.Member]:
        async for member in self.service.export_members(
            request.segment_id, request.consent_channel, self.access.scope(context)
        ):
            yield member_to_proto(member)

    async def WatchMemberships(
        self, request: pb.WatchMembershipsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.MembershipEvent]:
        async for event in self.service.watch(
            list(request.segment_ids), request.resume_token, self.access.scope(context)
        ):
            yield event_to_proto(event, encode_position(event.position))

    async def GetCustomerSegments(
        self, request: pb.GetCustomerSegmentsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetCustomerSegmentsResponse:
        members = await self.service.customer_segments(
            request.customer_id, self.access.scope(context)
        )
        return pb.GetCustomerSegmentsResponse(
            memberships=[member_to_proto(m) for m in members],
            segment_ids=[m.segment_id for m in members],
        )

    async def ApplyProfileChange(
        self, request: pb.ApplyProfileChangeRequest, context: grpc.aio.ServicerContext
    ) -> pb.ApplyProfileChangeResponse:
        outcome = await self.service.apply_change(change_from_proto(request))
        if self.metrics is not None:
            self.metrics.change_applied(changed_at(request))
        return pb.ApplyProfileChangeResponse(
            profile_applied=outcome.profile_applied,
            entered_segment_ids=outcome.entered,
            exited_segment_ids=outcome.exited,
        )

    async def ApplyProfileChanges(
        self, request: pb.ApplyProfileChangesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ApplyProfileChangesResponse:
        if not 1 <= len(request.changes) <= MAX_CHANGES_PER_CALL:
            raise InvalidArgument(
                [FieldViolation("changes", f"1 to {MAX_CHANGES_PER_CALL} changes per call")]
            )
        # Each change in its own span, in the trace of the profile write that produced it; the
        # changes go to the service together, in request order (one customer's keep it).
        spans: list[trace.Span] = []
        results: list[pb.ProfileChangeResult] = []
        changes: list[ProfileChange] = []
        positions: list[int] = []
        try:
            # Converting a call's changes is a stretch of Python (up to 42 ms for 500 under
            # an import: docs/performance.md, "Long stretches"): other calls get their turns.
            async for index, item in sliced(enumerate(request.changes)):
                spans.append(
                    item_span(
                        self.tracer,
                        "segmentation apply profile change",
                        item.trace_context,
                        kind=trace.SpanKind.CONSUMER,
                    )
                )
                results.append(pb.ProfileChangeResult(customer_id=item.customer_id))
                try:
                    changes.append(change_from_proto(item))
                except Exception as error:  # noqa: BLE001 - this change's own refusal
                    self._refused(index, results[index], error)
                else:
                    positions.append(index)
            outcomes = await self.service.apply_changes(changes) if changes else []
            for index, outcome in zip(positions, outcomes, strict=True):
                result = results[index]
                if isinstance(outcome, Exception):
                    self._refused(index, result, outcome)
                    continue
                if self.metrics is not None:
                    self.metrics.change_applied(changed_at(request.changes[index]))
                result.profile_applied = outcome.profile_applied
                result.entered_segment_ids.extend(outcome.entered)
                result.exited_segment_ids.extend(outcome.exited)
        finally:  # a call cancelled meanwhile ends its changes' spans too
            for span, result in zip(spans, results, strict=True):
                if result.HasField("error"):
                    span.set_status(trace.StatusCode.ERROR, result.error.message)
                span.end()
        return pb.ApplyProfileChangesResponse(results=results)

    @staticmethod
    def _refused(index: int, result: pb.ProfileChangeResult, error: Exception) -> None:
        """A change of a batch refused alone: its error in its result."""
        if isinstance(error, InvalidArgument):
            prefixed = InvalidArgument(
                FieldViolation(f"changes[{index}].{v.field}", v.description)
                for v in error.violations
            )
            result.error.CopyFrom(status_proto_for(prefixed))
        elif isinstance(error, SvodError):
            result.error.CopyFrom(status_proto_for(error))
        else:
            refusal = database_refusal(error)
            if refusal is not None:  # a value PostgreSQL cannot store, or the database down
                result.error.CopyFrom(status_proto_for(refusal))
            else:
                log.error("profile change %d of a batch failed", index, exc_info=error)
                result.error.CopyFrom(
                    status_pb2.Status(code=code_pb2.INTERNAL, message="internal error")
                )

    async def EraseCustomer(
        self, request: pb.EraseCustomerRequest, context: grpc.aio.ServicerContext
    ) -> pb.EraseCustomerResponse:
        if not request.customer_id:
            raise InvalidArgument([FieldViolation("customer_id", "required")])
        count = await self.service.erase_customer(request.customer_id)
        return pb.EraseCustomerResponse(erased_membership_count=count)

    async def RecomputeSegments(
        self, request: pb.RecomputeSegmentsRequest, context: grpc.aio.ServicerContext
    ) -> pb.RecomputeSegmentsResponse:
        scope = self.access.scope(context)
        if scope.segments is not None:
            for segment_id in request.segment_ids or ["*"]:
                scope.require(segment_id)
        outcome = await self.service.recompute(list(request.segment_ids))
        return pb.RecomputeSegmentsResponse(
            entered_count=outcome.entered,
            exited_count=outcome.exited,
            duration_seconds=outcome.seconds,
        )

    # -- activation ------------------------------------------------------------------------
    def _activation(self) -> ActivationService:
        assert self.activation is not None
        return self.activation

    async def CreateDestination(
        self, request: pb.CreateDestinationRequest, context: grpc.aio.ServicerContext
    ) -> pb.Destination:
        saved, secret = await self._activation().create_destination(
            destination_from_proto(request.destination)
        )
        return destination_to_proto(saved, secret)

    async def GetDestination(
        self, request: pb.GetDestinationRequest, context: grpc.aio.ServicerContext
    ) -> pb.Destination:
        return destination_to_proto(
            await self._activation().get_destination(request.destination_id)
        )

    async def ListDestinations(
        self, request: pb.ListDestinationsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListDestinationsResponse:
        found, token = await self._activation().list_destinations(
            request.page_token, request.page_size
        )
        return pb.ListDestinationsResponse(
            destinations=[destination_to_proto(d) for d in found], next_page_token=token
        )

    async def DeleteDestination(
        self, request: pb.DeleteDestinationRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteDestinationResponse:
        await self._activation().delete_destination(request.destination_id)
        return pb.DeleteDestinationResponse()

    async def CreateBinding(
        self, request: pb.CreateBindingRequest, context: grpc.aio.ServicerContext
    ) -> pb.Binding:
        saved = await self._activation().create_binding(
            binding_from_proto(request.binding), self.access.scope(context)
        )
        return binding_to_proto(saved)

    async def ListBindings(
        self, request: pb.ListBindingsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListBindingsResponse:
        found = await self._activation().list_bindings(
            request.segment_id, request.destination_id, self.access.scope(context)
        )
        return pb.ListBindingsResponse(bindings=[binding_to_proto(b) for b in found])

    async def DeleteBinding(
        self, request: pb.DeleteBindingRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteBindingResponse:
        await self._activation().delete_binding(request.binding_id, self.access.scope(context))
        return pb.DeleteBindingResponse()

    async def StartSync(
        self, request: pb.StartSyncRequest, context: grpc.aio.ServicerContext
    ) -> pb.Sync:
        if not request.binding_id:
            raise InvalidArgument([FieldViolation("binding_id", "required")])
        return sync_to_proto(
            await self._activation().start_sync(request.binding_id, self.access.scope(context))
        )

    async def GetSync(
        self, request: pb.GetSyncRequest, context: grpc.aio.ServicerContext
    ) -> pb.Sync:
        if not request.sync_id:
            raise InvalidArgument([FieldViolation("sync_id", "required")])
        return sync_to_proto(
            await self._activation().get_sync(request.sync_id, self.access.scope(context))
        )

    async def ListDeliveries(
        self, request: pb.ListDeliveriesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListDeliveriesResponse:
        found, token, dead = await self._activation().list_deliveries(
            request.destination_id,
            delivery_state_from_proto(request.state),
            request.page_size,
            request.page_token,
        )
        return pb.ListDeliveriesResponse(
            deliveries=[delivery_to_proto(d) for d in found],
            next_page_token=token,
            dead_letter_count=dead,
        )

    async def RedriveDeliveries(
        self, request: pb.RedriveDeliveriesRequest, context: grpc.aio.ServicerContext
    ) -> pb.RedriveDeliveriesResponse:
        count = await self._activation().redrive(request.destination_id, list(request.delivery_ids))
        return pb.RedriveDeliveriesResponse(redriven_count=count)

    # -- campaigns ---------------------------------------------------------------------------
    async def GetCampaignReport(
        self, request: pb.GetCampaignReportRequest, context: grpc.aio.ServicerContext
    ) -> pb.CampaignReport:
        assert self.campaigns is not None
        start, end, window, report = await self.campaigns.report(
            timestamp_to_datetime(request.start_time) if request.HasField("start_time") else None,
            timestamp_to_datetime(request.end_time) if request.HasField("end_time") else None,
            request.window_days,
            list(request.touch_types),
            list(request.campaign_ids),
        )
        return report_to_proto(start, end, window, report, self.currency)

    async def GetResponsiveness(
        self, request: pb.GetResponsivenessRequest, context: grpc.aio.ServicerContext
    ) -> pb.Responsiveness:
        assert self.campaigns is not None
        if not request.customer_id:
            raise InvalidArgument([FieldViolation("customer_id", "required")])
        customer_id, stats, preferred = await self.campaigns.responsiveness(request.customer_id)
        return responsiveness_to_proto(customer_id, stats, preferred, self.campaigns.clock())
