"""event_fact's quick way (every bound tested, no violation built) against its checked way."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.profile.event_data import events
from svod.common.v1 import common_pb2
from svod.profile.v1 import profile_pb2
from svod_profile.adapters.event_imports import staged_event
from svod_profile.domain.imports import StagedEvent
from svod_profile.entrypoints.grpc_servicer import (
    _checked_event_fact,
    _valid_event_fact,
    event_fact,
    quick_staged_event,
    staged_event_of,
)
from svod_runtime import bounds
from svod_runtime.errors import InvalidArgument
from tests.properties.strategies import near

CUSTOMERS = [str(uuid.UUID(int=n)) for n in range(1, 30)]
Request = profile_pb2.ApplyEventRequest


def test_the_quick_way_gives_the_checked_way_s_fact_for_every_kind_of_event() -> None:
    for mixed in (True, False):
        for request in events(CUSTOMERS, 600, 3, mixed=mixed):
            fact = _valid_event_fact(request, "RUB")
            assert fact is not None
            assert fact == _checked_event_fact(request, "RUB")


def _order() -> Request:
    """An order with lines, a line discount, an identifier and a property."""
    order = next(r for r in events(CUSTOMERS, 50, 4) if r.event.lines)
    order.event.lines[0].discount.units = 1
    order.event.identifiers.add(type=common_pb2.IDENTIFIER_TYPE_PHONE, value="+79161234567")
    order.event.properties["page"] = "/p/1"
    return order


def _set_line_discount(r: Request, units: int) -> None:
    for line in r.event.lines:
        line.discount.units = units
        line.quantity = 1000


BROKEN: dict[str, Callable[[Request], None]] = {
    "no type": lambda r: setattr(r.event, "type", 0),
    "unknown type": lambda r: setattr(r.event, "type", 999),
    "no time": lambda r: r.event.ClearField("occurred_time"),
    "time before 1900": lambda r: setattr(r.event.occurred_time, "seconds", -3_000_000_000),
    "no source": lambda r: setattr(r.record_ref, "source", ""),
    "bad source": lambda r: setattr(r.record_ref, "source", "Shop!"),
    "no message id": lambda r: setattr(r.record_ref, "message_id", ""),
    "long message id": lambda r: setattr(r.record_ref, "message_id", "m" * 129),
    "NUL in message id": lambda r: setattr(r.record_ref, "message_id", "a\x00"),
    "negative total": lambda r: setattr(r.event.total, "units", -1),
    "total too large": lambda r: setattr(r.event.total, "units", bounds.MAX_AMOUNT_UNITS + 1),
    "total just over": lambda r: (
        setattr(r.event.total, "units", bounds.MAX_AMOUNT_UNITS),
        setattr(r.event.total, "nanos", 1),
    ),
    "bad nanos": lambda r: setattr(r.event.total, "nanos", 1_000_000_000),
    "other currency": lambda r: setattr(r.event.total, "currency_code", "USD"),
    "line price currency": lambda r: setattr(r.event.lines[0].unit_price, "currency_code", "EUR"),
    "line discount currency": lambda r: setattr(r.event.lines[0].discount, "currency_code", "EUR"),
    "negative line price": lambda r: setattr(r.event.lines[0].unit_price, "units", -5),
    "negative line discount": lambda r: setattr(r.event.lines[0].discount, "nanos", -5),
    "discounts add up too far": lambda r: _set_line_discount(r, bounds.MAX_AMOUNT_UNITS // 100),
    "quantity": lambda r: setattr(r.event.lines[0], "quantity", -bounds.MAX_QUANTITY - 1),
    "long sku": lambda r: setattr(r.event.lines[0], "sku", "s" * 129),
    "NUL in product": lambda r: setattr(r.event.lines[0], "product_name", "\x00"),
    "long category": lambda r: setattr(r.event.lines[0], "category", "c" * 201),
    "too many lines": lambda r: r.event.lines.extend(
        [common_pb2.LineItem(sku="x")] * (bounds.MAX_LINES + 1)
    ),
    "too many identifiers": lambda r: r.event.identifiers.extend(
        [common_pb2.Identifier(value="x")] * (bounds.MAX_IDENTIFIERS + 1)
    ),
    "long identifier": lambda r: setattr(r.event.identifiers[0], "value", "v" * 257),
    "NUL in namespace": lambda r: setattr(r.event.identifiers[0], "namespace", "\x00"),
    "long order id": lambda r: setattr(r.event, "order_id", "o" * 129),
    "long reference": lambda r: setattr(r.event, "reference_id", "r" * 129),
    "long contact channel": lambda r: setattr(r.event, "contact_channel", "c" * 33),
    "negative points": lambda r: setattr(r.event, "loyalty_points", -1),
    "too many points": lambda r: setattr(r.event, "loyalty_points", bounds.MAX_LOYALTY_POINTS + 1),
    "empty property name": lambda r: r.event.properties.update({"": "v"}),
    "long property name": lambda r: r.event.properties.update({"k" * 65: "v"}),
    "long property value": lambda r: r.event.properties.update({"k": "v" * 1001}),
    "too many properties": lambda r: r.event.properties.update(
        {f"k{n}": "v" for n in range(bounds.MAX_PROPERTIES + 1)}
    ),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_an_event_out_of_bounds_goes_the_checked_way_and_is_refused(name: str) -> None:
    request = Request()
    request.CopyFrom(_order())
    assert _valid_event_fact(request, "RUB") is not None
    BROKEN[name](request)
    assert _valid_event_fact(request, "RUB") is None
    with pytest.raises(InvalidArgument):
        event_fact(request, "RUB")
    assert quick_staged_event(request.customer_id, request, "RUB") is None


def _staged_the_checked_way(request: Request) -> StagedEvent | None:
    try:
        return staged_event(request.customer_id, event_fact(request, "RUB"))
    except InvalidArgument:
        return None


def test_the_quick_row_is_the_checked_way_s_row_for_every_kind_of_event() -> None:
    for mixed in (True, False):
        for request in events(CUSTOMERS, 600, 3, mixed=mixed):
            quick = quick_staged_event(request.customer_id, request, "RUB")
            assert quick is not None
            assert quick == _staged_the_checked_way(request)
    order = _order()
    assert quick_staged_event(order.customer_id, order, "RUB") == _staged_the_checked_way(order)


@pytest.mark.parametrize(
    ("units", "nanos"),
    [
        (0, 0),
        (0, 5),
        (0, 123_000),
        (0, 999_999_999),
        (1, 0),
        (7, 1),
        (4523, 0),
        (bounds.MAX_AMOUNT_UNITS, 0),
        (bounds.MAX_AMOUNT_UNITS - 1, 999_999_999),
    ],
)
def test_amount_texts(units: int, nanos: int) -> None:
    request = Request()
    request.CopyFrom(_order())
    request.event.total.units, request.event.total.nanos = units, nanos
    quick = quick_staged_event(request.customer_id, request, "RUB")
    assert quick is not None and quick == _staged_the_checked_way(request)


@pytest.mark.parametrize(
    "odd",
    ["tab\there", "line\nbreak", "back\\slash", 'quote"d', "cr\rhere", "Мария 😀"],
)
def test_a_row_to_escape_goes_the_checked_way(odd: str) -> None:
    request = Request()
    request.CopyFrom(_order())
    request.event.order_id = odd
    request.event.lines[0].category = odd
    request.event.properties[odd] = odd
    quick = quick_staged_event(request.customer_id, request, "RUB")
    checked = _staged_the_checked_way(request)
    assert checked is not None
    assert quick is None or quick == checked
    assert staged_event_of(request.customer_id, request, "RUB") == checked


@settings(max_examples=400)
@given(near(_order(), spoil=2))
def test_a_quick_row_is_always_the_checked_way_s(request: Request) -> None:
    quick = quick_staged_event(request.customer_id, request, "RUB")
    if quick is not None:
        assert quick == _staged_the_checked_way(request)


@pytest.mark.parametrize(
    "value", ["+79161234567", 'a"b', "x\\y", "\x1f", "\x7f", "Мария 😀", "\u2028", "/"]
)
def test_identifier_json_as_json_dumps_writes_it(value: str) -> None:
    request = Request()
    request.CopyFrom(_order())
    request.event.identifiers.add(
        type=common_pb2.IDENTIFIER_TYPE_CUSTOM, value=value, namespace=value
    )
    quick = quick_staged_event(request.customer_id, request, "RUB")
    checked = _staged_the_checked_way(request)
    assert checked is not None
    # A quote, backslash or control character is escaped in the JSON, and the row then goes
    # the checked way.
    escaped = any(c in '"\\' or ord(c) < 0x20 for c in value)
    assert quick == (None if escaped else checked)
    assert staged_event_of(request.customer_id, request, "RUB") == checked


@settings(max_examples=300)
@given(
    st.one_of(
        st.integers(min_value=bounds.EARLIEST_SECONDS, max_value=bounds.LATEST_SECONDS - 1),
        st.sampled_from(
            [bounds.EARLIEST_SECONDS, bounds.LATEST_SECONDS - 1, -1, 0, 1, 86_399, 86_400]
        ),
    ),
    st.one_of(
        st.integers(min_value=0, max_value=bounds.MAX_NANOS),
        st.sampled_from([0, 999, 1_000, 999_999_999, 500_000_000]),
    ),
)
def test_the_quick_row_s_time_is_the_checked_way_s(seconds: int, nanos: int) -> None:
    """The time written from the cache of day texts (_time_text) as datetime.isoformat()
    writes it: before 1970, at the bounds, with and without microseconds."""
    request = Request()
    request.CopyFrom(_order())
    request.event.occurred_time.seconds, request.event.occurred_time.nanos = seconds, nanos
    quick = quick_staged_event(request.customer_id, request, "RUB")
    checked = _staged_the_checked_way(request)
    assert quick == checked or (quick is None and seconds == 0 and nanos == 0)


def test_a_nul_in_a_text_goes_the_checked_way() -> None:
    for field in ("order_id", "reference_id", "contact_channel"):
        request = Request()
        request.CopyFrom(_order())
        setattr(request.event, field, "a\x00b")
        assert quick_staged_event(request.customer_id, request, "RUB") is None
        with pytest.raises(InvalidArgument):
            event_fact(request, "RUB")
    request = Request()
    request.CopyFrom(_order())
    request.record_ref.message_id = "m\x00"
    assert quick_staged_event(request.customer_id, request, "RUB") is None
