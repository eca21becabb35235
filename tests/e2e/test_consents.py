"""Consents as a marketer relies on them: an opt-out always takes the person out of the SMS
export, whatever opt-in came before it; consent times far ahead are refused at the door."""

from __future__ import annotations

import datetime as dt
import time

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from svod.common.v1 import common_pb2
from svod.profile.v1 import profile_pb2
from svod.segmentation.v1 import segmentation_pb2 as seg
from svod_runtime.protoconv import datetime_to_timestamp
from tests.builders import identify, random_phone, unique
from tests.waiting import wait_until

T = 10.0
SMS = profile_pb2.CONSENT_CHANNEL_SMS


def _field_violations(error: grpc.RpcError) -> dict[str, str]:
    for key, value in error.trailing_metadata() or ():  # type: ignore[attr-defined]
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                bad = error_details_pb2.BadRequest()
                if detail.Unpack(bad):
                    return {v.field: v.description for v in bad.field_violations}
    return {}


def _consent(suite, customer: str, status: int, at: dt.datetime | None = None):
    consent = profile_pb2.Consent(channel=SMS, status=status, source="crm")  # type: ignore[arg-type]
    if at is not None:
        consent.time.CopyFrom(datetime_to_timestamp(at))
    return suite.profile.UpdateConsent(
        profile_pb2.UpdateConsentRequest(customer_id=customer, consent=consent), timeout=T
    )


def _sms_export(suite, segment_id: str) -> set[str]:
    return {
        m.customer_id
        for m in suite.segmentation.ExportMembers(
            seg.ExportMembersRequest(segment_id=segment_id, consent_channel="sms"), timeout=T
        )
    }


def test_an_opt_out_wins_over_an_opt_in_dated_ahead_and_leaves_the_sms_export(suite) -> None:
    source = unique("crm")
    who = identify(
        source,
        channel=common_pb2.SOURCE_CHANNEL_BACK_OFFICE,
        phones=(random_phone(),),
        first_name="Мария",
        last_name="Смирнова",
    )
    suite.ingestion.Identify(who, timeout=T)
    customer = suite.wait_processed(who.record_ref).customer_id
    segment = suite.segmentation.CreateSegment(
        seg.CreateSegmentRequest(
            segment=seg.Segment(
                segment_id=unique("sms-list"),
                rule=seg.RuleNode(
                    field=seg.FieldCondition(field="sources", operator="contains", values=[source])
                ),
            )
        ),
        timeout=T,
    )
    wait_until(lambda: customer in _members(suite, segment.segment_id), what="member")
    now = dt.datetime.now(dt.UTC)

    # An opt-in dated 2030 is refused, naming the field; nothing is stored.
    with pytest.raises(grpc.RpcError) as refused:
        _consent(suite, customer, profile_pb2.CONSENT_STATUS_OPTED_IN, dt.datetime(2030, 1, 1))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "consent.time" in _field_violations(refused.value)
    assert not _profile(suite, customer).consents

    # An opt-in a till dated a few minutes ahead (clock drift) is accepted ...
    shown = _consent(
        suite, customer, profile_pb2.CONSENT_STATUS_OPTED_IN, now + dt.timedelta(minutes=3)
    )
    assert [c.status for c in shown.consents] == [profile_pb2.CONSENT_STATUS_OPTED_IN]
    wait_until(lambda: customer in _sms_export(suite, segment.segment_id), what="in the export")

    # ... but an opt-out received now wins over it although its time is earlier.
    shown = _consent(suite, customer, profile_pb2.CONSENT_STATUS_OPTED_OUT)
    assert [c.status for c in shown.consents] == [profile_pb2.CONSENT_STATUS_OPTED_OUT]
    wait_until(
        lambda: customer not in _sms_export(suite, segment.segment_id), what="out of the export"
    )

    # A late opt-in (dated before the opt-out, arriving after it) does not bring them back.
    shown = _consent(
        suite, customer, profile_pb2.CONSENT_STATUS_OPTED_IN, now - dt.timedelta(hours=1)
    )
    assert [c.status for c in shown.consents] == [profile_pb2.CONSENT_STATUS_OPTED_OUT]
    assert customer in _members(suite, segment.segment_id)
    time.sleep(0.5)  # the late opt-in's announcement has had time to reach segmentation
    assert customer not in _sms_export(suite, segment.segment_id)


def _members(suite, segment_id: str) -> set[str]:
    page = suite.segmentation.ListMembers(
        seg.ListMembersRequest(segment_id=segment_id, page_size=1000), timeout=T
    )
    return {m.customer_id for m in page.members}


def _profile(suite, customer: str) -> profile_pb2.Profile:
    return suite.profile.GetProfile(profile_pb2.GetProfileRequest(customer_id=customer), timeout=T)
