"""Ids in requests: one check, one refusal (INVALID_ARGUMENT naming the field)."""

from __future__ import annotations

import uuid

from svod_runtime.errors import FieldViolation, InvalidArgument

MUST_BE_UUID = "must be a UUID"
MUST_BE_CUSTOMER_ID = "must be a customer id (UUID)"


def is_uuid(value: str) -> bool:
    """Whether ``value`` is a UUID in any form Python reads (hex, hyphens, braces, urn)."""
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def parse_uuid(value: str, field: str, description: str = MUST_BE_UUID) -> str:
    """``value`` in the canonical form (lower case, hyphens); refused as ``field``'s violation
    with ``description`` when it is no UUID."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise InvalidArgument([FieldViolation(field, description)]) from None


def parse_customer_id(value: str, field: str = "customer_id") -> str:
    """A customer id (a UUID) in canonical form, else INVALID_ARGUMENT on ``field``."""
    return parse_uuid(value, field, MUST_BE_CUSTOMER_ID)
