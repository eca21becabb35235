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
    "normalize_one",
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


def normalize_one(id_type: str, value: str, namespace: str) -> IdentifierKey | tuple[str, str]:
    """One (type, value, namespace) triple normalised, or why it is no identifier: the field
    under the identifier's path (``type``, ``value`` or ``namespace``) and the description."""
    if id_type not in TYPES:
        return "type", "unknown or unspecified identifier type"
    if not value.strip():
        return "value", "must not be empty"
    if len(value) > MAX_VALUE_LENGTH:
        return "value", f"longer than {MAX_VALUE_LENGTH} characters"
    if id_type in NAMESPACED:
        if not namespace.strip():
            return "namespace", f"required for {id_type} identifiers"
        ns = namespace.strip().lower()
    else:
        ns = ""
    normalized = normalize_value(id_type, value)
    if normalized is None:
        return "value", f"not a valid {id_type.replace('_', ' ')}"
    return IdentifierKey(id_type, normalized, ns)


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
        found = normalize_one(id_type, value, namespace)
        if isinstance(found, IdentifierKey):
            keys.append(found)
        else:
            errors.add(f"{field}[{index}].{found[0]}", found[1])
    errors.raise_if_any()
    return tuple(sorted(set(keys)))
