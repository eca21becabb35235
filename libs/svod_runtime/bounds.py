"""Bounds every service applies at its door, defined once so that nothing one service accepts
can fail in another on a bound (a Track total that overflows profile's ``numeric`` column, a
timestamp Python cannot represent, a NUL character PostgreSQL cannot store).

Each limit here is documented on its field in the protos (the API contract); the checks are pure
(plain values in, field violations out) and report into a :class:`ViolationCollector`, so a
request names all its bad fields at once.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Final

from svod_runtime.errors import FieldViolation, InvalidArgument, ViolationCollector

# -- time ------------------------------------------------------------------------------------
# Every timestamp a request carries lies in [EARLIEST_TIME, LATEST_TIME): a CDP holds history
# back to legacy imports and nothing later than this century. Python's datetime stops at year
# 9999 (protobuf's Timestamp allows seconds far beyond), so unchecked values used to raise
# OverflowError (INTERNAL); within these years every service can compute and store them.
EARLIEST_TIME: Final = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
LATEST_TIME: Final = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
EARLIEST_SECONDS: Final = int((EARLIEST_TIME - _EPOCH).total_seconds())
LATEST_SECONDS: Final = int((LATEST_TIME - _EPOCH).total_seconds())
MAX_NANOS: Final = 999_999_999
TIME_RANGE_TEXT: Final = "must be from 1900-01-01 up to 2100-01-01 (UTC), nanos 0-999999999"
# How far in the future a client's clock may be ahead of the server's.
FUTURE_TOLERANCE: Final = dt.timedelta(minutes=5)


def timestamp_in_range(seconds: int, nanos: int) -> bool:
    return EARLIEST_SECONDS <= seconds < LATEST_SECONDS and 0 <= nanos <= MAX_NANOS


def datetime_in_range(value: dt.datetime) -> bool:
    return EARLIEST_TIME <= value < LATEST_TIME


# -- money -----------------------------------------------------------------------------------
# An amount (a total, a unit price, a line's discount, a line's discounts added up) is at most
# ten billion units of the currency: far above any retail order, and within what profile's
# ``numeric(20, 9)`` columns hold (below 10^11).
MAX_AMOUNT_UNITS: Final = 10_000_000_000
MAX_AMOUNT: Final = Decimal(MAX_AMOUNT_UNITS)
NANO: Final = Decimal("0.000000001")
MONEY_RANGE_TEXT: Final = (
    f"must be from 0 to {MAX_AMOUNT_UNITS:,} units, nanos 0-999999999 (not negative)"
)


def amount_violation(units: int, nanos: int) -> str:
    """Why a non-negative google.type.Money amount is out of bounds, or ''."""
    if units < 0 or nanos < 0:
        return "must not be negative"
    if nanos > MAX_NANOS:
        return "nanos must be 0-999999999"
    if units > MAX_AMOUNT_UNITS or (units == MAX_AMOUNT_UNITS and nanos):
        return f"at most {MAX_AMOUNT_UNITS:,} units"
    return ""


def amount_of(units: int, nanos: int) -> Decimal:
    return Decimal(units) + Decimal(nanos) * NANO


def order_discount(lines: Iterable[tuple[Decimal, int]]) -> Decimal:
    """The discount of an order: each line's discount (per unit) times its quantity, added up.
    Ingestion bounds it and profile stores it, so both compute it here."""
    return sum((discount * max(quantity, 1) for discount, quantity in lines), Decimal(0))


# -- counts ----------------------------------------------------------------------------------
# Quantity of one order line, and loyalty points of one event.
MAX_QUANTITY: Final = 1_000_000
MAX_LOYALTY_POINTS: Final = 1_000_000_000

# -- text and repeated fields of the shared vocabulary (svod.common.v1) ----------------------
MAX_SOURCE: Final = 64
MAX_MESSAGE_ID: Final = 128
MAX_IDENTIFIERS: Final = 50
MAX_IDENTIFIER_VALUE: Final = 256
MAX_NAMESPACE: Final = 64
MAX_NAME: Final = 200
MAX_ADDRESSES: Final = 10
MAX_COUNTRY_CODE: Final = 8
MAX_POSTAL_CODE: Final = 32
MAX_PLACE: Final = 200  # region, city
MAX_ADDRESS_LINE: Final = 500
MAX_ATTRIBUTES: Final = 100
MAX_ATTRIBUTE_NAME: Final = 64
MAX_ATTRIBUTE_VALUE: Final = 1000
MAX_LINES: Final = 1000
MAX_SKU: Final = 128
MAX_PRODUCT_NAME: Final = 500
MAX_CATEGORY: Final = 200
MAX_ORDER_ID: Final = 128
MAX_REFERENCE_ID: Final = 128
MAX_CONTACT_CHANNEL: Final = 32
MAX_PROPERTIES: Final = 50
MAX_PROPERTY_NAME: Final = 64
MAX_PROPERTY_VALUE: Final = 1000
# Free text an operator types (reasons, actors, display names, descriptions).
MAX_ACTOR: Final = 200
MAX_REASON: Final = 1000
# Ids Svod hands out (customer ids are UUIDs; review items, receipts too).
MAX_ID: Final = 64
# Refs of one ErasePayloads / SplitCustomer call.
MAX_REFS: Final = 10_000
# One message of a front-door call, serialised: a batch of a relay pass (64 messages) then stays
# far below the 16 MiB a service receives in one call.
MAX_MESSAGE_BYTES: Final = 128 * 1024
# Messages of one IdentifyStream / TrackStream call.
MAX_STREAM_MESSAGES: Final = 100_000
# Page sizes: 0 means the RPC's default; more than the maximum is served as the maximum.
MAX_PAGE_SIZE: Final = 1000
MAX_PAGE_TOKEN: Final = 512


def text_violation(value: str, max_length: int) -> str:
    """Why a text value cannot be stored, or ''. PostgreSQL text and jsonb cannot hold NUL."""
    if len(value) > max_length:
        return f"longer than {max_length} characters"
    if "\x00" in value:
        return "must not contain NUL characters"
    return ""


def check_text(
    value: str, field: str, max_length: int, errors: ViolationCollector, *, required: bool = False
) -> bool:
    """Adds a violation when ``value`` is too long, holds NUL, or is required and blank."""
    if required and not value.strip():
        errors.add(field, "required")
        return False
    why = text_violation(value, max_length)
    if why:
        errors.add(field, why)
        return False
    return True


def check_count(count: int, field: str, maximum: int, errors: ViolationCollector) -> bool:
    if count > maximum:
        errors.add(field, f"at most {maximum:,}")
        return False
    return True


def check_page_size(page_size: int, field: str, errors: ViolationCollector) -> None:
    """Negative sizes are refused; 0 is the default and larger sizes are capped (AIP-158)."""
    if page_size < 0:
        errors.add(field, "must not be negative")


def check_page_token(token: str, field: str, errors: ViolationCollector) -> None:
    check_text(token, field, MAX_PAGE_TOKEN, errors)


def check_string_map(
    items: Mapping[str, str],
    field: str,
    errors: ViolationCollector,
    *,
    max_items: int,
    max_key: int,
    max_value: int,
) -> None:
    """A ``map<string, string>``: at most ``max_items`` entries, non-empty bounded keys,
    bounded values; violations name ``field[key]``."""
    if not check_count(len(items), field, max_items, errors):
        return
    for key, value in items.items():
        here = f"{field}[{key[:max_key]}]"
        if not key:
            errors.add(field, "keys must not be empty")
        else:
            check_text(key, field if len(key) > max_key else here, max_key, errors)
        check_text(value, here, max_value, errors)


def check_identifier_texts(
    identifiers: Sequence[tuple[object, str, str]], field: str, errors: ViolationCollector
) -> None:
    """How many identifiers and how long their texts are ((type, value, namespace) triples);
    what a valid value of each type is stays with the services."""
    if not check_count(len(identifiers), field, MAX_IDENTIFIERS, errors):
        return
    for index, (_, value, namespace) in enumerate(identifiers):
        check_text(value, f"{field}[{index}].value", MAX_IDENTIFIER_VALUE, errors)
        check_text(namespace, f"{field}[{index}].namespace", MAX_NAMESPACE, errors)


NAME_PARTS: Final = ("first_name", "last_name", "middle_name", "full_name")
ADDRESS_PARTS: Final = {
    "country_code": MAX_COUNTRY_CODE,
    "postal_code": MAX_POSTAL_CODE,
    "region": MAX_PLACE,
    "city": MAX_PLACE,
    "address_line": MAX_ADDRESS_LINE,
}


def check_name(name: Mapping[str, str], field: str, errors: ViolationCollector) -> None:
    for part, value in name.items():
        check_text(value, f"{field}.{part}", MAX_NAME, errors)


def check_addresses(
    addresses: Sequence[Mapping[str, str]], field: str, errors: ViolationCollector
) -> None:
    if not check_count(len(addresses), field, MAX_ADDRESSES, errors):
        return
    for index, address in enumerate(addresses):
        for part, value in address.items():
            check_text(value, f"{field}[{index}].{part}", ADDRESS_PARTS.get(part, 0), errors)


def check_attributes(attributes: Mapping[str, str], field: str, errors: ViolationCollector) -> None:
    check_string_map(
        attributes,
        field,
        errors,
        max_items=MAX_ATTRIBUTES,
        max_key=MAX_ATTRIBUTE_NAME,
        max_value=MAX_ATTRIBUTE_VALUE,
    )


def check_properties(properties: Mapping[str, str], field: str, errors: ViolationCollector) -> None:
    check_string_map(
        properties,
        field,
        errors,
        max_items=MAX_PROPERTIES,
        max_key=MAX_PROPERTY_NAME,
        max_value=MAX_PROPERTY_VALUE,
    )


# RecordRef.source: what every service accepts as a source's name.
SOURCE_PATTERN: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
SOURCE_TEXT: Final = "1-64 characters of [a-z0-9._-], starting with a letter or digit"


def check_record_ref(source: str, message_id: str, field: str, errors: ViolationCollector) -> None:
    """A RecordRef: a well-formed source and a message id of 1-128 characters."""
    if not source:
        errors.add(f"{field}.source", "required")
    elif not SOURCE_PATTERN.fullmatch(source):
        errors.add(f"{field}.source", SOURCE_TEXT)
    if not message_id:
        errors.add(f"{field}.message_id", "required")
    else:
        check_text(message_id, f"{field}.message_id", MAX_MESSAGE_ID, errors)


def check_amount(units: int, nanos: int, field: str, errors: ViolationCollector) -> bool:
    why = amount_violation(units, nanos)
    if why:
        errors.add(field, why)
    return not why


def check_event_texts(
    order_id: str,
    reference_id: str,
    contact_channel: str,
    properties: Mapping[str, str],
    loyalty_points: int,
    field: str,
    errors: ViolationCollector,
) -> None:
    """The free-form parts of an Event (svod.common.v1.Event)."""
    check_text(order_id, f"{field}.order_id", MAX_ORDER_ID, errors)
    check_text(reference_id, f"{field}.reference_id", MAX_REFERENCE_ID, errors)
    check_text(contact_channel, f"{field}.contact_channel", MAX_CONTACT_CHANNEL, errors)
    check_properties(properties, f"{field}.properties", errors)
    if not 0 <= loyalty_points <= MAX_LOYALTY_POINTS:
        errors.add(f"{field}.loyalty_points", f"from 0 to {MAX_LOYALTY_POINTS:,}")


def check_line_texts(
    sku: str, product_name: str, category: str, field: str, errors: ViolationCollector
) -> None:
    check_text(sku, f"{field}.sku", MAX_SKU, errors)
    check_text(product_name, f"{field}.product_name", MAX_PRODUCT_NAME, errors)
    check_text(category, f"{field}.category", MAX_CATEGORY, errors)


def page_size(requested: int, default: int, maximum: int, field: str = "page_size") -> int:
    """The page size to serve: the default for 0, the maximum for more (AIP-158); a negative
    size is INVALID_ARGUMENT."""
    if requested < 0:
        raise InvalidArgument([FieldViolation(field, "must not be negative")])
    return min(requested or default, maximum)
