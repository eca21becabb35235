"""Custom attributes a deployment declares (a shoe shop's shoe size, a pet shop's pets), each
with a type, and the one canonical text form of a value of each type.

Declared as JSON in ``SVOD_CUSTOM_ATTRIBUTES``: ``{"favourite_colour": "string",
"shoe_size": "number", "children": "integer", "vip": "bool", "anniversary": "date",
"pets": "list"}``. Ingestion refuses a value that is not of its type, the profile stores the
canonical form (so "38,5" is stored as 38.5 and "да" as true), and segmentation compares by the
type (numbers as numbers, dates as dates). With no declaration, any attribute is text.

Canonical forms: number - a plain decimal ("38.5", "1200", no exponent, no trailing zeros);
integer - digits with an optional minus; bool - "true"/"false"; date - ISO "YYYY-MM-DD"; list -
items trimmed and joined by ", "; string - as given.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal, InvalidOperation
from enum import StrEnum


class AttributeType(StrEnum):
    STRING = "string"
    NUMBER = "number"
    INTEGER = "integer"
    BOOL = "bool"
    DATE = "date"
    LIST = "list"


# What a value must be, for refusals ("must be a number").
EXPECTED = {
    AttributeType.STRING: "text",
    AttributeType.NUMBER: "a number",
    AttributeType.INTEGER: "a whole number",
    AttributeType.BOOL: "true or false (yes/no, да/нет, 1/0)",
    AttributeType.DATE: "a date (YYYY-MM-DD or DD.MM.YYYY)",
    AttributeType.LIST: "a comma-separated list",
}
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# Spaces that group thousands: "1 200", "1 200" (no-break), "1 200" (narrow no-break).
_GROUPING = re.compile(r"[\s\u00a0\u202f']")
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_TRUE = frozenset({"true", "yes", "y", "1", "on", "да", "д"})
_FALSE = frozenset({"false", "no", "n", "0", "off", "нет", "н"})
_RUSSIAN_DATE = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})$")
# Magnitude of numbers kept (a shoe size, a child count, a budget): beyond it a value is a slip.
MAX_DIGITS = 30


def parse_declarations(raw: str) -> dict[str, AttributeType]:
    """Raises ValueError on a malformed declaration (a service refuses to start)."""
    if not raw.strip():
        return {}
    declared = json.loads(raw)
    if not isinstance(declared, dict):
        raise ValueError("custom attributes: a JSON object of name -> type")
    out: dict[str, AttributeType] = {}
    for name, kind in declared.items():
        if not _NAME.match(name):
            raise ValueError(f"custom attribute name {name!r}: use [a-z][a-z0-9_]*")
        try:
            out[name] = AttributeType(kind)
        except ValueError:
            known = ", ".join(t.value for t in AttributeType)
            raise ValueError(f"custom attribute {name}: unknown type {kind!r} ({known})") from None
    return out


def _number(value: str) -> Decimal | None:
    text = _GROUPING.sub("", value.strip())
    if "," in text and "." in text:
        # "1,200.50" or "1.200,50": the last separator is the decimal one.
        decimal = "," if text.rfind(",") > text.rfind(".") else "."
        text = text.replace("." if decimal == "," else ",", "").replace(",", ".")
    elif text.count(",") == 1:
        text = text.replace(",", ".")  # "38,5": the Russian decimal comma
    if not _PLAIN_NUMBER.match(text):
        return None
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    if len(number.as_tuple().digits) > MAX_DIGITS:
        return None
    return number


def _plain(number: Decimal) -> str:
    text = f"{number.normalize():f}"
    return "0" if text in ("-0", "+0") else text


def normalize(kind: AttributeType | str, value: str) -> str | None:
    """The canonical text of ``value`` as ``kind``; None when it is not one."""
    kind = AttributeType(kind)
    if kind is AttributeType.STRING:
        return value
    if kind is AttributeType.NUMBER:
        number = _number(value)
        return None if number is None else _plain(number)
    if kind is AttributeType.INTEGER:
        number = _number(value)
        if number is None or number != number.to_integral_value():
            return None
        return str(int(number))
    if kind is AttributeType.BOOL:
        word = value.strip().casefold()
        return "true" if word in _TRUE else "false" if word in _FALSE else None
    if kind is AttributeType.DATE:
        return _date(value.strip())
    items = [item.strip() for item in value.split(",")]
    if not all(items):
        return None
    return ", ".join(items)


def _date(text: str) -> str | None:
    russian = _RUSSIAN_DATE.match(text)
    try:
        if russian:
            day, month, year = (int(g) for g in russian.groups())
            return dt.date(year, month, day).isoformat()
        if len(text) == 10:
            return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        return None
    return None


def list_items(canonical: str) -> list[str]:
    """The items of a list value."""
    return [item.strip() for item in canonical.split(",") if item.strip()]
