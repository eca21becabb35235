"""Opaque page tokens of keyset pagination: the position after a page's last row.

A token is the URL-safe base64 of a JSON list of strings (the sort key of the last row, e.g.
its time and id); callers check what the strings hold. Tokens are bounded (MAX_PAGE_TOKEN) and
anything else, a token of another RPC included, is refused as INVALID_ARGUMENT on the token's
field. Identity's and profile's tokens have always had this form, so tokens they issued before
this module decode unchanged. Tokens of one number issued before it (ingestion's base64 of
the bare number, the dead-letter listing's bare number) decode as one-value tokens where the
caller accepts them (``bare=True``; ``number_token`` does).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Sequence

from svod_runtime.bounds import MAX_PAGE_TOKEN, datetime_in_range
from svod_runtime.errors import FieldViolation, InvalidArgument

NOT_A_TOKEN = "not a token from this API"


def encode_page_token(values: Sequence[str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode()


def decode_page_token(
    token: str, arity: int, *, field: str = "page_token", bare: bool = False
) -> list[str]:
    """The ``arity`` strings of a token this API issued; ``bare``: a one-value token may be
    the value alone in decimal digits, or its base64 (tokens issued before this codec)."""
    if bare and arity == 1 and token.isascii() and token.isdigit() and len(token) <= 19:
        return [token]
    values = None
    if len(token) <= MAX_PAGE_TOKEN:
        try:
            values = json.loads(base64.urlsafe_b64decode(token.encode()))
        except ValueError:  # base64, UTF-8 and JSON errors alike
            values = None
    if bare and arity == 1 and isinstance(values, int) and not isinstance(values, bool):
        values = [str(values)]
    if (
        not isinstance(values, list)
        or len(values) != arity
        or not all(isinstance(v, str) and "\x00" not in v for v in values)
    ):
        raise InvalidArgument([FieldViolation(field, NOT_A_TOKEN)])
    return values


def number_token(token: str, *, field: str = "page_token") -> int:
    """The row key (a Postgres bigint, 0 or more) a one-number token holds."""
    (value,) = decode_page_token(token, 1, field=field, bare=True)
    if not (value.isascii() and value.isdigit()) or len(value) > 19 or int(value) >= 2**63:
        raise InvalidArgument([FieldViolation(field, NOT_A_TOKEN)])
    return int(value)


def token_time(value: str, field: str = "page_token") -> dt.datetime:
    """A time a token holds (ISO 8601 with its offset, within the range Postgres stores)."""
    try:
        at = dt.datetime.fromisoformat(value)
    except ValueError:
        at = None
    if at is None or at.tzinfo is None or not datetime_in_range(at):
        raise InvalidArgument([FieldViolation(field, NOT_A_TOKEN)])
    return at
