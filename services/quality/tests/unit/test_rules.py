"""Rule definitions: parsing, and precise violations for malformed ones."""

from __future__ import annotations

import pytest

from svod_quality.domain.rules import (
    RuleDefinitionError,
    RuleViolation,
    ValidationRule,
    default_rules,
    parse_rule,
)


def _violations(definition: dict[str, object]) -> list[RuleViolation]:
    with pytest.raises(RuleDefinitionError) as caught:
        parse_rule(definition)
    return caught.value.violations


def _rule(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {"rule_id": "r1", "field": "phone", "action": "reject"}
    base["check"] = "phone_valid"
    return {**base, **overrides}


def test_parses_a_rule_with_string_parameters() -> None:
    rule = parse_rule(
        {
            "rule_id": "bd",
            "field": "birth_date",
            "source": "pos-msk-12",
            "action": "flag",
            "check": "birth_date_plausible",
            "parameters": {"min_age": "18"},
        }
    )
    assert (rule.source, rule.action, rule.parameters) == ("pos-msk-12", "flag", {"min_age": "18"})
    assert rule.typed_parameters == {"min_age": 18, "max_age": 110}
    assert parse_rule(rule.to_dict()) == rule


def test_empty_source_means_every_source() -> None:
    rule = parse_rule(_rule(source=""))
    assert rule.source is None
    assert rule.applies_to_source("anything")


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"check": "phone_validd"}, "check", "unknown check"),
        ({"field": "fone"}, "field", "unknown field"),
        ({"action": "drop"}, "action", "reject, flag"),
        ({"rule_id": ""}, "rule_id", "1-64 characters"),
        ({"source": "POS MSK"}, "source", "[a-z0-9._-]"),
        ({"field": "first_name"}, "check", "applies to phone"),
        ({"parameters": {"kinds": "mobile,fax"}}, "parameters.kinds", "subset"),
        ({"parameters": {"max": "5"}}, "parameters.max", "unknown parameter"),
        ({"check": "max_length", "field": "first_name"}, "parameters.max", "required"),
        (
            {"check": "max_length", "field": "first_name", "parameters": {"max": "ten"}},
            "parameters.max",
            "integer",
        ),
        (
            {"check": "regex", "field": "attributes.tier", "parameters": {"pattern": "(a"}},
            "parameters.pattern",
            "regular expression",
        ),
        (
            {
                "check": "birth_date_plausible",
                "field": "birth_date",
                "parameters": {"min_age": "60", "max_age": "20"},
            },
            "parameters.min_age",
            "less than max_age",
        ),
        ({"extra": 1}, "extra", "unknown key"),
        ({"action": 5}, "action", "must be a string"),
        ({"parameters": ["max"]}, "parameters", "mapping"),
    ],
)
def test_malformed_rules_name_the_bad_part(
    overrides: dict[str, object], field: str, words: str
) -> None:
    violations = _violations(_rule(**overrides))
    assert [v.field for v in violations] == [field]
    assert words in violations[0].description


def test_every_problem_is_reported_at_once() -> None:
    violations = _violations({"rule_id": "x", "field": "nope", "action": "?", "check": "?"})
    assert {v.field for v in violations} == {"field", "action", "check"}


def test_direct_construction_is_checked_too() -> None:
    with pytest.raises(RuleDefinitionError):
        ValidationRule("r", "phone", None, "flag", "email_valid")


def test_default_rules_parse() -> None:
    assert all(rule.action == "flag" for rule in default_rules())
