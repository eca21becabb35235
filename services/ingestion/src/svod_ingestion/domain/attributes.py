"""Custom attributes a deployment declares (a clothes shop's favourite colour, a pet shop's pet
names), each with a type; values are checked on the way in.

Declared as JSON in ``SVOD_CUSTOM_ATTRIBUTES`` (see ``svod_runtime.custom_attributes``: the
types, and the canonical form the profile stores). A value that has no canonical form of its
type is refused here, so the profile never has to refuse one ingestion accepted. With no
declaration, any attribute is accepted as text.
"""

from __future__ import annotations

from collections.abc import Mapping

from svod_runtime import bounds
from svod_runtime.custom_attributes import EXPECTED, AttributeType, normalize, parse_declarations
from svod_runtime.errors import ViolationCollector

__all__ = ["MAX_NAME", "MAX_VALUE", "parse_declarations", "validate_attributes"]

MAX_NAME = bounds.MAX_ATTRIBUTE_NAME
MAX_VALUE = bounds.MAX_ATTRIBUTE_VALUE


def validate_attributes(
    values: Mapping[str, str],
    declared: Mapping[str, AttributeType | str],
    errors: ViolationCollector,
    path: str,
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
        if normalize(kind, value) is None:
            errors.add(here, f"must be {EXPECTED[AttributeType(kind)]}")
