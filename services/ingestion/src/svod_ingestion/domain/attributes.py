"""Custom attributes a deployment declares (a clothes shop's favourite colour, a pet shop's pet
names), each with a type; values are checked on the way in.

Declared as JSON in ``SVOD_CUSTOM_ATTRIBUTES`` (see ``svod_runtime.custom_attributes``: the
types, and the canonical form the profile stores). A value that has no canonical form of its
type is refused here, so the profile never has to refuse one ingestion accepted. With no
declaration, any attribute is accepted as text.
"""

from __future__ import annotations

from collections.abc import Mapping

from svod_runtime.custom_attributes import EXPECTED, AttributeType, normalize, parse_declarations
from svod_runtime.errors import ViolationCollector

__all__ = ["MAX_VALUE", "parse_declarations", "validate_attributes"]

MAX_VALUE = 1000


def validate_attributes(
    values: Mapping[str, str],
    declared: Mapping[str, AttributeType | str],
    errors: ViolationCollector,
    path: str,
) -> None:
    for name, value in values.items():
        here = f"{path}[{name}]"
        if len(value) > MAX_VALUE:
            errors.add(here, f"longer than {MAX_VALUE} characters")
            continue
        if not declared:
            continue
        kind = declared.get(name)
        if kind is None:
            errors.add(here, "not a declared custom attribute")
            continue
        if normalize(kind, value) is None:
            errors.add(here, f"must be {EXPECTED[AttributeType(kind)]}")
