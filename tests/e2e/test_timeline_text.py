"""A marketer reading a customer's timeline sees money and counts written for people."""

from __future__ import annotations

from svod.common.v1 import common_pb2
from svod.profile.v1 import profile_pb2
from tests.builders import PHONE, identify, random_phone, track

T = 10.0


def test_timeline_summaries_format_money_and_counts(suite) -> None:
    phone = random_phone()
    who = identify("pos-msk-01", phones=(phone,), first_name="Ольга", last_name="Кузнецова")
    suite.ingestion.Identify(who, timeout=T)
    customer = suite.wait_processed(who.record_ref).customer_id
    me = common_pb2.Identifier(type=PHONE, value=phone)
    orders = [
        track(
            "pos-msk-01",
            common_pb2.EVENT_TYPE_ORDER_PLACED,
            me,
            occurred="2026-10-01T12:00:00Z",
            order_id="1042",
            total="4200",
            lines=(("shoes", 1, "4200", "0"),),
        ),
        track(
            "webshop",
            common_pb2.EVENT_TYPE_ORDER_PLACED,
            me,
            occurred="2026-10-02T12:00:00Z",
            order_id="1043",
            total="1249.90",
            lines=(("socks", 3, "416.63", "0"), ("bags", 2, "0.005", "0")),
        ),
    ]
    for order in orders:
        suite.ingestion.Track(order, timeout=T)
        suite.wait_processed(order.record_ref)
    timeline = suite.profile.GetTimeline(
        profile_pb2.GetTimelineRequest(customer_id=customer), timeout=T
    )
    assert [e.summary for e in timeline.entries] == [
        "order 1043: 5 items, 1 249.90 RUB",
        "order 1042: 1 item, 4 200 RUB",
    ]
