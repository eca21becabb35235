"""Opaque page tokens (keyset pagination: stable under inserts, no OFFSET scans)."""

from __future__ import annotations

import datetime as dt

from svod_profile.domain.events import EventFact
from svod_runtime.errors import FieldViolation, InvalidArgument
from svod_runtime.ids import is_uuid
from svod_runtime.paging import NOT_A_TOKEN, decode_page_token, encode_page_token, token_time


def encode_timeline_token(last: EventFact) -> str:
    return encode_page_token([last.occurred_at.isoformat(), last.source, last.message_id])


def decode_timeline_token(token: str) -> tuple[dt.datetime, str, str] | None:
    if not token:
        return None
    at, source, message_id = decode_page_token(token, 3)
    return token_time(at), source, message_id


def encode_key_token(key: str) -> str:
    return encode_page_token([key])


def decode_key_token(token: str) -> str | None:
    if not token:
        return None
    (key,) = decode_page_token(token, 1)
    if not is_uuid(key):
        raise InvalidArgument([FieldViolation("page_token", NOT_A_TOKEN)])
    return key
