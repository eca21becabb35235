"""Identifier normalisation: one canonical spelling per identifier, so exact matching works.

The spellings are the shared ones (``svod_contacts``): phones in E.164 (RU is the default
region for national formats such as ``8 (916) ...``), e-mails trimmed, lower-cased and
checked by email-validator's syntax rules, card numbers without spaces and dashes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from svod_contacts.cards import normalize_card
from svod_contacts.emails import normalize_email
from svod_contacts.identifiers import NAMESPACED_NAMES, TYPE_NAMES, IdentifierType
from svod_contacts.phones import DEFAULT_REGION, normalize_phone
from svod_runtime.errors import ViolationCollector

__all__ = [
    "DEFAULT_REGION",
    "MAX_VALUE_LENGTH",
    "NAMESPACED",
    "TYPES",
    "IdentifierKey",
    "normalize_email",
    "normalize_identifiers",
    "normalize_phone",
    "normalize_value",
]

MAX_VALUE_LENGTH = 256
TYPES = TYPE_NAMES
# Types whose values only mean something within a namespace (issuing system or custom type).
NAMESPACED = NAMESPACED_NAMES


class BlockReason(enum.StrEnum):
    """Why an identifier value may never link (stored in ``blocked_identifiers.reason`` and
    shown as ``IdentifierAnswer`` / explain reasons; the values are the stored ones)."""

    # Named in the rules (``IdentifierRule.blocked_values``).
    CONFIGURED = "configured"
    # A till placeholder by its pattern (+7 999 999-99-99), unless the rules link them.
    PLACEHOLDER = "placeholder"
    # Shared by more people than the rules allow (the frequency blocklist).
    FREQUENCY = "frequency"


@dataclass(frozen=True, order=True)
class IdentifierKey:
    """A normalised identifier; equal keys are the same identifier."""

    type: str
    value: str
    namespace: str = ""

    @property
    def lock_key(self) -> str:
        return f"{self.type}\x1f{self.namespace}\x1f{self.value}"


def normalize_value(id_type: str, raw: str) -> str | None:
    """The canonical value, or None when the value cannot be an identifier of that type."""
    if id_type == IdentifierType.PHONE:
        return normalize_phone(raw)
    if id_type == IdentifierType.EMAIL:
        return normalize_email(raw)
    if id_type == IdentifierType.LOYALTY_CARD:
        return normalize_card(raw)
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
