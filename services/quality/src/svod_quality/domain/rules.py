"""Validation rules as data: which check runs on which field, for which source, and what a
failure does (``reject`` the record or ``flag`` it).

:func:`parse_rule` turns a definition (e.g. from the API or a config file) into a
:class:`ValidationRule`, or raises :class:`RuleDefinitionError` naming every bad part of it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, NamedTuple

from svod_quality.domain.checks import CHECKS, CheckFn, is_known_field, parse_param
from svod_quality.domain.model import FindingAction

_RULE_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_RULE_ID_FORMAT: Final = "1-64 characters of [A-Za-z0-9._:-] starting with a letter or digit"
# The source name format of RecordRef.source.
_SOURCE: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_KEYS: Final = ("rule_id", "field", "source", "action", "check", "parameters")


class RuleAction(StrEnum):
    """What a failed rule does to the record (the proto's ``ValidationRule.action``)."""

    REJECT = "reject"
    FLAG = "flag"

    @property
    def finding(self) -> FindingAction:
        return FindingAction.REJECTED if self is RuleAction.REJECT else FindingAction.FLAGGED


ACTIONS: Final = frozenset(a.value for a in RuleAction)


class RuleChange(StrEnum):
    """What happened to a rule, as its change log records it."""

    CREATED = "created"
    DELETED = "deleted"


class RuleViolation(NamedTuple):
    """One bad part of a rule definition: ``field`` is the definition's key (or
    ``parameters.<name>``), as the proto's ``ValidationRule`` spells it."""

    field: str
    description: str


class RuleDefinitionError(ValueError):
    """A rule definition is unusable; ``violations`` lists every reason."""

    def __init__(self, violations: list[RuleViolation]) -> None:
        self.violations = violations
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in violations))


@dataclass(frozen=True, eq=True)
class ValidationRule:
    """A checked rule. ``source`` None applies to every source. ``parameters`` keep the
    definition's text (for storage and the API); ``typed_parameters`` are what the check uses,
    defaults filled in."""

    rule_id: str
    field: str
    source: str | None
    action: RuleAction
    check: str
    parameters: Mapping[str, str] = dataclasses.field(default_factory=dict)
    typed_parameters: Mapping[str, Any] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        violations, typed = _validate(
            self.rule_id, self.field, self.source, self.action, self.check, self.parameters
        )
        if violations:
            raise RuleDefinitionError(violations)
        # Frozen: assign the derived values through object.__setattr__.
        object.__setattr__(self, "action", RuleAction(self.action))
        object.__setattr__(self, "parameters", {k: str(v) for k, v in self.parameters.items()})
        object.__setattr__(self, "typed_parameters", typed)

    def applies_to_source(self, source: str) -> bool:
        return self.source is None or self.source == source

    def to_dict(self) -> dict[str, Any]:
        """The definition back, in the shape :func:`parse_rule` reads (source "" = all)."""
        return {
            "rule_id": self.rule_id,
            "field": self.field,
            "source": self.source or "",
            "action": self.action,
            "check": self.check,
            "parameters": dict(self.parameters),
        }


def _validate(  # noqa: C901
    rule_id: str,
    field_name: str,
    source: str | None,
    action: str,
    check: str,
    parameters: Mapping[str, object],
) -> tuple[list[RuleViolation], dict[str, Any]]:
    bad: list[RuleViolation] = []
    if not _RULE_ID.fullmatch(rule_id):
        bad.append(RuleViolation("rule_id", _RULE_ID_FORMAT))
    if not is_known_field(field_name):
        bad.append(RuleViolation("field", f"unknown field {field_name!r}"))
    if source is not None and not _SOURCE.fullmatch(source):
        bad.append(RuleViolation("source", "empty (all sources) or 1-64 characters of [a-z0-9._-]"))
    if action not in ACTIONS:
        choices = ", ".join(RuleAction)
        bad.append(RuleViolation("action", f"must be one of {choices}, not {action!r}"))
    spec = CHECKS.get(check)
    if spec is None:
        bad.append(RuleViolation("check", f"unknown check {check!r}; known: {', '.join(CHECKS)}"))
        return bad, {}
    if is_known_field(field_name) and not spec.applies_to(field_name):
        where = ", ".join(sorted(spec.fields)) if spec.fields else "text fields"
        bad.append(RuleViolation("check", f"{check} applies to {where}, not {field_name}"))
    typed: dict[str, Any] = {}
    for name in parameters:
        if name not in spec.params:
            known = ", ".join(spec.params) or "none"
            bad.append(RuleViolation(f"parameters.{name}", f"unknown parameter (known: {known})"))
    for name, param in spec.params.items():
        if name not in parameters:
            if param.required:
                bad.append(RuleViolation(f"parameters.{name}", f"required by {check}"))
            typed[name] = param.default
            continue
        value, error = parse_param(param, parameters[name])
        if error:
            bad.append(RuleViolation(f"parameters.{name}", error))
        typed[name] = value
    if check == "birth_date_plausible" and not bad and typed["min_age"] >= typed["max_age"]:
        bad.append(RuleViolation("parameters.min_age", "must be less than max_age"))
    return bad, typed


def _text(definition: Mapping[str, object], key: str, bad: list[RuleViolation]) -> str:
    value = definition.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        bad.append(RuleViolation(key, "must be a string"))
        return ""
    return value.strip()


def parse_rule(definition: Mapping[str, object]) -> ValidationRule:
    """A rule from a dict with keys rule_id, field, source, action, check, parameters.

    Raises :class:`RuleDefinitionError` listing every problem: unknown keys, wrong types, an
    unknown field or check, a check that does not fit the field, a bad action, missing,
    unknown or malformed parameters.
    """
    bad = [RuleViolation(key, "unknown key") for key in definition if key not in _KEYS]
    rule_id, field_name, action, check = (
        _text(definition, key, bad) for key in ("rule_id", "field", "action", "check")
    )
    source = _text(definition, "source", bad) or None
    params = definition.get("parameters") or {}
    if not isinstance(params, Mapping):
        bad.append(RuleViolation("parameters", "must be a mapping of name to value"))
        params = {}
    violations, _ = _validate(rule_id, field_name, source, action, check, params)
    # A key reported as a wrong type is also "empty"; report it once.
    seen = {v.field for v in bad}
    bad.extend(v for v in violations if v.field not in seen)
    if bad:
        raise RuleDefinitionError(bad)
    return ValidationRule(rule_id, field_name, source, RuleAction(action), check, dict(params))


# A sensible start for a deployment: flag what a person should look at, reject nothing.
DEFAULT_RULE_DEFINITIONS: Final = (
    {"rule_id": "default.email_not_disposable", "field": "email", "check": "email_not_disposable"},
    {"rule_id": "default.email_not_role", "field": "email", "check": "email_not_role"},
    {"rule_id": "default.birth_date", "field": "birth_date", "check": "birth_date_plausible"},
    {"rule_id": "default.first_name", "field": "first_name", "check": "name_plausible"},
    {"rule_id": "default.last_name", "field": "last_name", "check": "name_plausible"},
    {"rule_id": "default.postcode", "field": "postal_code", "check": "postcode_format"},
)


def default_rules() -> list[ValidationRule]:
    return [parse_rule({**d, "action": RuleAction.FLAG}) for d in DEFAULT_RULE_DEFINITIONS]


class PlannedCheck(NamedTuple):
    fn: CheckFn
    wants_empty: bool
    params: Mapping[str, Any]
    action: FindingAction  # rejected or flagged
    rule_id: str


class RuleSet:
    """Rules prepared for fast evaluation: per source, the checks to run grouped by field.

    Build one per batch (or whenever the rules change) and pass it for every record; a plain
    list of rules works too but is re-planned on each call.
    """

    def __init__(self, rules: Iterable[ValidationRule]) -> None:
        self.rules: tuple[ValidationRule, ...] = tuple(rules)
        self._plans: dict[str, tuple[tuple[str, tuple[PlannedCheck, ...]], ...]] = {}

    def plan(self, source: str) -> tuple[tuple[str, tuple[PlannedCheck, ...]], ...]:
        """(field, checks) pairs for ``source``, fields in order of their first rule."""
        plan = self._plans.get(source)
        if plan is None:
            grouped: dict[str, list[PlannedCheck]] = {}
            for rule in self.rules:
                if rule.applies_to_source(source):
                    spec = CHECKS[rule.check]
                    grouped.setdefault(rule.field, []).append(
                        PlannedCheck(
                            spec.fn,
                            spec.wants_empty,
                            rule.typed_parameters,
                            rule.action.finding,
                            rule.rule_id,
                        )
                    )
            plan = self._plans[source] = tuple((f, tuple(c)) for f, c in grouped.items())
        return plan
