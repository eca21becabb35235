"""Opaque page tokens (keyset pagination: stable under inserts, no OFFSET scans)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json

from svod_profile.domain.events import EventFact
from svod_runtime.errors import FieldViolation, InvalidArgument


def _encode(values: list[str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode()


def _decode(token: str, expected: int) -> list[str]:
    try:
        values = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError):
        values = None
    if not isinstance(values, list) or len(values) != expected:
        raise InvalidArgument([FieldViolation("page_token", "not a token this API issued")])
    return [str(v) for v in values]


def encode_timeline_token(last: EventFact) -> str:
    return _encode([last.occurred_at.isoformat(), last.source, last.message_id])


def decode_timeline_token(token: str) -> tuple[dt.datetime, str, str] | None:
    if not token:
        return None
    at, source, message_id = _decode(token, 3)
    try:
        return dt.datetime.fromisoformat(at), source, message_id
    except ValueError:
        raise InvalidArgument([FieldViolation("page_token", "malformed")]) from None


def encode_key_token(key: str) -> str:
    return _encode([key])


def decode_key_token(token: str) -> str | None:
    return _decode(token, 1)[0] if token else None
