"""The shared bounds: what every service refuses at its door, and that the edges hold."""

from __future__ import annotations

import datetime as dt

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from svod_runtime import bounds
from svod_runtime.errors import InvalidArgument, ViolationCollector
from svod_runtime.protoconv import timestamp_to_datetime


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [
        (10**12, 0),  # year ~33658: OverflowError before
        (-(10**12), 0),
        (253_402_300_800, 0),  # 10000-01-01
        (bounds.LATEST_SECONDS, 0),
        (bounds.EARLIEST_SECONDS - 1, 0),
        (1_700_000_000, -1),
        (1_700_000_000, 10**9),
        (2**63 - 1, 0),
    ],
)
def test_timestamps_outside_the_range_are_refused_naming_the_field(
    seconds: int, nanos: int
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        timestamp_to_datetime(Timestamp(seconds=seconds, nanos=nanos), "event.occurred_time")
    assert [v.field for v in refused.value.violations] == ["event.occurred_time"]


def test_the_edges_of_the_time_range_convert() -> None:
    first = timestamp_to_datetime(Timestamp(seconds=bounds.EARLIEST_SECONDS))
    last = timestamp_to_datetime(Timestamp(seconds=bounds.LATEST_SECONDS - 1, nanos=999_999_999))
    assert first == bounds.EARLIEST_TIME
    assert last is not None and last < bounds.LATEST_TIME
    assert last.year == 2099
    assert timestamp_to_datetime(Timestamp()) is None
    assert bounds.datetime_in_range(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert not bounds.datetime_in_range(dt.datetime(1899, 12, 31, tzinfo=dt.UTC))


@pytest.mark.parametrize(
    ("units", "nanos", "why"),
    [
        (10**15, 0, "at most"),
        (bounds.MAX_AMOUNT_UNITS, 1, "at most"),
        (-1, 0, "negative"),
        (0, -5, "negative"),
        (1, 10**9, "nanos"),
    ],
)
def test_amounts_out_of_bounds_say_why(units: int, nanos: int, why: str) -> None:
    assert why in bounds.amount_violation(units, nanos)


def test_amounts_within_bounds_pass_and_fit_profiles_numeric_column() -> None:
    assert bounds.amount_violation(bounds.MAX_AMOUNT_UNITS, 0) == ""
    assert bounds.amount_violation(0, 999_999_999) == ""
    # numeric(20, 9) holds below 10^11.
    assert bounds.MAX_AMOUNT + 1 < 10**11


def test_text_checks_refuse_long_values_and_nul_characters() -> None:
    errors = ViolationCollector()
    assert bounds.check_text("x" * 10, "a", 10, errors)
    assert not bounds.check_text("x" * 11, "b", 10, errors)
    assert not bounds.check_text("ok\x00", "c", 10, errors)
    assert not bounds.check_text("  ", "d", 10, errors, required=True)
    assert [v.field for v in errors.violations] == ["b", "c", "d"]


def test_maps_are_bounded_in_entries_keys_and_values() -> None:
    errors = ViolationCollector()
    bounds.check_string_map(
        {"": "x", "k" * 70: "v", "good": "v" * 20, "nul": "a\x00"},
        "event.properties",
        errors,
        max_items=10,
        max_key=64,
        max_value=10,
    )
    fields = [v.field for v in errors.violations]
    assert fields == [
        "event.properties",
        "event.properties",
        "event.properties[good]",
        "event.properties[nul]",
    ]
    too_many = ViolationCollector()
    bounds.check_attributes({f"a{i}": "v" for i in range(101)}, "record.attributes", too_many)
    assert [v.field for v in too_many.violations] == ["record.attributes"]


def test_record_pieces_are_bounded() -> None:
    errors = ViolationCollector()
    bounds.check_identifier_texts(
        [("email", "a" * 300, ""), ("custom", "v", "n\x00")], "ids", errors
    )
    bounds.check_name({"first_name": "x" * 201}, "record.name", errors)
    bounds.check_addresses([{"city": "c" * 201, "country_code": "RU"}], "record.addresses", errors)
    bounds.check_addresses([{}] * 11, "more", errors)
    assert [v.field for v in errors.violations] == [
        "ids[0].value",
        "ids[1].namespace",
        "record.name.first_name",
        "record.addresses[0].city",
        "more",
    ]


def test_values_postgresql_refuses_are_invalid_argument_without_echoing_them() -> None:
    import psycopg
    import psycopg.errors
    import sqlalchemy.exc

    from svod_runtime.db import data_refusal

    nul = psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
    overflow = psycopg.errors.NumericValueOutOfRange("numeric field overflow: 1000000000000000")
    wrapped = sqlalchemy.exc.DataError("INSERT ...", {}, overflow)
    for error, why in ((nul, "NUL"), (overflow, "number"), (wrapped, "number")):
        refusal = data_refusal(error)
        assert refusal is not None and refusal.code == "INVALID_ARGUMENT"
        assert why in refusal.violations[0].description
        assert "1000000000000000" not in refusal.message
    assert data_refusal(psycopg.OperationalError("server closed the connection")) is None
    assert data_refusal(ValueError("x")) is None


def test_refusals_fit_a_clients_metadata_limit() -> None:
    """A request with thousands of bad fields, each echoing long text, still gets its refusal
    (trailers over 8 KiB made the client fail with RESOURCE_EXHAUSTED instead)."""
    from svod_runtime.errors import FieldViolation
    from svod_runtime.interceptors import status_for

    error = InvalidArgument(
        [FieldViolation(f"event.lines[{i}].sku" + "ж" * 300, "я" * 500) for i in range(5000)]
    )
    code, message, trailers = status_for(error)
    assert code.name == "INVALID_ARGUMENT"
    sent = len(message.encode()) * 3 + sum(len(v) * 4 // 3 for _, v in trailers)
    assert sent < 6 * 1024
    from google.rpc import error_details_pb2, status_pb2

    status = status_pb2.Status.FromString(trailers[0][1])
    bad_request = error_details_pb2.BadRequest()
    status.details[0].Unpack(bad_request)
    assert bad_request.field_violations[0].field.startswith("event.lines[0].sku")
