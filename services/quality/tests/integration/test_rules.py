"""Validation rules over the API: create, list, delete, and their effect on batches."""

from __future__ import annotations

import grpc
import pytest

from svod.common.v1 import common_pb2
from svod.quality.v1 import quality_pb2

from .helpers import PHONE, T, field_violations, random_mobile, record, unique_source


def create(suite, **rule):
    return suite.quality.CreateValidationRule(
        quality_pb2.CreateValidationRuleRequest(rule=quality_pb2.ValidationRule(**rule)), timeout=T
    )


def test_reject_rule_for_one_source_refuses_its_records_until_deleted(suite) -> None:
    source, other = unique_source(), unique_source()
    rule_id = f"mobile-only.{source}"
    created = create(
        suite,
        rule_id=rule_id,
        field="phone",
        source=source,
        action="reject",
        check="phone_valid",
        parameters={"kinds": "mobile"},
    )
    assert created.create_time.seconds > 0 and created.update_time.seconds > 0
    landline = record((PHONE, "+7 495 123-45-67"))

    def batch(src: str):
        return suite.quality.StandardizeBatch(
            quality_pb2.StandardizeBatchRequest(source=src, records=[landline]), timeout=T
        ).results[0]

    refused = batch(source)
    assert refused.rejected
    [finding] = [f for f in refused.findings if f.rule == rule_id]
    assert (finding.field, finding.action) == ("identifiers[0].value", "rejected")
    assert not batch(other).rejected

    listed = suite.quality.ListValidationRules(
        quality_pb2.ListValidationRulesRequest(source=source), timeout=T
    )
    assert rule_id in {r.rule_id for r in listed.rules}
    assert "default.email_not_role" in {r.rule_id for r in listed.rules}  # all-sources rules
    elsewhere = suite.quality.ListValidationRules(
        quality_pb2.ListValidationRulesRequest(source=other), timeout=T
    )
    assert rule_id not in {r.rule_id for r in elsewhere.rules}

    suite.quality.DeleteValidationRule(
        quality_pb2.DeleteValidationRuleRequest(rule_id=rule_id), timeout=T
    )
    assert not batch(source).rejected
    with pytest.raises(grpc.RpcError) as gone:
        suite.quality.DeleteValidationRule(
            quality_pb2.DeleteValidationRuleRequest(rule_id=rule_id), timeout=T
        )
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND


def test_duplicate_rule_id_is_already_exists(suite) -> None:
    rule = {"rule_id": f"len.{unique_source()}", "field": "last_name", "action": "flag"}
    create(suite, **rule, check="max_length", parameters={"max": "40"})
    with pytest.raises(grpc.RpcError) as taken:
        create(suite, **rule, check="required")
    assert taken.value.code() == grpc.StatusCode.ALREADY_EXISTS


@pytest.mark.parametrize(
    ("rule", "fields"),
    [
        ({"field": "shoe_size", "check": "required"}, {"rule.field"}),
        ({"field": "email", "check": "telepathy"}, {"rule.check"}),
        ({"field": "email", "check": "phone_valid"}, {"rule.check"}),
        ({"field": "last_name", "check": "max_length"}, {"rule.parameters.max"}),
        (
            {"field": "last_name", "check": "max_length", "parameters": {"max": "many"}},
            {"rule.parameters.max"},
        ),
        (
            {"field": "city", "check": "regex", "parameters": {"pattern": "("}},
            {"rule.parameters.pattern"},
        ),
        ({"field": "email", "check": "required", "action": "delete"}, {"rule.action"}),
        ({"rule_id": "", "field": "email", "check": "required"}, {"rule.rule_id"}),
        ({"field": "email", "check": "required", "source": "Web Shop"}, {"rule.source"}),
    ],
    ids=[
        "unknown-field",
        "unknown-check",
        "check-misfit",
        "missing-param",
        "bad-int",
        "bad-regex",
        "bad-action",
        "no-id",
        "bad-source",
    ],
)
def test_malformed_rule_is_invalid_argument_naming_the_part(suite, rule, fields) -> None:
    definition = {"rule_id": f"bad.{unique_source()}", "action": "flag", **rule}
    with pytest.raises(grpc.RpcError) as refused:
        create(suite, **definition)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(refused.value)) == fields
    listed = suite.quality.ListValidationRules(quality_pb2.ListValidationRulesRequest(), timeout=T)
    assert definition["rule_id"] not in {r.rule_id for r in listed.rules}


def test_delete_without_id_is_invalid_argument(suite) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        suite.quality.DeleteValidationRule(quality_pb2.DeleteValidationRuleRequest(), timeout=T)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "rule_id" in field_violations(refused.value)


@pytest.mark.parametrize(
    "pattern", [r"(a)\1", r"(?=a)a", r"(?<!x)y"], ids=["backreference", "lookahead", "lookbehind"]
)
def test_a_pattern_without_a_linear_time_match_is_refused(suite, pattern) -> None:
    """Rules run on RE2: what it cannot match in linear time is refused, naming the pattern."""
    definition = {
        "rule_id": f"re.{unique_source()}",
        "field": "city",
        "action": "flag",
        "check": "regex",
        "parameters": {"pattern": pattern},
    }
    with pytest.raises(grpc.RpcError) as refused:
        create(suite, **definition)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "RE2" in field_violations(refused.value)["rule.parameters.pattern"]


def test_a_redos_pattern_cannot_freeze_the_service(suite) -> None:
    """``(a+)+$`` takes Python's backtracking regex exponential time on "aaaa...b"; on RE2 it is
    linear, so the rule is kept and a hostile value is judged at once."""
    import time

    source = unique_source()
    create(
        suite,
        rule_id=f"redos.{source}",
        field="city",
        source=source,
        action="reject",
        check="regex",
        parameters={"pattern": "(a+)+$"},
    )
    hostile = common_pb2.CustomerRecord(
        identifiers=[common_pb2.Identifier(type=PHONE, value=random_mobile())],
        addresses=[common_pb2.PostalAddress(city="a" * 180 + "!")],
    )
    started = time.monotonic()
    reply = suite.quality.StandardizeBatch(
        quality_pb2.StandardizeBatchRequest(source=source, records=[hostile] * 50), timeout=T
    )
    # Generous: Python's re needs longer than the age of the universe for this value.
    assert time.monotonic() - started < 5.0
    assert all(result.rejected for result in reply.results)
    assert {f.rule for f in reply.results[0].findings} >= {f"redos.{source}"}
