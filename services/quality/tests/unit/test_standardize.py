"""standardize_and_validate: what a caller sees for typical messy records."""

from __future__ import annotations

import datetime as dt

import pytest

from svod_quality.domain.model import Address, Finding, Identifier, RawRecord, Result
from svod_quality.domain.rules import RuleSet, ValidationRule, parse_rule
from svod_quality.domain.standardize import standardize_and_validate

TODAY = dt.date(2025, 6, 1)


def _rule(check: str, field: str, action: str = "flag", **params: str) -> ValidationRule:
    return parse_rule(
        {
            "rule_id": f"{check}.{action}",
            "field": field,
            "action": action,
            "check": check,
            "parameters": params,
        }
    )


def _run(record: RawRecord, *rules: ValidationRule, source: str = "webshop") -> Result:
    return standardize_and_validate(record, list(rules), source, TODAY)


def _by_rule(findings: list[Finding], rule: str) -> list[Finding]:
    return [f for f in findings if f.rule == rule]


def test_phone_formats_collapse_to_one_e164_identifier() -> None:
    record = RawRecord(
        identifiers=[
            Identifier("phone", "8 (916) 123-45-67"),
            Identifier("phone", "+7 916 123 45 67"),
            Identifier("phone", "89161234567"),
            Identifier("phone", "9161234567"),
        ]
    )
    result = _run(record)
    assert result.record.identifiers == [Identifier("phone", "+79161234567")]
    assert not result.rejected and result.findings == []


def test_placeholder_phone_is_removed_and_rule_can_reject() -> None:
    record = RawRecord(
        identifiers=[Identifier("email", "a@b.ru"), Identifier("phone", "+7 000 000-00-00")]
    )
    result = _run(record)
    assert result.record.identifiers == [Identifier("email", "a@b.ru")]
    assert not result.rejected
    [removed] = _by_rule(result.findings, "std.phone_unusable")
    assert (removed.field, removed.action) == ("identifiers[1].value", "corrected")

    strict = _run(record, _rule("phone_not_placeholder", "phone", "reject"))
    assert strict.rejected
    assert _by_rule(strict.findings, "phone_not_placeholder.reject")[0].action == "rejected"


def test_record_without_usable_identifier_is_rejected() -> None:
    result = _run(RawRecord(identifiers=[Identifier("phone", "123")]))
    assert result.rejected
    assert result.record.identifiers == []


def test_email_typo_is_flagged_with_suggestion_and_not_applied() -> None:
    result = _run(RawRecord(identifiers=[Identifier("email", "Ivan@GMIAL.com")]))
    assert result.record.identifiers == [Identifier("email", "ivan@gmial.com")]
    [typo] = _by_rule(result.findings, "std.email_domain_typo")
    assert (typo.action, typo.suggestion) == ("flagged", "ivan@gmail.com")
    assert not result.rejected


def test_disposable_and_role_addresses_are_flagged_by_rules() -> None:
    record = RawRecord(
        identifiers=[Identifier("email", "info@shop.ru"), Identifier("email", "x@mailinator.com")]
    )
    result = _run(record, _rule("email_not_disposable", "email"), _rule("email_not_role", "email"))
    flagged = {(f.field, f.rule) for f in result.findings if f.action == "flagged"}
    assert flagged == {
        ("identifiers[0].value", "email_not_role.flag"),
        ("identifiers[1].value", "email_not_disposable.flag"),
    }
    assert not result.rejected and len(result.record.identifiers) == 2


def test_full_name_is_split_and_gender_inferred() -> None:
    record = RawRecord(
        identifiers=[Identifier("loyalty_card", "1234 5678-90")],
        full_name="  иванова   МАРИЯ петровна ",
    )
    result = _run(record)
    out = result.record
    assert (out.last_name, out.first_name, out.middle_name) == ("Иванова", "Мария", "Петровна")
    assert out.full_name == "Иванова Мария Петровна"
    assert out.gender == "female"
    assert out.identifiers == [Identifier("loyalty_card", "1234567890")]
    rules = {f.rule: f.action for f in result.findings}
    assert rules == {"std.full_name_split": "corrected", "std.gender_inferred": "corrected"}


def test_full_name_typed_into_first_name_is_split() -> None:
    record = RawRecord(
        identifiers=[Identifier("device_id", "d1")], first_name="Петров Пётр Петрович"
    )
    out = _run(record).record
    assert (out.last_name, out.first_name, out.middle_name) == ("Петров", "Пётр", "Петрович")


def test_gender_contradicting_patronymic_is_flagged_not_changed() -> None:
    record = RawRecord(
        identifiers=[Identifier("device_id", "d1")],
        first_name="Мария",
        middle_name="Петровна",
        gender="male",
    )
    result = _run(record)
    assert result.record.gender == "male"
    assert [f.rule for f in result.findings] == ["std.gender_mismatch"]


@pytest.mark.parametrize(
    ("birth", "message"),
    [
        (dt.date(2026, 1, 1), "future"),
        (dt.date(2020, 1, 1), "age 5"),
        (dt.date(1895, 1, 1), "age 130"),
    ],
)
@pytest.mark.parametrize("action", ["reject", "flag"])
def test_implausible_birth_dates_follow_the_rule_action(
    birth: dt.date, message: str, action: str
) -> None:
    record = RawRecord(identifiers=[Identifier("device_id", "d1")], birth_date=birth)
    result = _run(record, _rule("birth_date_plausible", "birth_date", action))
    [finding] = result.findings
    assert finding.field == "birth_date" and message in finding.message
    assert finding.action == ("rejected" if action == "reject" else "flagged")
    assert result.rejected is (action == "reject")
    assert result.record.birth_date == birth  # kept: the rule decides, not standardisation


def test_birth_date_bounds_are_parameters() -> None:
    record = RawRecord(identifiers=[Identifier("device_id", "d1")], birth_date=dt.date(2009, 1, 1))
    assert not _run(record, _rule("birth_date_plausible", "birth_date")).findings  # 16 >= 14
    adult = _rule("birth_date_plausible", "birth_date", min_age="18")
    assert _run(record, adult).findings[0].message.endswith("minimum of 18")


def test_rules_apply_only_to_their_source() -> None:
    rule = parse_rule(
        {
            "rule_id": "pos-name",
            "field": "first_name",
            "source": "pos",
            "action": "reject",
            "check": "name_plausible",
        }
    )
    record = RawRecord(identifiers=[Identifier("device_id", "d1")], first_name="тест")
    assert _run(record, rule, source="pos").rejected
    assert not _run(record, rule, source="webshop").rejected


def test_address_is_standardised_and_postcode_checked() -> None:
    record = RawRecord(
        identifiers=[Identifier("device_id", "d1")],
        addresses=[
            Address("", "", "", "г москва", "123456, ул ленина д5 кв.12"),
            Address("RU", "7777", "", "", ""),
        ],
    )
    result = _run(record, _rule("postcode_format", "postal_code"))
    first = result.record.addresses[0]
    assert (first.postal_code, first.city, first.address_line) == (
        "123456",
        "Москва",
        "ул. Ленина д. 5 кв. 12",
    )
    assert [f.field for f in result.findings] == ["addresses[1].postal_code"]


def test_required_and_max_length_and_regex() -> None:
    record = RawRecord(
        identifiers=[Identifier("device_id", "d1")],
        last_name="Иванов",
        attributes={"tier": "platinum!"},
    )
    result = _run(
        record,
        _rule("required", "phone", "reject"),
        _rule("max_length", "last_name", max="3"),
        _rule("regex", "attributes.tier", pattern="[a-z]+"),
        _rule("required", "attributes.tier"),
    )
    assert [(f.field, f.action) for f in result.findings] == [
        ("identifiers", "rejected"),
        ("name.last_name", "flagged"),
        ("attributes[tier]", "flagged"),
    ]


def test_input_record_is_not_modified() -> None:
    record = RawRecord(identifiers=[Identifier("phone", "8 916 123 45 67")], first_name="иван")
    _run(record)
    assert record.identifiers == [Identifier("phone", "8 916 123 45 67")]
    assert record.first_name == "иван"


def test_plain_tuples_and_a_prepared_rule_set_work() -> None:
    rules = RuleSet(
        [
            parse_rule(
                {
                    "rule_id": "web-only",
                    "field": "email",
                    "source": "webshop",
                    "action": "reject",
                    "check": "email_not_role",
                }
            )
        ]
    )
    record = RawRecord(identifiers=[("email", "info@shop.ru", "")])  # type: ignore[list-item]
    assert standardize_and_validate(record, rules, "webshop", TODAY).rejected
    assert not standardize_and_validate(record, rules, "pos", TODAY).rejected
    assert [f for f, _ in rules.plan("webshop")] == ["email"]
    assert rules.plan("pos") == ()
