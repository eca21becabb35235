"""Windows that expire on time, consent-filtered export, segment-scoped access, merges."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import grpc
import pytest

from services.segmentation.tests.helpers import (
    Customer,
    T,
    all_of,
    behavior,
    create,
    days_ago,
    event,
    member_ids,
    seg_id,
    tagged,
)
from svod.profile.v1 import profile_pb2
from svod.segmentation.v1 import segmentation_pb2 as pb
from svod.segmentation.v1 import segmentation_pb2_grpc
from svod_cli.suite import free_ports
from svod_runtime.auth import principal_entry
from svod_runtime.config import ServiceConfig
from svod_runtime.telemetry import Telemetry
from svod_segmentation.entrypoints.app import SegmentationSettings, create_app
from tests.waiting import wait_until

EMAIL, SMS = profile_pb2.CONSENT_CHANNEL_EMAIL, profile_pb2.CONSENT_CHANNEL_SMS
IN, OUT = profile_pb2.CONSENT_STATUS_OPTED_IN, profile_pb2.CONSENT_STATUS_OPTED_OUT


def test_window_expires_on_time(suite, tag) -> None:
    """Bought in the last day: the order leaves the window ~3 s from now, and so does she —
    through the service's own timer-driven sweep, not another profile change."""
    stub = suite.segmentation
    segment_id = seg_id("day")
    create(stub, segment_id, all_of(tagged(tag), behavior("order_placed", "ge", 1, 1)))
    customer = Customer(tag)
    leaves_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)
    order = customer.order(leaves_at - dt.timedelta(days=1), 100)
    reply = stub.ApplyProfileChange(customer.change([order]), timeout=T)
    assert list(reply.entered_segment_ids) == [segment_id]

    # Opposite direction too: "opened no e-mail in 1 day" holds once the opening ages out.
    quiet = seg_id("quiet")
    create(
        stub,
        quiet,
        all_of(
            tagged(tag),
            behavior("campaign_opened", "eq", 0, 1, property__channel="email"),
        ),
    )
    reader = Customer(tag)
    opened = event(
        "campaign_opened", leaves_at - dt.timedelta(days=1), properties={"channel": "email"}
    )
    stub.ApplyProfileChange(reader.change([opened]), timeout=T)
    assert member_ids(stub, quiet) == {customer.customer_id}

    wait_until(
        lambda: member_ids(stub, segment_id), 15, "the window expired", 0.2, lambda ids: not ids
    )
    left = dt.datetime.now(dt.UTC)
    assert left - leaves_at < dt.timedelta(seconds=3), left - leaves_at
    history = []
    stream = stub.WatchMemberships(
        pb.WatchMembershipsRequest(segment_ids=[segment_id], resume_token="0.0"), timeout=T
    )
    for item in stream:
        history.append(item.kind)
        if len(history) == 2:
            stream.cancel()
            break
    assert history == [pb.MembershipEvent.KIND_ENTERED, pb.MembershipEvent.KIND_EXITED]
    wait_until(lambda: reader.customer_id in member_ids(stub, quiet), 5, "the reader entering", 0.2)


def test_export_filters_by_consent(suite, tag) -> None:
    stub = suite.segmentation
    segment_id = seg_id("export")
    create(stub, segment_id, tagged(tag))
    both, email_only, sms_out, silent = (Customer(tag) for _ in range(4))
    both.consents = {EMAIL: IN, SMS: IN}
    email_only.consents = {EMAIL: IN}
    sms_out.consents = {EMAIL: IN, SMS: OUT}
    for c in (both, email_only, sms_out, silent):
        stub.ApplyProfileChange(c.change(), timeout=T)

    def export(channel: str) -> set[str]:
        request = pb.ExportMembersRequest(segment_id=segment_id, consent_channel=channel)
        return {m.customer_id for m in stub.ExportMembers(request, timeout=T)}

    assert export("") == {c.customer_id for c in (both, email_only, sms_out, silent)}
    assert export("sms") == {both.customer_id}
    assert export("email") == {both.customer_id, email_only.customer_id, sms_out.customer_id}
    # Opting out later takes her out of the SMS list at once.
    both.consents[SMS] = OUT
    stub.ApplyProfileChange(both.change(), timeout=T)
    assert export("sms") == set()
    with pytest.raises(grpc.RpcError) as caught:
        list(
            stub.ExportMembers(
                pb.ExportMembersRequest(segment_id=segment_id, consent_channel="fax")
            )
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_merge_moves_events_and_ends_memberships(suite, tag) -> None:
    stub = suite.segmentation
    segment_id = seg_id("twice")
    create(stub, segment_id, all_of(tagged(tag), behavior("order_placed", "ge", 2, 30)))
    masha, maria = Customer(tag), Customer(tag)
    stub.ApplyProfileChange(
        masha.change([masha.order(days_ago(1), 10), masha.order(days_ago(2), 10)]), timeout=T
    )
    stub.ApplyProfileChange(maria.change([maria.order(days_ago(3), 10)]), timeout=T)
    assert member_ids(stub, segment_id) == {masha.customer_id}
    # Identity found Masha is Maria: Maria's profile survives with Masha's orders.
    maria.orders.extend(masha.orders)
    reply = stub.ApplyProfileChange(
        maria.change(merged_customer_ids=[masha.customer_id]), timeout=T
    )
    assert list(reply.entered_segment_ids) == [segment_id]
    assert member_ids(stub, segment_id) == {maria.customer_id}
    merged_away = stub.GetCustomerSegments(
        pb.GetCustomerSegmentsRequest(customer_id=masha.customer_id), timeout=T
    )
    assert segment_id in merged_away.segment_ids  # the merged-away id answers for the survivor
    erased = stub.EraseCustomer(pb.EraseCustomerRequest(customer_id=maria.customer_id), timeout=T)
    assert erased.erased_membership_count == 1
    # A late redelivery does not bring her back.
    stub.ApplyProfileChange(maria.change(), timeout=T)
    assert member_ids(stub, segment_id) == set()


@pytest.fixture
def scoped_replica(suite, suite_database, tmp_path):
    """A second segmentation server on the same database, with API keys and segment scopes."""
    port = free_ports(1)[0]
    keys = tmp_path / "keys.json"
    read = ["segment:read", "segment:admin"]
    keys.write_text(
        json.dumps(
            {
                "principals": [
                    principal_entry("marketing", "key-mkt", read, segments=["vip-scope", "x"]),
                    principal_entry("ops", "key-ops", read),
                ]
            }
        )
    )
    config = ServiceConfig(
        service="segmentation",
        database_url=suite_database.service_urls["segmentation"],
        listen_host="127.0.0.1",
        port=port,
        api_keys_file=str(keys),
    )
    settings = SegmentationSettings()
    loop = suite.suite.loop

    async def start():
        app = await create_app(config, Telemetry("segmentation"), settings)
        await app.start()
        return app

    app = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield segmentation_pb2_grpc.SegmentationServiceStub(channel)
    finally:
        channel.close()
        asyncio.run_coroutine_threadsafe(app.stop(1.0), loop).result(30)


def test_segment_scoped_access(suite, scoped_replica, tag) -> None:
    stub = suite.segmentation
    for segment_id in ("vip-scope", "secret-scope"):
        try:
            create(stub, segment_id, tagged(tag))
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    customer = Customer(tag)
    stub.ApplyProfileChange(customer.change(), timeout=T)
    mkt = (("authorization", "Bearer key-mkt"),)
    ops = (("authorization", "Bearer key-ops"),)

    members = scoped_replica.ListMembers(
        pb.ListMembersRequest(segment_id="vip-scope"), metadata=mkt, timeout=T
    )
    assert members.members
    listed = scoped_replica.ListSegments(pb.ListSegmentsRequest(), metadata=mkt, timeout=T)
    assert {s.segment_id for s in listed.segments} == {"vip-scope"}
    mine = scoped_replica.GetCustomerSegments(
        pb.GetCustomerSegmentsRequest(customer_id=customer.customer_id), metadata=mkt, timeout=T
    )
    assert list(mine.segment_ids) == ["vip-scope"]
    denied = [
        lambda: scoped_replica.ListMembers(
            pb.ListMembersRequest(segment_id="secret-scope"), metadata=mkt, timeout=T
        ),
        lambda: list(
            scoped_replica.ExportMembers(
                pb.ExportMembersRequest(segment_id="secret-scope"), metadata=mkt, timeout=T
            )
        ),
        lambda: next(
            iter(
                scoped_replica.WatchMemberships(
                    pb.WatchMembershipsRequest(segment_ids=["secret-scope"]),
                    metadata=mkt,
                    timeout=T,
                )
            )
        ),
        lambda: scoped_replica.GetSegment(
            pb.GetSegmentRequest(segment_id="secret-scope"), metadata=mkt, timeout=T
        ),
    ]
    for call in denied:
        with pytest.raises(grpc.RpcError) as caught:
            call()
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # ops may use everything; no key at all is refused by the shared interceptor.
    assert scoped_replica.ListMembers(
        pb.ListMembersRequest(segment_id="secret-scope"), metadata=ops, timeout=T
    ).members
    with pytest.raises(grpc.RpcError) as caught:
        scoped_replica.ListSegments(pb.ListSegmentsRequest(), timeout=T)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
