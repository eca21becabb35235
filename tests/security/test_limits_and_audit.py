"""Rate limits and stream caps per principal; the audit log names the authenticated principal."""

from __future__ import annotations

import logging
import time

import grpc
from google.rpc import error_details_pb2, status_pb2

from svod.common.v1 import common_pb2
from svod.identity.v1 import identity_pb2, identity_pb2_grpc
from svod.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from svod.profile.v1 import profile_pb2, profile_pb2_grpc
from svod.quality.v1 import quality_pb2, quality_pb2_grpc
from svod.segmentation.v1 import segmentation_pb2 as pb
from svod.segmentation.v1 import segmentation_pb2_grpc
from tests.builders import PHONE, identify, random_phone, unique
from tests.security.conftest import bearer
from tests.waiting import wait_until


def _retry_info(error: grpc.RpcError) -> error_details_pb2.RetryInfo | None:
    for key, value in error.trailing_metadata() or ():  # type: ignore[attr-defined]
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                info = error_details_pb2.RetryInfo()
                if detail.Unpack(info):
                    return info
    return None


def test_a_principal_over_its_rate_is_told_when_to_retry(secured) -> None:
    with secured.channel("quality") as channel:
        stub = quality_pb2_grpc.QualityServiceStub(channel)
        refused = None
        for _ in range(10):
            try:
                stub.GetViolationStats(
                    quality_pb2.GetViolationStatsRequest(), timeout=5, metadata=bearer("tiny")
                )
            except grpc.RpcError as error:
                refused = error
                break
        assert refused is not None and refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        info = _retry_info(refused)
        assert info is not None and info.retry_delay.ToMilliseconds() > 0
        # Another principal is not held back by tiny's bucket.
        stub.GetViolationStats(
            quality_pb2.GetViolationStatsRequest(), timeout=5, metadata=bearer("admin")
        )


def test_concurrent_streams_are_capped_per_principal(secured) -> None:
    with secured.channel("segmentation") as channel:
        stub = segmentation_pb2_grpc.SegmentationServiceStub(channel)
        first = stub.WatchMemberships(
            pb.WatchMembershipsRequest(), timeout=30, metadata=bearer("one-stream")
        )
        time.sleep(0.5)  # the first watch is open on the server
        second = stub.WatchMemberships(
            pb.WatchMembershipsRequest(), timeout=30, metadata=bearer("one-stream")
        )
        try:
            next(second)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "at most 1" in (error.details() or "")
        else:
            raise AssertionError("a second stream was let through")
        assert first.is_active()
        first.cancel()
        # Its slot comes back when the stream ends.
        time.sleep(0.5)
        third = stub.WatchMemberships(
            pb.WatchMembershipsRequest(), timeout=1, metadata=bearer("one-stream")
        )
        try:
            next(third)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        third.cancel()


def test_the_audit_log_names_the_principal_of_changes_and_reads(secured, caplog) -> None:
    caplog.set_level(logging.INFO, logger="svod.audit")
    segment_id = unique("audit")
    with secured.channel("segmentation") as channel:
        segmentation_pb2_grpc.SegmentationServiceStub(channel).CreateSegment(
            pb.CreateSegmentRequest(
                segment=pb.Segment(
                    segment_id=segment_id,
                    rule=pb.RuleNode(
                        field=pb.FieldCondition(field="first_name", operator="eq", values=["x"])
                    ),
                )
            ),
            timeout=10,
            metadata=bearer("with-segment:admin"),
        )
    phone = random_phone()
    request = identify("pos-msk-01", phones=(phone,), first_name="Аудит")
    with secured.channel("ingestion") as channel:
        ingestion_pb2_grpc.IngestionServiceStub(channel).Identify(
            request, timeout=5, metadata=bearer("with-ingest:write")
        )
    with secured.channel("profile") as channel:
        stub = profile_pb2_grpc.ProfileServiceStub(channel)

        def found() -> bool:
            try:
                stub.GetProfile(
                    profile_pb2.GetProfileRequest(
                        identifier=common_pb2.Identifier(type=PHONE, value=phone)
                    ),
                    timeout=5,
                    metadata=bearer("with-profile:read"),
                )
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.NOT_FOUND
                return False
            return True

        wait_until(found, 15, "the profile found by its phone", 0.1)
    lines = [r for r in caplog.records if r.name == "svod.audit"]
    changes = [
        r
        for r in lines
        if r.audit == "change" and r.rpc.endswith("/CreateSegment") and r.code == "OK"
    ]
    assert [r.principal for r in changes] == ["with-segment:admin"]
    reads = [
        r for r in lines if r.audit == "read" and r.rpc.endswith("/GetProfile") and r.code == "OK"
    ]
    assert reads and {r.principal for r in reads} == {"with-profile:read"}
    assert all(r.customers == 1 for r in reads)
    # Profile's own look-up of the phone at identity is audited under profile's principal.
    lookups = [r for r in lines if r.rpc.endswith("/LookupCustomer") and r.code == "OK"]
    assert lookups and {r.principal for r in lookups} == {"svod-profile"}
    # No audit line carries the phone or the name.
    for record in lines:
        text = repr(record.__dict__)
        assert phone.replace(" ", "")[-7:] not in text and "Аудит" not in text


def _customer(secured, phone: str) -> str:
    request = identify("pos-msk-01", phones=(phone,))
    key = bearer("with-ingest:write")
    with secured.channel("ingestion") as channel:
        stub = ingestion_pb2_grpc.IngestionServiceStub(channel)
        stub.Identify(request, timeout=5, metadata=key)
        return wait_until(
            lambda: stub.GetRecordStatus(
                ingestion_pb2.GetRecordStatusRequest(record_ref=request.record_ref),
                timeout=5,
                metadata=key,
            ),
            15,
            "the record resolved to a customer",
            until=lambda s: s.customer_id,
        ).customer_id


def test_the_actor_of_a_change_is_the_authenticated_principal(secured) -> None:
    """A client-sent actor only adds a name beside the principal; alone it is never trusted."""
    first, second = _customer(secured, random_phone()), _customer(secured, random_phone())
    admin = bearer("with-identity:admin")
    with secured.channel("identity") as channel:
        identity = identity_pb2_grpc.IdentityServiceStub(channel)
        merged = identity.MergeCustomers(
            identity_pb2.MergeCustomersRequest(
                customer_ids=[first, second], reason="same person", actor="Анна"
            ),
            timeout=10,
            metadata=admin,
        )
        why = identity.Explain(
            identity_pb2.ExplainRequest(customer_id=merged.surviving_customer_id),
            timeout=10,
            metadata=bearer("admin"),
        )
        assert "with-identity:admin (Анна)" in {step.actor for step in why.steps}
        rules = identity.GetRules(
            identity_pb2.GetRulesRequest(), timeout=5, metadata=bearer("admin")
        )
        updated = identity.UpdateRules(
            identity_pb2.UpdateRulesRequest(
                rules=rules, expected_version=rules.version, actor="someone-else"
            ),
            timeout=10,
            metadata=admin,
        )
        assert updated.updated_by == "with-identity:admin (someone-else)"
    rule_id = unique("who")
    with secured.channel("quality") as channel:
        stub = quality_pb2_grpc.QualityServiceStub(channel)
        stub.CreateValidationRule(
            quality_pb2.CreateValidationRuleRequest(
                rule=quality_pb2.ValidationRule(
                    rule_id=rule_id, field="first_name", action="flag", check="name_plausible"
                )
            ),
            timeout=5,
            metadata=bearer("with-quality:admin"),
        )
        stub.DeleteValidationRule(
            quality_pb2.DeleteValidationRuleRequest(rule_id=rule_id),
            timeout=5,
            metadata=bearer("admin"),
        )
    segment_id = unique("who")
    with secured.channel("segmentation") as channel:
        stub = segmentation_pb2_grpc.SegmentationServiceStub(channel)
        stub.CreateSegment(
            pb.CreateSegmentRequest(
                segment=pb.Segment(
                    segment_id=segment_id,
                    rule=pb.RuleNode(
                        field=pb.FieldCondition(field="first_name", operator="eq", values=["x"])
                    ),
                )
            ),
            timeout=10,
            metadata=bearer("with-segment:admin"),
        )
        stub.DeleteSegment(
            pb.DeleteSegmentRequest(segment_id=segment_id), timeout=10, metadata=bearer("admin")
        )
    with secured.connect() as conn:
        changes = conn.execute(
            "SELECT change, actor FROM quality.validation_rule_changes WHERE rule_id = %s "
            "ORDER BY change_pk",
            (rule_id,),
        ).fetchall()
        assert changes == [("created", "with-quality:admin"), ("deleted", "admin")]
        versions = conn.execute(
            "SELECT deleted, actor FROM segmentation.segment_versions WHERE segment_id = %s "
            "ORDER BY version",
            (segment_id,),
        ).fetchall()
        assert versions == [(False, "with-segment:admin"), (True, "admin")]
