"""A record that carries identifiers of two customers proves they are one person."""

from __future__ import annotations

import time

from svod.common.v1 import common_pb2
from svod.identity.v1 import identity_pb2
from svod.profile.v1 import profile_pb2
from tests.builders import EMAIL, identify, random_phone, unique

T = 10.0


def _profile_by_id(suite, customer_id: str) -> profile_pb2.Profile:
    return suite.profile.GetProfile(
        profile_pb2.GetProfileRequest(customer_id=customer_id), timeout=T
    )


def test_bridging_record_merges_customers_and_profiles(suite, span_exporter) -> None:
    phone, email = random_phone(), f"{unique('masha')}@example.ru"
    pos = identify(
        "pos-msk-01", channel=common_pb2.SOURCE_CHANNEL_POS, phones=(phone,), first_name="Маша"
    )
    app = identify(
        "app", channel=common_pb2.SOURCE_CHANNEL_APP, emails=(email,), last_name="Смирнова"
    )
    suite.ingestion.Identify(pos, timeout=T)
    older = suite.wait_processed(pos.record_ref).customer_id
    suite.ingestion.Identify(app, timeout=T)
    newer = suite.wait_processed(app.record_ref).customer_id
    assert older != newer

    web = identify("webshop", phones=(phone,), emails=(email,), first_name="Мария")
    suite.ingestion.Identify(web, timeout=T)
    assert suite.wait_processed(web.record_ref).customer_id == older

    customer = suite.identity.LookupCustomer(
        identity_pb2.LookupCustomerRequest(customer_id=newer), timeout=T
    )
    assert customer.customer_id == older  # the older id survives
    assert list(customer.merged_ids) == [newer]
    assert customer.record_count == 3

    deadline = time.monotonic() + 10
    while len((profile := _profile_by_id(suite, older)).sources) < 3:
        assert time.monotonic() < deadline, profile
        time.sleep(0.05)
    assert {s.source for s in profile.sources} == {"pos-msk-01", "app", "webshop"}
    assert profile.last_name.value == "Смирнова"  # came with the merged-away customer
    assert profile.first_name.value == "Мария"
    # The merged-away id still answers, with the survivor's profile.
    assert _profile_by_id(suite, newer).customer_id == older
    by_email = suite.profile.GetProfile(
        profile_pb2.GetProfileRequest(identifier=common_pb2.Identifier(type=EMAIL, value=email)),
        timeout=T,
    )
    assert by_email.customer_id == older

    # The merge announcement (a second async hop) continues the bridging call's trace.
    identify_span = max(
        (
            s
            for s in span_exporter.get_finished_spans()
            if s.name == "/svod.ingestion.v1.IngestionService/Identify"
        ),
        key=lambda s: s.start_time,
    )
    announced = [
        s
        for s in span_exporter.get_finished_spans()
        if s.name == "/svod.profile.v1.ProfileService/ApplyIdentityChange"
        and s.context.trace_id == identify_span.context.trace_id
    ]
    assert announced, "merge announcement left the Identify trace"


def test_merge_announcement_is_applied_once(suite) -> None:
    phone, email = random_phone(), f"{unique('d')}@example.ru"
    first = identify("crm", phones=(phone,))
    second = identify("app", emails=(email,))
    for request in (first, second):
        suite.ingestion.Identify(request, timeout=T)
        suite.wait_processed(request.record_ref)
    survivor = suite.wait_processed(first.record_ref).customer_id
    merged = suite.wait_processed(second.record_ref).customer_id
    bridge = identify("webshop", phones=(phone,), emails=(email,))
    suite.ingestion.Identify(bridge, timeout=T)
    suite.wait_processed(bridge.record_ref)
    deadline = time.monotonic() + 10
    while len((before := _profile_by_id(suite, survivor)).sources) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # Replaying the same change (at-least-once delivery) changes nothing.
    replay = profile_pb2.ApplyIdentityChangeRequest(
        change_id=f"replay-{unique()}",
        merge=profile_pb2.ApplyIdentityChangeRequest.Merge(
            surviving_customer_id=survivor, merged_customer_ids=[merged]
        ),
    )
    suite.profile.ApplyIdentityChange(replay, timeout=T)
    suite.profile.ApplyIdentityChange(replay, timeout=T)
    after = _profile_by_id(suite, survivor)
    assert [(s.source, s.record_count) for s in after.sources] == [
        (s.source, s.record_count) for s in before.sources
    ]
