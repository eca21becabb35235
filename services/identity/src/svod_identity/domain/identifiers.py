"""Identifier normalisation: one canonical spelling per identifier, so exact matching works.

Phones go to E.164 (RU is the default region for national formats such as ``8 (916) ...``),
e-mails are trimmed and lower-cased, card numbers lose spaces and dashes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers

from svod_runtime.errors import ViolationCollector

DEFAULT_REGION = "RU"
MAX_VALUE_LENGTH = 256
TYPES = (
    "email",
    "phone",
    "loyalty_card",
    "external_id",
    "device_id",
    "analytics_client_id",
    "custom",
)
# Types whose values only mean something within a namespace (issuing system or custom type).
NAMESPACED = ("external_id", "custom")

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_SEPARATORS = re.compile(r"[\s\-]+")


@dataclass(frozen=True, order=True)
class IdentifierKey:
    """A normalised identifier; equal keys are the same identifier."""

    type: str
    value: str
    namespace: str = ""

    @property
    def lock_key(self) -> str:
        return f"{self.type}\x1f{self.namespace}\x1f{self.value}"


def normalize_phone(raw: str) -> str | None:
    try:
        number = phonenumbers.parse(raw, DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(raw: str) -> str | None:
    value = raw.strip().lower()
    return value if _EMAIL.match(value) else None


def normalize_value(id_type: str, raw: str) -> str | None:
    """The canonical value, or None when the value cannot be an identifier of that type."""
    if id_type == "phone":
        return normalize_phone(raw)
    if id_type == "email":
        return normalize_email(raw)
    if id_type == "loyalty_card":
        value = _SEPARATORS.sub("", raw).upper()
        return value or None
    value = raw.strip()
    return value or None


def normalize_identifiers(
    raw: list[tuple[str, str, str]], field: str = "identifiers"
) -> tuple[IdentifierKey, ...]:
    """Normalises (type, value, namespace) triples; reports every bad one at once.

    Duplicates after normalisation (``8 916...`` and ``+7 916...`` in one record) collapse.
    """
    errors = ViolationCollector()
    keys: list[IdentifierKey] = []
    if not raw:
        errors.add(field, "at least one identifier is required")
    for index, (id_type, value, namespace) in enumerate(raw):
        path = f"{field}[{index}]"
        if id_type not in TYPES:
            errors.add(f"{path}.type", "unknown or unspecified identifier type")
            continue
        if not value.strip():
            errors.add(f"{path}.value", "must not be empty")
            continue
        if len(value) > MAX_VALUE_LENGTH:
            errors.add(f"{path}.value", f"longer than {MAX_VALUE_LENGTH} characters")
            continue
        if id_type in NAMESPACED and not namespace.strip():
            errors.add(f"{path}.namespace", f"required for {id_type} identifiers")
            continue
        normalized = normalize_value(id_type, value)
        if normalized is None:
            errors.add(f"{path}.value", f"not a valid {id_type.replace('_', ' ')}")
            continue
        ns = namespace.strip().lower() if id_type in NAMESPACED else ""
        keys.append(IdentifierKey(id_type, normalized, ns))
    errors.raise_if_any()
    return tuple(sorted(set(keys)))
