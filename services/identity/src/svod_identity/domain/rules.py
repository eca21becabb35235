"""Deterministic matching rules as data: per identifier type priority, limits, blocked values.

Rules are stored (versioned, never edited in place) and changed over the API; this module
validates them and answers the questions resolution asks: may this identifier link at all,
which identifier wins, how many values of a type one customer may hold.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from svod_identity.domain.identifiers import (
    NAMESPACED,
    TYPES,
    BlockReason,
    IdentifierKey,
    normalize_value,
)
from svod_identity.domain.matching.contacts import is_dummy_phone
from svod_identity.domain.matching.model import (
    DEFAULT_LINK_THRESHOLD,
    DEFAULT_REVIEW_THRESHOLD,
)
from svod_runtime import bounds
from svod_runtime.errors import ViolationCollector

MAX_BLOCKED_VALUES = 10_000
# Identifier rules of one rule set (one per type and namespace).
MAX_IDENTIFIER_RULES = 100
# Default priorities: what identifies one person most reliably wins.
DEFAULT_PRIORITIES = {
    "loyalty_card": 100,
    "external_id": 90,
    "phone": 80,
    "email": 70,
    "custom": 50,
    "device_id": 40,
    "analytics_client_id": 30,
}
# An identifier on more than this many clearly different people stops linking.
DEFAULT_MAX_PEOPLE = 3


@dataclass(frozen=True)
class IdentifierRule:
    type: str
    namespace: str = ""
    priority: int = 0
    # Distinct values of this type (and namespace) one customer may have; 0 = unlimited.
    max_values_per_customer: int = 0
    # Normalised values that never link.
    blocked_values: frozenset[str] = frozenset()
    # 0 = no frequency blocklist for this type.
    max_people_per_value: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "namespace": self.namespace,
            "priority": self.priority,
            "max_values_per_customer": self.max_values_per_customer,
            "blocked_values": sorted(self.blocked_values),
            "max_people_per_value": self.max_people_per_value,
        }


@dataclass(frozen=True)
class Rules:
    version: int = 0
    identifier_rules: tuple[IdentifierRule, ...] = ()
    auto_link_threshold: float = DEFAULT_LINK_THRESHOLD
    review_threshold: float = DEFAULT_REVIEW_THRESHOLD
    link_placeholder_phones: bool = False
    fuzzy_disabled: bool = False
    updated_at: dt.datetime | None = None
    updated_by: str = ""
    _index: dict[tuple[str, str], IdentifierRule] = field(
        default_factory=dict, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        self._index.clear()
        for rule in self.identifier_rules:
            self._index[(rule.type, rule.namespace)] = rule

    def rule_for(self, key: IdentifierKey) -> IdentifierRule:
        """The namespace's own rule, else the type's, else a neutral one."""
        return (
            self._index.get((key.type, key.namespace))
            or self._index.get((key.type, ""))
            or IdentifierRule(key.type)
        )

    def limit_scope(self, key: IdentifierKey) -> tuple[str, str] | None:
        """What a per-customer limit counts for this key, or None when unlimited."""
        own = self._index.get((key.type, key.namespace))
        if own is not None and own.max_values_per_customer > 0:
            return (key.type, key.namespace)
        general = self._index.get((key.type, ""))
        if general is not None and general.max_values_per_customer > 0:
            # A type-wide rule limits each namespace separately (one account per shop).
            return (key.type, key.namespace)
        return None

    def block_reason(self, key: IdentifierKey) -> BlockReason | None:
        """Why a value may never link by these rules (configured, a placeholder), or None."""
        if key.value in self.rule_for(key).blocked_values:
            return BlockReason.CONFIGURED
        if key.type == "phone" and not self.link_placeholder_phones and is_dummy_phone(key.value):
            return BlockReason.PLACEHOLDER
        return None

    def priority(self, key: IdentifierKey) -> int:
        return self.rule_for(key).priority

    def to_dict(self) -> dict[str, Any]:
        return {
            "identifier_rules": [r.to_dict() for r in self.identifier_rules],
            "auto_link_threshold": self.auto_link_threshold,
            "review_threshold": self.review_threshold,
            "link_placeholder_phones": self.link_placeholder_phones,
            "fuzzy_disabled": self.fuzzy_disabled,
        }

    def with_version(self, version: int, at: dt.datetime | None, by: str) -> Rules:
        return replace(self, version=version, updated_at=at, updated_by=by, _index={})


def default_rules() -> Rules:
    return Rules(
        version=0,
        identifier_rules=tuple(
            IdentifierRule(t, "", DEFAULT_PRIORITIES[t], 0, frozenset(), DEFAULT_MAX_PEOPLE)
            for t in TYPES
        ),
        updated_by="default",
    )


def rules_from_dict(data: Mapping[str, Any], *, field_prefix: str = "rules") -> Rules:  # noqa: C901, PLR0912
    """Validates rules given as plain data (stored JSON or a converted request).

    Reports every bad field at once (INVALID_ARGUMENT with paths like
    ``rules.identifier_rules[1].blocked_values[0]``).
    """
    errors = ViolationCollector()
    seen: set[tuple[str, str]] = set()
    parsed: list[IdentifierRule] = []
    raw_rules = list(data.get("identifier_rules") or ())
    if len(raw_rules) > MAX_IDENTIFIER_RULES:
        errors.add(f"{field_prefix}.identifier_rules", f"at most {MAX_IDENTIFIER_RULES} rules")
        raw_rules = []
    for index, raw in enumerate(raw_rules):
        path = f"{field_prefix}.identifier_rules[{index}]"
        id_type = str(raw.get("type") or "")
        namespace = str(raw.get("namespace") or "").strip().lower()
        if id_type not in TYPES:
            errors.add(f"{path}.type", "unknown or unspecified identifier type")
            continue
        if not bounds.check_text(namespace, f"{path}.namespace", bounds.MAX_NAMESPACE, errors):
            continue
        if namespace and id_type not in NAMESPACED:
            errors.add(f"{path}.namespace", f"{id_type} identifiers have no namespace")
            continue
        if (id_type, namespace) in seen:
            errors.add(f"{path}.type", "a rule for this type and namespace is given twice")
            continue
        seen.add((id_type, namespace))
        numbers = {}
        for name in ("priority", "max_values_per_customer", "max_people_per_value"):
            value = int(raw.get(name) or 0)
            if name != "priority" and value < 0:
                errors.add(f"{path}.{name}", "must not be negative")
            if abs(value) > 1_000_000:
                errors.add(f"{path}.{name}", "out of range")
            numbers[name] = value
        blocked: set[str] = set()
        values = list(raw.get("blocked_values") or ())
        if len(values) > MAX_BLOCKED_VALUES:
            errors.add(f"{path}.blocked_values", f"at most {MAX_BLOCKED_VALUES} values")
            values = []
        for vi, value in enumerate(values):
            text = str(value)
            if not text.strip() or len(text) > 256 or "\x00" in text:
                errors.add(f"{path}.blocked_values[{vi}]", "must be 1-256 characters, no NUL")
                continue
            normalized = normalize_value(id_type, text)
            if normalized is None:
                errors.add(f"{path}.blocked_values[{vi}]", f"not a valid {id_type}")
                continue
            blocked.add(normalized)
        parsed.append(
            IdentifierRule(
                id_type,
                namespace,
                numbers["priority"],
                numbers["max_values_per_customer"],
                frozenset(blocked),
                numbers["max_people_per_value"],
            )
        )
    link = float(data.get("auto_link_threshold") or 0.0)
    review = float(data.get("review_threshold") or 0.0)
    if not 0.0 < link < 1.0:
        errors.add(f"{field_prefix}.auto_link_threshold", "must be a probability in (0, 1)")
    if not 0.0 < review < 1.0:
        errors.add(f"{field_prefix}.review_threshold", "must be a probability in (0, 1)")
    elif 0.0 < link < 1.0 and review > link:
        errors.add(f"{field_prefix}.review_threshold", "must not exceed auto_link_threshold")
    errors.raise_if_any()
    return Rules(
        identifier_rules=tuple(sorted(parsed, key=lambda r: (r.type, r.namespace))),
        auto_link_threshold=link,
        review_threshold=review,
        link_placeholder_phones=bool(data.get("link_placeholder_phones", False)),
        fuzzy_disabled=bool(data.get("fuzzy_disabled", False)),
    )


def ordered_by_priority(rules: Rules, keys: Iterable[IdentifierKey]) -> list[IdentifierKey]:
    return sorted(keys, key=lambda k: (-rules.priority(k), k))
