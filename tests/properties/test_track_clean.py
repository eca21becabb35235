"""ingestion's quick check of a track call (``track_clean``) against the checked way
(``validate_track`` over ``track_message``), in process.

Property: whenever the quick check vouches for a request, the checked way finds nothing wrong
with it - so a request is refused, with its field violations, exactly as before (the servicer
runs the checked way for every request the quick check does not vouch for). The valid templates
of every kind of event pass the quick check, so it is not vacuous.
"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from svod.common.v1 import common_pb2
from svod.ingestion.v1 import ingestion_pb2
from svod_ingestion.domain.messages import validate_track
from svod_ingestion.entrypoints.grpc_servicer import (
    latest_clean_second,
    track_clean,
    track_message,
)
from svod_runtime.errors import InvalidArgument
from tests.builders import CARD, EMAIL, PHONE, at, money, track
from tests.properties.strategies import near

NOW = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)
LATEST = latest_clean_second(NOW)
E = common_pb2


def _checked(request: ingestion_pb2.TrackRequest) -> list[tuple[str, str]]:
    """The checked way's field violations (none: the request is good)."""
    try:
        validate_track(track_message(request), NOW, "RUB")
    except InvalidArgument as error:
        return [(v.field, v.description) for v in error.violations]
    return []


def _clean(request: ingestion_pb2.TrackRequest) -> bool:
    return track_clean(request, request.ByteSize(), LATEST, "RUB")


def _templates() -> list[ingestion_pb2.TrackRequest]:
    phone = E.Identifier(type=PHONE, value="+7 916 123-45-67")
    order = track(
        "shop",
        E.EVENT_TYPE_ORDER_PLACED,
        phone,
        total="1499.90",
        lines=(("shoes", 1, "1499.90", "0"), ("socks", 3, "0.5", "0")),
        order_id="o-1",
    )
    for line in order.event.lines:
        line.ClearField("discount")
        line.sku, line.product_name = "sku-1", "Ботинки"
    order.event.properties["page"] = "/cart"
    order.event.identifiers.add(type=EMAIL, value="maria@example.ru")
    order.event.identifiers.add(type=CARD, value="1234-5678")
    order.event.identifiers.add(type=E.IDENTIFIER_TYPE_EXTERNAL_ID, value="x-1", namespace="crm")
    returned = track("shop", E.EVENT_TYPE_ORDER_RETURNED, phone, total="10")
    campaign = track("mail", E.EVENT_TYPE_CAMPAIGN_OPENED, phone, contact_channel="email")
    loyalty = track("club", E.EVENT_TYPE_LOYALTY_ACCRUED, phone)
    loyalty.event.loyalty_points = 120
    viewed = track("web", E.EVENT_TYPE_PAGE_VIEWED, phone, occurred="1900-01-01T00:00:00Z")
    cart = track("web", E.EVENT_TYPE_CART_UPDATED, phone)  # no total: allowed for a cart
    return [order, returned, campaign, loyalty, viewed, cart]


TEMPLATES = _templates()


@pytest.mark.parametrize("request_", TEMPLATES, ids=lambda r: E.EventType.Name(r.event.type))
def test_valid_templates_pass_the_quick_check(request_: ingestion_pb2.TrackRequest) -> None:
    assert _checked(request_) == []
    assert _clean(request_)


def test_what_the_quick_check_leaves_to_the_checked_way() -> None:
    """A discounted line, a time in the last second before the future's edge: left to the
    checked way, which takes them."""
    discounted = track(
        "shop",
        E.EVENT_TYPE_ORDER_PLACED,
        TEMPLATES[0].event.identifiers[0],
        total="10",
        lines=(("shoes", 1, "10", "1"),),
    )
    assert _checked(discounted) == [] and not _clean(discounted)
    edge = ingestion_pb2.TrackRequest()
    edge.CopyFrom(TEMPLATES[1])
    edge.event.occurred_time.CopyFrom(at("2026-11-01T12:05:00Z"))
    assert _checked(edge) == [] and not _clean(edge)
    edge.event.occurred_time.seconds -= 1
    assert _checked(edge) == [] and _clean(edge)
    edge.event.occurred_time.seconds += 1
    edge.event.occurred_time.nanos = 1_000
    assert _checked(edge) != [] and not _clean(edge)


@settings(max_examples=400)
@given(st.sampled_from(range(len(TEMPLATES))).flatmap(lambda i: near(TEMPLATES[i], spoil=2)))
def test_a_request_the_quick_check_vouches_for_is_good(
    request_: ingestion_pb2.TrackRequest,
) -> None:
    if _clean(request_):
        assert _checked(request_) == []


@settings(max_examples=100)
@given(
    st.sampled_from(range(len(TEMPLATES))),
    st.sampled_from(["units", "nanos", "currency_code"]),
    st.sampled_from([-1, 0, 1, 999_999_999, 1_000_000_000, 10_000_000_000, 10_000_000_001]),
)
def test_amounts_at_their_bounds(index: int, part: str, value: int) -> None:
    request_ = ingestion_pb2.TrackRequest()
    request_.CopyFrom(TEMPLATES[index])
    for target in [request_.event.total] + [line.unit_price for line in request_.event.lines]:
        if part == "currency_code":
            target.currency_code = "USD" if value < 0 else ("" if value == 0 else "RUB")
        elif part == "units" or abs(value) < 2**31:
            setattr(target, part, value)
    if _clean(request_):
        assert _checked(request_) == []
    if part == "currency_code" and value > 0:
        assert _clean(request_) == (_checked(request_) == [])


def test_every_bench_event_passes_the_quick_check() -> None:
    """bench_events_path's order events (the measured case) all go the quick way."""
    request_ = ingestion_pb2.TrackRequest(
        record_ref=E.RecordRef(source="shop", message_id="o-1"),
        channel=E.SOURCE_CHANNEL_WEB,
        event=E.Event(
            type=E.EVENT_TYPE_ORDER_PLACED,
            occurred_time=at("2026-03-04T05:00:00Z"),
            identifiers=[E.Identifier(type=PHONE, value="+79314159265")],
            order_id="o-1",
            total=money("4523"),
        ),
    )
    assert _checked(request_) == [] and _clean(request_)
