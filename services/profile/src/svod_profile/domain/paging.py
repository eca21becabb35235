"""Opaque page tokens (keyset pagination: stable under inserts, no OFFSET scans)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid

from svod_profile.domain.events import EventFact
from svod_runtime import bounds
from svod_runtime.bounds import MAX_PAGE_TOKEN
from svod_runtime.errors import FieldViolation, InvalidArgument


def _encode(values: list[str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode()


def _decode(token: str, expected: int) -> list[str]:
    values = None
    if len(token) <= MAX_PAGE_TOKEN:
        try:
            values = json.loads(base64.urlsafe_b64decode(token.encode()))
        except (binascii.Error, ValueError):
            values = None
    if (
        not isinstance(values, list)
        or len(values) != expected
        or not all(isinstance(v, str) and "\x00" not in v for v in values)
    ):
        raise InvalidArgument([FieldViolation("page_token", "not a token this API issued")])
    return values


def encode_timeline_token(last: EventFact) -> str:
    return _encode([last.occurred_at.isoformat(), last.source, last.message_id])


def decode_timeline_token(token: str) -> tuple[dt.datetime, str, str] | None:
    if not token:
        return None
    at, source, message_id = _decode(token, 3)
    try:
        when = dt.datetime.fromisoformat(at)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None or not bounds.datetime_in_range(when):
        raise InvalidArgument([FieldViolation("page_token", "malformed")])
    return when, source, message_id


def encode_key_token(key: str) -> str:
    return _encode([key])


def decode_key_token(token: str) -> str | None:
    if not token:
        return None
    (key,) = _decode(token, 1)
    try:
        uuid.UUID(key)
    except ValueError:
        raise InvalidArgument([FieldViolation("page_token", "malformed")]) from None
    return key
