"""A faster ``json_format.ParseDict`` for the plain messages of an import file (issue 22).

``svod import events FILE`` spent most of its CPU in protobuf's pure-Python ParseDict: 372 of
the command's 662 py-spy samples on 100,000 order events (bench_events_path, about 90 us per
event), more than reading, sending and waiting together. ``build`` (and ``parse_dict``) checks
the dict against tables made once per message type and fills the message with one call of its
constructor (nested messages as dicts), and only for what it knows to give exactly ParseDict's
message: strings, integers (a JSON number or a string of digits), enum names, nested messages,
repeated fields, map<string, string> and RFC 3339 UTC timestamps. Anything else - a null, a
bool or float field, bytes, another well-known type, an unknown or twice-named field, two
members of a oneof, a value of the wrong type - returns None, and the caller runs ParseDict,
so every refusal and its wording stay ParseDict's. ``tests`` hold the two equal.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

_F = FieldDescriptor
_INT32 = frozenset({_F.TYPE_INT32, _F.TYPE_SINT32, _F.TYPE_SFIXED32})
_UINT32 = frozenset({_F.TYPE_UINT32, _F.TYPE_FIXED32})
_INT64 = frozenset({_F.TYPE_INT64, _F.TYPE_SINT64, _F.TYPE_SFIXED64})
_UINT64 = frozenset({_F.TYPE_UINT64, _F.TYPE_FIXED64})
_RANGES = {
    **dict.fromkeys(_INT32, (-(2**31), 2**31 - 1)),
    **dict.fromkeys(_UINT32, (0, 2**32 - 1)),
    **dict.fromkeys(_INT64, (-(2**63), 2**63 - 1)),
    **dict.fromkeys(_UINT64, (0, 2**64 - 1)),
}
_DIGITS = re.compile(r"-?[0-9]{1,20}")
# The one spelling of a time taken here (ParseDict takes more: offsets, lower case).
_UTC = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.([0-9]{1,9}))?Z")
_TIMESTAMP = "google.protobuf.Timestamp"
_EPOCH_DAY = _dt.date(1970, 1, 1)
# Dates kept in _time's cache (about 2 MB at most; ten years of days is 3,653).
_DAYS_KEPT = 20_000
_DAYS: dict[str, int] = {}

# Kinds of field in the tables.
_STRING, _INT, _ENUM, _MESSAGE, _TIME, _MAP = range(6)


class _Declined(Exception):
    """The value is not one this module vouches for: ParseDict decides."""


def _kind(field: FieldDescriptor) -> int | None:
    if field.type == _F.TYPE_STRING:
        return _STRING
    if field.type in _RANGES:
        return _INT
    if field.type == _F.TYPE_ENUM:
        return _ENUM
    message = field.message_type
    if field.type == _F.TYPE_MESSAGE and message is not None:
        if message.GetOptions().map_entry:
            key, value = message.fields_by_name["key"], message.fields_by_name["value"]
            plain = key.type == _F.TYPE_STRING and value.type == _F.TYPE_STRING
            return _MAP if plain else None
        if message.full_name == _TIMESTAMP:
            return _TIME
        if message.full_name.startswith("google.protobuf."):
            return None  # Struct, Value, wrappers, Duration, Any: ParseDict's own rules
        return _MESSAGE
    return None  # bool, float, double, bytes


# Per message type, by field name and JSON name: (name, kind, repeated, oneof or "", extra,
# how), extra being the nested message's table or an integer's (low, high) range, and how
# the fill treats it (_PLAIN_TEXT, _PLAIN_MESSAGE, _PLAIN_INT or _OTHER). Plain tuples
# resolved once: reading a upb descriptor's attributes (``message_type``, ``type``,
# ``full_name``) during the fill cost more than the fill itself (13.4 of 15.9 us an order
# event when they were read per field; timeit probe).
_Entry = tuple[str, int | None, bool, str, Any, int]
_TABLES: dict[str, dict[str, _Entry]] = {}
_CLASS_TABLES: dict[type[Message], dict[str, _Entry]] = {}
# How _fields fills a field: the first three inline (no call per leaf), for a field that is
# not repeated and in no oneof; _OTHER through _value. An order event's fill went from
# 12.6-13.6 to 9.0-9.6 us of CPU with its leaves inline (probe: 20,000 bench_events_path
# order events, old and new in one process, load 13).
_OTHER, _PLAIN_TEXT, _PLAIN_MESSAGE, _PLAIN_INT = range(4)
_HOW = {_STRING: _PLAIN_TEXT, _ENUM: _PLAIN_TEXT, _MESSAGE: _PLAIN_MESSAGE, _INT: _PLAIN_INT}


def _table(descriptor: Any) -> dict[str, _Entry]:
    table = _TABLES.get(descriptor.full_name)
    if table is not None:
        return table
    table = {}
    _TABLES[descriptor.full_name] = table  # before the fields: a message may nest itself
    for field in descriptor.fields:
        kind = _kind(field)
        oneof = field.containing_oneof
        extra: Any = None
        if kind == _MESSAGE and field.message_type is not None:
            extra = _table(field.message_type)
        elif kind == _INT:
            extra = _RANGES[field.type]
        repeated = field.is_repeated and kind != _MAP
        how = _OTHER
        if not repeated and oneof is None and kind is not None:
            how = _HOW.get(kind, _OTHER)
        entry = (field.name, kind, repeated, oneof.name if oneof is not None else "", extra, how)
        table[field.name] = entry
        table[field.json_name] = entry
    return table


def _integer(value: Any, bounds: tuple[int, int]) -> int:
    if type(value) is int:
        number = value
    elif type(value) is str and _DIGITS.fullmatch(value):
        number = int(value)
    else:
        raise _Declined
    if not bounds[0] <= number <= bounds[1]:
        raise _Declined
    return number


def _time(value: Any) -> dict[str, int]:
    if type(value) is not str:
        raise _Declined
    parts = _UTC.fullmatch(value)
    if parts is None:
        raise _Declined
    # The day's number from a cache of the dates met (an import's events share their days):
    # datetime's arithmetic per value was 4.8 of the 23 us of an order event's fill (timeit
    # probe, loaded machine). A date
    # datetime refuses (the 30th of February, year 0) raises ValueError: declined.
    date = value[:10]
    days = _DAYS.get(date)
    if days is None:
        days = (_dt.date(int(value[:4]), int(value[5:7]), int(value[8:10])) - _EPOCH_DAY).days
        if len(_DAYS) < _DAYS_KEPT:
            _DAYS[date] = days
    hour, minute, second = int(value[11:13]), int(value[14:16]), int(value[17:19])
    if hour > 23 or minute > 59 or second > 59:  # what datetime refuses
        raise _Declined
    fraction = parts.group(1)
    return {
        "seconds": days * 86400 + hour * 3600 + minute * 60 + second,
        "nanos": int(fraction.ljust(9, "0")) if fraction else 0,
    }


def _fields(data: Any, table: dict[str, _Entry]) -> dict[str, Any]:  # noqa: C901 - leaves inline
    """The message's constructor arguments for ``data`` (nested messages as dicts of their
    own), each value checked and converted as ParseDict would; _Declined when not vouched
    for. One constructor call then fills the message in C: setting each field from Python
    (``setattr``, ``add()``, ``SetInParent``) was most of the fill's cost. A text or enum
    label, an integer and a nested message are checked here, without a call per leaf (the
    same checks as ``_scalar``, ``_integer`` and ``_value``'s)."""
    if type(data) is not dict:
        raise _Declined
    out: dict[str, Any] = {}
    oneofs: set[str] | None = None
    for key, value in data.items():
        entry = table.get(key)
        if entry is None:
            raise _Declined
        name, kind, repeated, oneof, extra, how = entry
        if how == _PLAIN_TEXT:
            # A string field or an enum label (the constructor looks it up: an unknown one
            # raises ValueError, declined); None and every other type declined.
            if type(value) is not str:
                raise _Declined
            out[name] = value
            continue
        if how == _PLAIN_MESSAGE:
            out[name] = _fields(value, extra)
            continue
        if how == _PLAIN_INT:
            if type(value) is int and extra[0] <= value <= extra[1]:
                out[name] = value
            else:
                out[name] = _integer(value, extra)
            continue
        if kind is None or value is None:
            raise _Declined
        if oneof:
            if oneofs is None:
                oneofs = set()
            elif oneof in oneofs:
                raise _Declined
            oneofs.add(oneof)
        out[name] = _value(kind, repeated, extra, value)
    if len(out) != len(data):
        # Two keys named one field (its name and its JSON name): ParseDict refuses that.
        raise _Declined
    return out


def _value(kind: int, repeated: bool, extra: Any, value: Any) -> Any:
    if repeated:
        if type(value) is not list:
            raise _Declined
        if kind == _MESSAGE:
            return [_fields(item, extra) for item in value]
        if kind == _TIME:
            return [_time(item) for item in value]
        return [_scalar(item, extra, kind) for item in value]
    if kind == _MESSAGE:
        return _fields(value, extra)
    if kind == _TIME:
        return _time(value)
    if kind == _MAP:
        _map(value)
        return value
    return _scalar(value, extra, kind)


def _map(value: Any) -> None:
    if type(value) is not dict:
        raise _Declined
    for k, v in value.items():
        if type(k) is not str or type(v) is not str:
            raise _Declined


def _scalar(value: Any, bounds: Any, kind: int) -> Any:
    if kind == _STRING:
        if type(value) is not str:
            raise _Declined
        return value
    if kind == _INT:
        return _integer(value, bounds)
    if kind == _ENUM:
        # The label itself: the constructor looks it up (an unknown one: ValueError, declined).
        if type(value) is not str:
            raise _Declined
        return value
    raise _Declined


def build(data: dict[str, Any], message_class: type[Message]) -> Message | None:
    """A ``message_class`` filled from ``data`` as ParseDict fills one, or None when this
    module does not vouch for the result."""
    try:
        table = _CLASS_TABLES.get(message_class)
        if table is None:
            table = _CLASS_TABLES[message_class] = _table(message_class.DESCRIPTOR)
        return message_class(**_fields(data, table))
    except (_Declined, ValueError, TypeError, OverflowError):
        return None


def parse_dict(data: dict[str, Any], message: Message) -> Message | None:
    """``message`` filled from ``data`` as ParseDict fills it, or None when this module does
    not vouch for the result (``message`` is then to be thrown away)."""
    built = build(data, type(message))
    if built is None:
        return None
    message.MergeFrom(built)
    return message
