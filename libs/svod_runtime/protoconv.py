"""Small protobuf conversions every servicer needs (timestamps, dates, enum names)."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Protocol, TypeVar, cast

from google.protobuf.descriptor import EnumDescriptor
from google.protobuf.timestamp_pb2 import Timestamp
from google.type import date_pb2

from svod_runtime.bounds import TIME_RANGE_TEXT, timestamp_in_range
from svod_runtime.errors import FieldViolation, InvalidArgument, ViolationCollector


@functools.cache
def _short_names(descriptor: EnumDescriptor, prefix: str) -> dict[int, str]:
    return {v.number: v.name.removeprefix(prefix).lower() for v in descriptor.values}


@functools.cache
def _numbers(descriptor: EnumDescriptor, prefix: str) -> dict[str, int]:
    return {
        v.name[len(prefix) :].lower(): v.number
        for v in descriptor.values
        if v.name.startswith(prefix)
    }


# Both run per field of every message converted, so each enum's names are worked out once.
def enum_short_name(descriptor: EnumDescriptor, number: int, prefix: str) -> str:
    """``IDENTIFIER_TYPE_EMAIL`` -> ``"email"``; unknown numbers give ``""``."""
    return _short_names(descriptor, prefix).get(number, "")


def enum_short_names(descriptor: EnumDescriptor, prefix: str) -> dict[int, str]:
    """Every short name of an enum by number (``.get(number, "")`` is ``enum_short_name``), for
    a loop that converts many fields: no cache look-up per field."""
    return _short_names(descriptor, prefix)


def enum_number(descriptor: EnumDescriptor, short_name: str, prefix: str) -> int:
    return _numbers(descriptor, prefix).get(short_name.lower(), 0)


EnumValue = TypeVar("EnumValue", covariant=True)


class EnumWrapper(Protocol[EnumValue]):
    """A generated enum (``common_pb2.IdentifierType``): its descriptor, and the value type the
    generated stubs give its fields (``IdentifierType.ValueType``)."""

    DESCRIPTOR: EnumDescriptor

    def Value(self, name: str) -> EnumValue: ...


def enum_value(wrapper: EnumWrapper[EnumValue], short_name: str, prefix: str) -> EnumValue:
    """As ``enum_number``, typed as the enum's field value: ``"email"`` ->
    ``IDENTIFIER_TYPE_EMAIL`` for a message's ``type=`` without a cast at every call (unknown
    names give 0, the enum's UNSPECIFIED)."""
    return cast(EnumValue, _numbers(wrapper.DESCRIPTOR, prefix).get(short_name.lower(), 0))


def timestamp_to_datetime(ts: Timestamp, field: str = "timestamp") -> dt.datetime | None:
    """As Timestamp.ToDatetime(tzinfo=UTC), computed directly (it is called per event); None
    when unset.

    Raises InvalidArgument naming ``field`` when the time is outside the range every service
    accepts (svod_runtime.bounds: 1900 up to 2100, nanos 0-999999999) — never OverflowError.
    """
    seconds, nanos = ts.seconds, ts.nanos
    if seconds == 0 and nanos == 0:
        return None
    if not timestamp_in_range(seconds, nanos):
        raise InvalidArgument([FieldViolation(field, TIME_RANGE_TEXT)])
    return _EPOCH + dt.timedelta(seconds=seconds, microseconds=nanos // 1000)


def checked_timestamp(ts: Timestamp, field: str, errors: ViolationCollector) -> dt.datetime | None:
    """As timestamp_to_datetime, but an out-of-range time is added to ``errors`` (and None
    returned), so a request reports it together with its other bad fields."""
    try:
        return timestamp_to_datetime(ts, field)
    except InvalidArgument as invalid:
        errors.violations.extend(invalid.violations)
        return None


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_NAIVE_EPOCH = dt.datetime(1970, 1, 1)


def datetime_to_timestamp(value: dt.datetime | None) -> Timestamp:
    """As Timestamp.FromDatetime (naive means UTC), computed directly: it is called for every
    time field of every profile served, and the library's version is several times slower."""
    if value is None:
        return Timestamp()
    delta = value - (_NAIVE_EPOCH if value.tzinfo is None else _EPOCH)
    return Timestamp(seconds=delta.days * 86_400 + delta.seconds, nanos=delta.microseconds * 1000)


def proto_date_parts(date: date_pb2.Date) -> tuple[int, int, int] | None:
    if date.year == 0 and date.month == 0 and date.day == 0:
        return None
    return (date.year, date.month, date.day)


def date_to_proto(value: dt.date | None) -> date_pb2.Date:
    if value is None:
        return date_pb2.Date()
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)
