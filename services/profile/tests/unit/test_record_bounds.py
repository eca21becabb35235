"""A record's quick bounds check (``_surely_in_bounds``): every record it lets through is one
``_check_record`` accepts, and every bound it tests still refuses a record through
``application`` (ApplyBatch's and a customer import's fold's conversion)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable

import pytest

from svod.common.v1 import common_pb2
from svod.profile.v1 import profile_pb2
from svod_profile.entrypoints.grpc_servicer import _check_record, _surely_in_bounds, application
from svod_runtime import bounds
from svod_runtime.errors import InvalidArgument

NOW = dt.datetime(2026, 12, 6, 12, tzinfo=dt.UTC)


def _record() -> profile_pb2.ApplyRequest:
    request = profile_pb2.ApplyRequest(
        customer_id=str(uuid.uuid4()),
        record_ref=common_pb2.RecordRef(source="crm-file", message_id="line-17"),
        channel=common_pb2.SOURCE_CHANNEL_POS,
    )
    request.identifiers.add(type=common_pb2.IDENTIFIER_TYPE_PHONE, value="+79161234567")
    request.identifiers.add(
        type=common_pb2.IDENTIFIER_TYPE_EXTERNAL_ID, value="c-1", namespace="crm"
    )
    request.name.first_name, request.name.last_name = "Мария", "Смирнова"
    return request


BROKEN: dict[str, Callable[[profile_pb2.ApplyRequest], object]] = {
    "no source": lambda r: setattr(r.record_ref, "source", ""),
    "bad source": lambda r: setattr(r.record_ref, "source", "Crm File"),
    "no message id": lambda r: setattr(r.record_ref, "message_id", ""),
    "long message id": lambda r: setattr(r.record_ref, "message_id", "m" * 129),
    "NUL in message id": lambda r: setattr(r.record_ref, "message_id", "m\x00"),
    "too many identifiers": lambda r: r.identifiers.extend(
        [common_pb2.Identifier(value="x")] * bounds.MAX_IDENTIFIERS
    ),
    "long identifier": lambda r: setattr(r.identifiers[0], "value", "v" * 257),
    "NUL in identifier": lambda r: setattr(r.identifiers[0], "value", "+7\x00"),
    "long namespace": lambda r: setattr(r.identifiers[1], "namespace", "n" * 65),
    "NUL in namespace": lambda r: setattr(r.identifiers[1], "namespace", "\x00"),
    "long first name": lambda r: setattr(r.name, "first_name", "М" * 201),
    "NUL in last name": lambda r: setattr(r.name, "last_name", "Смир\x00нова"),
    "long middle name": lambda r: setattr(r.name, "middle_name", "И" * 201),
    "NUL in full name": lambda r: setattr(r.name, "full_name", "\x00"),
    "too many addresses": lambda r: [
        r.addresses.add(city="Москва") for _ in range(bounds.MAX_ADDRESSES + 1)
    ],
    "long city": lambda r: r.addresses.add(city="К" * 201),
    "empty attribute name": lambda r: r.attributes.update({"": "x"}),
    "long attribute value": lambda r: r.attributes.update({"tier": "g" * 1001}),
}


def test_a_usual_record_is_surely_in_bounds_and_converted() -> None:
    request = _record()
    assert _surely_in_bounds(request)
    _check_record(request)
    app = application(request, NOW)
    assert [(t.field, t.value) for t in app.traits] == [
        ("first_name", "Мария"),
        ("last_name", "Смирнова"),
    ]
    assert [(i.type, i.value, i.namespace) for i in app.identifiers] == [
        ("phone", "+79161234567", ""),
        ("external_id", "c-1", "crm"),
    ]
    assert app.provenance.channel == "pos" and app.provenance.observed_at == NOW


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_record_out_of_bounds_goes_the_checked_way_and_is_refused(name: str) -> None:
    request = _record()
    BROKEN[name](request)
    assert not _surely_in_bounds(request)
    with pytest.raises(InvalidArgument):
        application(request, NOW)


def test_a_record_with_addresses_or_attributes_is_checked_and_converted() -> None:
    request = _record()
    request.addresses.add(country_code="RU", city="Москва")
    request.attributes["tier"] = "gold"
    assert not _surely_in_bounds(request)
    app = application(request, NOW)
    assert {t.field for t in app.traits} >= {"addresses", "attributes.tier"}
