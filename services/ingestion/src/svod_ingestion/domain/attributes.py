"""Custom attributes a deployment declares (a clothes shop's favourite colour, a pet shop's pet
names), each with a type; values are checked on the way in.

Declared as JSON in ``SVOD_CUSTOM_ATTRIBUTES``: ``{"favourite_colour": "string",
"shoe_size": "number", "children": "integer", "vip": "bool", "anniversary": "date",
"pets": "list"}`` (a list is comma separated). With no declaration, any attribute is accepted
as text.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Mapping

from svod_runtime import bounds
from svod_runtime.errors import ViolationCollector

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_NAME = bounds.MAX_ATTRIBUTE_NAME
MAX_VALUE = bounds.MAX_ATTRIBUTE_VALUE


def _is_number(value: str) -> bool:
    try:
        float(value.replace(",", "."))
    except ValueError:
        return False
    return True


def _is_date(value: str) -> bool:
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


CHECKS: dict[str, tuple[Callable[[str], bool], str]] = {
    "string": (lambda v: True, "text"),
    "number": (_is_number, "a number"),
    "integer": (lambda v: v.lstrip("-").isdigit(), "a whole number"),
    "bool": (lambda v: v.lower() in ("true", "false", "1", "0", "yes", "no"), "true or false"),
    "date": (_is_date, "a date (YYYY-MM-DD)"),
    "list": (lambda v: all(part.strip() for part in v.split(",")), "a comma-separated list"),
}


def parse_declarations(raw: str) -> dict[str, str]:
    """Raises ValueError on a malformed declaration (the service refuses to start)."""
    if not raw.strip():
        return {}
    declared = json.loads(raw)
    for name, kind in declared.items():
        if not _NAME.match(name):
            raise ValueError(f"custom attribute name {name!r}: use [a-z][a-z0-9_]*")
        if kind not in CHECKS:
            raise ValueError(f"custom attribute {name}: unknown type {kind!r}")
    return dict(declared)


def validate_attributes(
    values: Mapping[str, str], declared: Mapping[str, str], errors: ViolationCollector, path: str
) -> None:
    for name, value in values.items():
        here = f"{path}[{name[:MAX_NAME]}]"
        if not name:
            errors.add(path, "names must not be empty")
            continue
        if not bounds.check_text(name, path if len(name) > MAX_NAME else here, MAX_NAME, errors):
            continue
        if not bounds.check_text(value, here, MAX_VALUE, errors):
            continue
        if not declared:
            continue
        kind = declared.get(name)
        if kind is None:
            errors.add(here, "not a declared custom attribute")
            continue
        check, expected = CHECKS[kind]
        if not check(value):
            errors.add(here, f"must be {expected}")
