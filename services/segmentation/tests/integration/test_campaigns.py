"""Campaign reports and channel responsiveness over segmentation's API: a hand-built timeline
with known answers for each attribution model, and responsiveness that segment rules test."""

from __future__ import annotations

import datetime as dt
import secrets

import grpc
import pytest

from services.segmentation.tests.helpers import (
    Customer,
    T,
    all_of,
    create,
    days_ago,
    field_node,
    member_ids,
    rub,
    seg_id,
    tagged,
)
from svod.common.v1 import common_pb2
from svod.profile.v1 import profile_pb2
from svod.segmentation.v1 import segmentation_pb2 as pb
from svod_runtime.protoconv import datetime_to_timestamp


def _campaign(kind: str, at: dt.datetime, campaign: str, channel: str) -> profile_pb2.TimelineEntry:
    return profile_pb2.TimelineEntry(
        event_type=f"campaign_{kind}",
        occurred_time=datetime_to_timestamp(at),
        source="esp",
        channel=common_pb2.SOURCE_CHANNEL_CAMPAIGN,
        record_ref=common_pb2.RecordRef(source="esp", message_id=f"c-{secrets.token_hex(8)}"),
        properties={"contact_channel": channel},
        reference_id=campaign,
    )


def _order(at: dt.datetime, amount: float) -> profile_pb2.TimelineEntry:
    entry = profile_pb2.TimelineEntry(
        event_type="order_placed",
        occurred_time=datetime_to_timestamp(at),
        source="webshop",
        channel=common_pb2.SOURCE_CHANNEL_WEB,
        record_ref=common_pb2.RecordRef(source="webshop", message_id=f"o-{secrets.token_hex(8)}"),
        order_id=f"o-{secrets.token_hex(4)}",
    )
    entry.amount.CopyFrom(rub(amount))
    return entry


def test_campaign_report_on_a_hand_built_timeline(suite, tag) -> None:
    stub = suite.segmentation
    # A period of its own (the database is shared with other tests): March 2003.
    t0 = dt.datetime(2003, 3, 10, 12, tzinfo=dt.UTC)
    x, y = f"x-{tag}", f"y-{tag}"

    def ago(days: float) -> dt.datetime:
        return t0 - dt.timedelta(days=days)

    a, b = Customer(tag), Customer(tag)
    stub.ApplyProfileChange(
        a.change(
            [
                _campaign("delivered", ago(10), x, "email"),  # outside a 7-day window
                _campaign("opened", ago(5), x, "email"),
                _campaign("delivered", ago(3), y, "sms"),
                _campaign("clicked", ago(1), y, "sms"),
                _order(t0, 300),
            ]
        ),
        timeout=T,
    )
    stub.ApplyProfileChange(
        b.change(
            [
                _campaign("delivered", ago(22), x, "email"),
                _order(ago(20), 90),
                _order(t0 + dt.timedelta(days=10), 50),  # no touch before it
            ]
        ),
        timeout=T,
    )
    report = stub.GetCampaignReport(
        pb.GetCampaignReportRequest(
            start_time=datetime_to_timestamp(ago(25)),
            end_time=datetime_to_timestamp(t0 + dt.timedelta(days=15)),
            window_days=7,
        ),
        timeout=T,
    )
    assert (report.order_count, report.attributed_order_count) == (3, 2)
    assert (report.revenue.units, report.attributed_revenue.units) == (440, 390)
    rows = {(r.campaign_id, r.channel): r for r in report.rows}
    assert set(rows) == {(x, "email"), (y, "sms")}
    rx, ry = rows[(x, "email")], rows[(y, "sms")]
    assert (rx.first_touch_orders, rx.first_touch_revenue.units) == (2, 390)
    assert (rx.last_touch_orders, rx.last_touch_revenue.units) == (1, 90)
    assert rx.linear_orders == pytest.approx(4 / 3)
    assert (rx.linear_revenue.units, rx.linear_revenue.nanos) == (190, 0)
    assert (ry.first_touch_orders, ry.last_touch_orders) == (0, 1)
    assert ry.last_touch_revenue.units == 300
    assert ry.linear_orders == pytest.approx(2 / 3)
    assert ry.linear_revenue.units == 200
    assert [r.campaign_id for r in report.rows] == [y, x]  # most linear revenue first

    # A 14-day window reaches X's first delivery: first touch of A's order still X, and X's
    # linear share of it grows to 2/4.
    wide = stub.GetCampaignReport(
        pb.GetCampaignReportRequest(
            start_time=datetime_to_timestamp(ago(25)),
            end_time=datetime_to_timestamp(t0 + dt.timedelta(days=15)),
            window_days=14,
            campaign_ids=[x, y],
        ),
        timeout=T,
    )
    wide_rows = {r.campaign_id: r for r in wide.rows}
    assert wide_rows[x].linear_orders == pytest.approx(1 + 2 / 4)

    with pytest.raises(grpc.RpcError) as refused:
        stub.GetCampaignReport(
            pb.GetCampaignReportRequest(window_days=400, touch_types=["bounced"]), timeout=T
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_responsiveness_is_shown_and_usable_in_rules(suite, tag) -> None:
    stub = suite.segmentation
    ignorer, responder = Customer(tag), Customer(tag)
    stub.ApplyProfileChange(
        ignorer.change(
            [
                _campaign("delivered", days_ago(40), "c1", "email"),
                _campaign("opened", days_ago(39), "c1", "email"),
                _campaign("delivered", days_ago(30), "c2", "email"),
                _campaign("delivered", days_ago(20), "c3", "email"),
                _campaign("delivered", days_ago(10), "c4", "email"),
                _campaign("delivered", days_ago(9), "s1", "sms"),
                _campaign("clicked", days_ago(8), "s1", "sms"),
                _campaign("delivered", days_ago(7), "s2", "sms"),
            ]
        ),
        timeout=T,
    )
    stub.ApplyProfileChange(
        responder.change(
            [
                _campaign("delivered", days_ago(3), "c4", "email"),
                _campaign("opened", days_ago(2), "c4", "email"),
            ]
        ),
        timeout=T,
    )
    shown = stub.GetResponsiveness(
        pb.GetResponsivenessRequest(customer_id=ignorer.customer_id), timeout=T
    )
    channels = {c.channel: c for c in shown.channels}
    assert list(channels) == ["email", "sms"]
    email, sms = channels["email"], channels["sms"]
    assert (email.delivered_count, email.opened_count, email.ignored_in_a_row) == (4, 1, 3)
    assert email.response_rate == pytest.approx(0.25)
    assert (sms.delivered_count, sms.clicked_count, sms.ignored_in_a_row) == (2, 1, 1)
    assert 8 * 86400 - 60 < sms.seconds_since_last_response < 8 * 86400 + 600
    assert shown.preferred_channel == "sms"

    ignored_three = create(
        stub,
        seg_id("ignored-3-emails"),
        all_of(tagged(tag), field_node("responsiveness.email.ignored_in_a_row", "ge", "3")),
    )
    responds_sms = create(
        stub,
        seg_id("responds-sms"),
        all_of(
            tagged(tag),
            field_node("responsiveness.sms.last_response_time", "within_last", "30"),
        ),
    )
    prefers_email = create(
        stub,
        seg_id("prefers-email"),
        all_of(tagged(tag), field_node("responsiveness.preferred_channel", "eq", "email")),
    )
    assert member_ids(stub, ignored_three.segment_id) == {ignorer.customer_id}
    assert member_ids(stub, responds_sms.segment_id) == {ignorer.customer_id}
    assert member_ids(stub, prefers_email.segment_id) == {responder.customer_id}

    # One more e-mail opened: the ignorer stops ignoring, live.
    stub.ApplyProfileChange(
        ignorer.change([_campaign("opened", days_ago(1), "c4", "email")]), timeout=T
    )
    assert member_ids(stub, ignored_three.segment_id) == set()

    with pytest.raises(grpc.RpcError) as refused:
        stub.GetResponsiveness(pb.GetResponsivenessRequest(customer_id="nope"), timeout=T)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
