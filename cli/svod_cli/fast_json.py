"""A faster ``json_format.ParseDict`` for the plain messages of an import file (issue 22).

``svod import events FILE`` spent most of its CPU in protobuf's pure-Python ParseDict: 372 of
the command's 662 py-spy samples on 100,000 order events (bench_events_path, about 90 us per
event), more than reading, sending and waiting together. ``parse_dict`` fills the message from
tables made once per message type, and only for what it knows to give exactly ParseDict's
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

from google.protobuf.descriptor import Descriptor, FieldDescriptor
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
_UTC = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?Z"
)
_TIMESTAMP = "google.protobuf.Timestamp"
_EPOCH = _dt.datetime(1970, 1, 1)

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


# Per message type, by field name and JSON name: (name, kind, repeated, oneof or "", field).
# Plain tuples: reading a upb descriptor's attributes costs more than the fill itself.
_Entry = tuple[str, int | None, bool, str, FieldDescriptor]
_TABLES: dict[str, dict[str, _Entry]] = {}


def _table(descriptor: Descriptor) -> dict[str, _Entry]:
    table = _TABLES.get(descriptor.full_name)
    if table is None:
        table = {}
        for field in descriptor.fields:
            kind = _kind(field)
            oneof = field.containing_oneof
            entry = (
                field.name,
                kind,
                field.is_repeated and kind != _MAP,
                oneof.name if oneof is not None else "",
                field,
            )
            table[field.name] = entry
            table[field.json_name] = entry
        _TABLES[descriptor.full_name] = table
    return table


def _integer(value: Any, field: FieldDescriptor) -> int:
    if type(value) is int:
        number = value
    elif type(value) is str and _DIGITS.fullmatch(value):
        number = int(value)
    else:
        raise _Declined
    low, high = _RANGES[field.type]
    if not low <= number <= high:
        raise _Declined
    return number


def _enum(value: Any, field: FieldDescriptor) -> int:
    if type(value) is not str:
        raise _Declined
    enum = field.enum_type
    found = enum.values_by_name.get(value) if enum is not None else None
    if found is None:
        raise _Declined
    return int(found.number)


def _time(value: Any, stamp: Any) -> None:
    if type(value) is not str:
        raise _Declined
    parts = _UTC.fullmatch(value)
    if parts is None:
        raise _Declined
    # datetime refuses a day, hour or second out of range (ValueError: declined).
    year, month, day, hour, minute, second = (int(p) for p in parts.groups()[:6])
    delta = _dt.datetime(year, month, day, hour, minute, second) - _EPOCH
    fraction = parts.group(7)
    stamp.seconds = delta.days * 86400 + delta.seconds
    stamp.nanos = int(fraction.ljust(9, "0")) if fraction else 0


def _fill(data: Any, message: Any) -> None:
    if type(data) is not dict:
        raise _Declined
    table = _table(message.DESCRIPTOR)
    seen: set[str] = set()
    for key, value in data.items():
        entry = table.get(key)
        if entry is None or value is None:
            raise _Declined
        name, kind, repeated, oneof, field = entry
        if kind is None or name in seen:
            raise _Declined
        seen.add(name)
        if oneof:
            if "." + oneof in seen:
                raise _Declined
            seen.add("." + oneof)
        _set(message, name, kind, repeated, field, value)


def _set(message: Any, name: str, kind: int, repeated: bool, field: Any, value: Any) -> None:
    if repeated:
        if type(value) is not list:
            raise _Declined
        target = getattr(message, name)
        if kind == _MESSAGE:
            for item in value:
                _fill(item, target.add())
        elif kind == _TIME:
            for item in value:
                _time(item, target.add())
        else:
            target.extend(_scalar(item, field, kind) for item in value)
    elif kind == _MESSAGE:
        getattr(message, name).SetInParent()
        _fill(value, getattr(message, name))
    elif kind == _TIME:
        _time(value, getattr(message, name))
    elif kind == _MAP:
        _map(value, getattr(message, name))
    else:
        setattr(message, name, _scalar(value, field, kind))


def _map(value: Any, target: Any) -> None:
    if type(value) is not dict:
        raise _Declined
    for k, v in value.items():
        if type(k) is not str or type(v) is not str:
            raise _Declined
        target[k] = v


def _scalar(value: Any, field: FieldDescriptor, kind: int) -> Any:
    if kind == _STRING:
        if type(value) is not str:
            raise _Declined
        return value
    if kind == _INT:
        return _integer(value, field)
    if kind == _ENUM:
        return _enum(value, field)
    raise _Declined


def parse_dict(data: dict[str, Any], message: Message) -> Message | None:
    """``message`` filled from ``data`` as ParseDict fills it, or None when this module does
    not vouch for the result (``message`` is then to be thrown away)."""
    try:
        _fill(data, message)
    except (_Declined, ValueError, TypeError, OverflowError):
        return None
    return message
