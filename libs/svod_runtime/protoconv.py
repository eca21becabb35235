"""Small protobuf conversions every servicer needs (timestamps, dates, enum names)."""

from __future__ import annotations

import datetime as dt

from google.protobuf.descriptor import EnumDescriptor
from google.protobuf.timestamp_pb2 import Timestamp
from google.type import date_pb2


def enum_short_name(descriptor: EnumDescriptor, number: int, prefix: str) -> str:
    """``IDENTIFIER_TYPE_EMAIL`` -> ``"email"``; unknown numbers give ``""``."""
    value = descriptor.values_by_number.get(number)
    if value is None:
        return ""
    return value.name.removeprefix(prefix).lower()


def enum_number(descriptor: EnumDescriptor, short_name: str, prefix: str) -> int:
    value = descriptor.values_by_name.get(prefix + short_name.upper())
    return value.number if value is not None else 0


def timestamp_to_datetime(ts: Timestamp) -> dt.datetime | None:
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return ts.ToDatetime(tzinfo=dt.UTC)


def datetime_to_timestamp(value: dt.datetime | None) -> Timestamp:
    ts = Timestamp()
    if value is not None:
        ts.FromDatetime(value)
    return ts


def proto_date_parts(date: date_pb2.Date) -> tuple[int, int, int] | None:
    if date.year == 0 and date.month == 0 and date.day == 0:
        return None
    return (date.year, date.month, date.day)


def date_to_proto(value: dt.date | None) -> date_pb2.Date:
    if value is None:
        return date_pb2.Date()
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)
