"""A principal limited to segments sees only their members, wherever the API can reveal a
customer — or is refused. Table-driven: every RPC the access table marks as revealing
customers is refused; every RPC that shows only the principal's segments has a probe here."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest

from svod.common.v1 import common_pb2
from svod.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from svod.profile.v1 import profile_pb2, profile_pb2_grpc
from svod.segmentation.v1 import segmentation_pb2 as pb
from svod.segmentation.v1 import segmentation_pb2_grpc
from svod_runtime.access import RPC_ACCESS, SegmentRule
from tests.builders import PHONE, identify, random_phone, unique
from tests.security.conftest import bearer
from tests.security.rpcs import all_rpcs, call
from tests.waiting import wait_until

T = 10.0
MKT = bearer("marketing")  # limited to the segment "sec-vip"
ADMIN = bearer("admin")
VIP, OTHER = "sec-vip", "sec-other"


class World:
    """Two customers sharing a surname: the insider in sec-vip, the outsider in sec-other."""

    def __init__(self, secured) -> None:
        self.secured = secured
        self.surname = f"Скоупова{unique('')[1:7]}"
        self.channels = {s: secured.channel(s) for s in ("ingestion", "profile", "segmentation")}
        self.profile = profile_pb2_grpc.ProfileServiceStub(self.channels["profile"])
        self.segmentation = segmentation_pb2_grpc.SegmentationServiceStub(
            self.channels["segmentation"]
        )
        self.insider_phone, self.outsider_phone = random_phone(), random_phone()
        self.insider = self._customer(self.insider_phone, "vip")
        self.outsider = self._customer(self.outsider_phone, "other")
        for segment_id, tier in ((VIP, "vip"), (OTHER, "other")):
            rule = pb.RuleNode(
                field=pb.FieldCondition(field="attributes.tier", operator="eq", values=[tier])
            )
            try:
                self.segmentation.CreateSegment(
                    pb.CreateSegmentRequest(segment=pb.Segment(segment_id=segment_id, rule=rule)),
                    timeout=T,
                    metadata=ADMIN,
                )
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.ALREADY_EXISTS
        self._wait_member(VIP, self.insider)
        self._wait_member(OTHER, self.outsider)

    def _customer(self, phone: str, tier: str) -> str:
        request = identify("pos-msk-01", phones=(phone,), first_name="Ия", last_name=self.surname)
        request.record.attributes["tier"] = tier
        stub = ingestion_pb2_grpc.IngestionServiceStub(self.channels["ingestion"])
        key = bearer("with-ingest:write")
        stub.Identify(request, timeout=T, metadata=key)
        status = wait_until(
            lambda: stub.GetRecordStatus(
                ingestion_pb2.GetRecordStatusRequest(record_ref=request.record_ref),
                timeout=T,
                metadata=key,
            ),
            15,
            "the record processed",
            until=lambda s: s.state != ingestion_pb2.RecordStatus.STATE_PENDING,
        )
        assert status.customer_id, status
        return status.customer_id

    def _wait_member(self, segment_id: str, customer_id: str) -> None:
        def entered() -> bool:
            members = self.segmentation.ListMembers(
                pb.ListMembersRequest(segment_id=segment_id, page_size=1000),
                timeout=T,
                metadata=ADMIN,
            ).members
            return customer_id in {m.customer_id for m in members}

        wait_until(entered, 15, what=f"{customer_id} entering {segment_id}", interval_s=0.1)


@pytest.fixture(scope="module")
def world(secured) -> World:
    return World(secured)


def refused(call_: Callable[[], object], code=grpc.StatusCode.PERMISSION_DENIED) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        call_()
    assert caught.value.code() == code, caught.value


def not_found(call_: Callable[[], object]) -> None:
    refused(call_, grpc.StatusCode.NOT_FOUND)


# -- probes: each shows the outsider is not revealed to "marketing" (and the insider is) -----


def probe_get_profile(w: World) -> None:
    get = w.profile.GetProfile
    assert (
        get(
            profile_pb2.GetProfileRequest(customer_id=w.insider), timeout=T, metadata=MKT
        ).last_name.value
        == w.surname
    )
    not_found(
        lambda: get(profile_pb2.GetProfileRequest(customer_id=w.outsider), timeout=T, metadata=MKT)
    )
    by_phone = common_pb2.Identifier(type=PHONE, value=w.outsider_phone)
    not_found(
        lambda: get(profile_pb2.GetProfileRequest(identifier=by_phone), timeout=T, metadata=MKT)
    )


def probe_batch_get(w: World) -> None:
    reply = w.profile.BatchGetProfiles(
        profile_pb2.BatchGetProfilesRequest(customer_ids=[w.insider, w.outsider]),
        timeout=T,
        metadata=MKT,
    )
    assert [p.customer_id for p in reply.profiles] == [w.insider]
    assert list(reply.missing_customer_ids) == [w.outsider]


def probe_search(w: World) -> None:
    reply = w.profile.SearchProfiles(
        profile_pb2.SearchProfilesRequest(last_name=w.surname), timeout=T, metadata=MKT
    )
    assert [p.customer_id for p in reply.profiles] == [w.insider]
    everyone = w.profile.SearchProfiles(
        profile_pb2.SearchProfilesRequest(last_name=w.surname), timeout=T, metadata=ADMIN
    )
    assert {p.customer_id for p in everyone.profiles} == {w.insider, w.outsider}


def probe_timeline(w: World) -> None:
    w.profile.GetTimeline(
        profile_pb2.GetTimelineRequest(customer_id=w.insider), timeout=T, metadata=MKT
    )
    not_found(
        lambda: w.profile.GetTimeline(
            profile_pb2.GetTimelineRequest(customer_id=w.outsider), timeout=T, metadata=MKT
        )
    )


def probe_update_consent(w: World) -> None:
    consent = profile_pb2.Consent(
        channel=profile_pb2.CONSENT_CHANNEL_EMAIL,
        status=profile_pb2.CONSENT_STATUS_OPTED_OUT,
        source="crm",
    )
    not_found(
        lambda: w.profile.UpdateConsent(
            profile_pb2.UpdateConsentRequest(customer_id=w.outsider, consent=consent),
            timeout=T,
            metadata=MKT,
        )
    )


def probe_export(w: World) -> None:
    export = w.profile.ExportPersonalData(
        profile_pb2.ExportPersonalDataRequest(customer_id=w.insider), timeout=T, metadata=MKT
    )
    assert export.profile.customer_id == w.insider
    not_found(
        lambda: w.profile.ExportPersonalData(
            profile_pb2.ExportPersonalDataRequest(customer_id=w.outsider),
            timeout=T,
            metadata=MKT,
        )
    )


def _segment(segment_id: str) -> pb.Segment:
    rule = pb.RuleNode(field=pb.FieldCondition(field="first_name", operator="eq", values=["x"]))
    return pb.Segment(segment_id=segment_id, rule=rule)


def probe_segment_definitions(w: World) -> None:
    s = w.segmentation
    refused(
        lambda: s.CreateSegment(
            pb.CreateSegmentRequest(segment=_segment(unique("mine"))), timeout=T, metadata=MKT
        )
    )
    refused(
        lambda: s.UpdateSegment(
            pb.UpdateSegmentRequest(segment=_segment(OTHER)), timeout=T, metadata=MKT
        )
    )
    refused(
        lambda: s.DeleteSegment(pb.DeleteSegmentRequest(segment_id=OTHER), timeout=T, metadata=MKT)
    )
    refused(lambda: s.GetSegment(pb.GetSegmentRequest(segment_id=OTHER), timeout=T, metadata=MKT))
    listed = s.ListSegments(pb.ListSegmentsRequest(), timeout=T, metadata=MKT)
    assert {x.segment_id for x in listed.segments} == {VIP}
    refused(
        lambda: s.RecomputeSegments(
            pb.RecomputeSegmentsRequest(segment_ids=[OTHER]), timeout=T, metadata=MKT
        )
    )


def probe_preview(w: World) -> None:
    rule = pb.RuleNode(
        field=pb.FieldCondition(field="last_name", operator="eq", values=[w.surname])
    )
    mine = w.segmentation.PreviewSegment(
        pb.PreviewSegmentRequest(rule=rule, sample_size=10), timeout=T, metadata=MKT
    )
    assert mine.count == 1 and list(mine.sample_customer_ids) == [w.insider]
    everyone = w.segmentation.PreviewSegment(
        pb.PreviewSegmentRequest(rule=rule, sample_size=10), timeout=T, metadata=ADMIN
    )
    assert everyone.count == 2


def probe_members(w: World) -> None:
    s = w.segmentation
    members = s.ListMembers(pb.ListMembersRequest(segment_id=VIP), timeout=T, metadata=MKT)
    assert w.insider in {m.customer_id for m in members.members}
    refused(lambda: s.ListMembers(pb.ListMembersRequest(segment_id=OTHER), timeout=T, metadata=MKT))
    refused(
        lambda: list(
            s.ExportMembers(pb.ExportMembersRequest(segment_id=OTHER), timeout=T, metadata=MKT)
        )
    )
    refused(
        lambda: next(
            iter(
                s.WatchMemberships(
                    pb.WatchMembershipsRequest(segment_ids=[OTHER]), timeout=T, metadata=MKT
                )
            )
        )
    )
    # Watching everything it may see replays only its segments' events.
    watch = s.WatchMemberships(
        pb.WatchMembershipsRequest(resume_token="0.0"), timeout=3, metadata=MKT
    )
    seen = set()
    try:
        for event in watch:
            seen.add((event.segment_id, event.customer_id))
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert (VIP, w.insider) in seen and all(segment == VIP for segment, _ in seen)


def probe_customer_segments(w: World) -> None:
    s = w.segmentation
    mine = s.GetCustomerSegments(
        pb.GetCustomerSegmentsRequest(customer_id=w.insider), timeout=T, metadata=MKT
    )
    assert list(mine.segment_ids) == [VIP]
    theirs = s.GetCustomerSegments(
        pb.GetCustomerSegmentsRequest(customer_id=w.outsider), timeout=T, metadata=MKT
    )
    assert list(theirs.segment_ids) == [] and not theirs.memberships


def probe_activation(w: World) -> None:
    s = w.segmentation
    destination = s.CreateDestination(
        pb.CreateDestinationRequest(
            destination=pb.Destination(
                destination_id=unique("file").lower(),
                kind=pb.Destination.KIND_FILE,
                consent_channel="email",
                file=pb.FileSettings(format=pb.FileSettings.FORMAT_CSV),
            )
        ),
        timeout=T,
        metadata=ADMIN,
    )
    outside = pb.Binding(
        segment_id=OTHER, destination_id=destination.destination_id, mode=pb.Binding.MODE_FULL
    )
    refused(
        lambda: s.CreateBinding(pb.CreateBindingRequest(binding=outside), timeout=T, metadata=MKT)
    )
    binding = s.CreateBinding(pb.CreateBindingRequest(binding=outside), timeout=T, metadata=ADMIN)
    sync = s.StartSync(
        pb.StartSyncRequest(binding_id=binding.binding_id), timeout=T, metadata=ADMIN
    )
    listed = s.ListBindings(
        pb.ListBindingsRequest(destination_id=destination.destination_id), timeout=T, metadata=MKT
    )
    assert not listed.bindings
    refused(
        lambda: s.StartSync(
            pb.StartSyncRequest(binding_id=binding.binding_id), timeout=T, metadata=MKT
        )
    )
    refused(lambda: s.GetSync(pb.GetSyncRequest(sync_id=sync.sync_id), timeout=T, metadata=MKT))
    refused(
        lambda: s.DeleteBinding(
            pb.DeleteBindingRequest(binding_id=binding.binding_id), timeout=T, metadata=MKT
        )
    )


_S = "/svod.segmentation.v1.SegmentationService/"
_P = "/svod.profile.v1.ProfileService/"
PROBES: dict[str, Callable[[World], None]] = {
    _P + "GetProfile": probe_get_profile,
    _P + "BatchGetProfiles": probe_batch_get,
    _P + "SearchProfiles": probe_search,
    _P + "GetTimeline": probe_timeline,
    _P + "UpdateConsent": probe_update_consent,
    _P + "ExportPersonalData": probe_export,
    _S + "CreateSegment": probe_segment_definitions,
    _S + "UpdateSegment": probe_segment_definitions,
    _S + "DeleteSegment": probe_segment_definitions,
    _S + "GetSegment": probe_segment_definitions,
    _S + "ListSegments": probe_segment_definitions,
    _S + "RecomputeSegments": probe_segment_definitions,
    _S + "PreviewSegment": probe_preview,
    _S + "ListMembers": probe_members,
    _S + "ExportMembers": probe_members,
    _S + "WatchMemberships": probe_members,
    _S + "GetCustomerSegments": probe_customer_segments,
    _S + "CreateBinding": probe_activation,
    _S + "ListBindings": probe_activation,
    _S + "DeleteBinding": probe_activation,
    _S + "StartSync": probe_activation,
    _S + "GetSync": probe_activation,
}
SCOPED = sorted(p for p, a in RPC_ACCESS.items() if a.segments is SegmentRule.SERVICE)
REFUSING = [r for r in all_rpcs() if RPC_ACCESS[r.path].segments is SegmentRule.REFUSE]


def test_every_rpc_that_shows_segments_only_has_a_probe() -> None:
    missing = [p for p in SCOPED if p not in PROBES]
    assert not missing, f"add a probe to tests/security/test_segment_scope.py for {missing}"


@pytest.mark.parametrize("path", SCOPED)
def test_only_members_of_its_segments_are_shown(world, path) -> None:
    PROBES[path](world)


@pytest.mark.parametrize("rpc", REFUSING, ids=str)
def test_rpcs_that_could_show_anyone_are_refused(secured, rpc) -> None:
    with secured.channel(rpc.service) as channel:
        assert call(channel, rpc, MKT, timeout=15)[0] == grpc.StatusCode.PERMISSION_DENIED
