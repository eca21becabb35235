"""Finding counts for monitoring, profile facts, and the streaming report builder."""

from __future__ import annotations

import datetime as dt

from svod_quality.domain import (
    COMPLETENESS_FIELDS,
    Address,
    Identifier,
    ObservedIdentifier,
    ProfileFacts,
    ProfileSnapshot,
    RawRecord,
    ReportBuilder,
    RuleSet,
    build_report,
    collect_facts,
    default_rules,
    finding_field,
    identifier_hash,
    normalized_contact,
    standardize_and_validate,
    tally,
)

TODAY = dt.date(2025, 6, 1)
CONFIRMED = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
RECORD = RawRecord(
    identifiers=[Identifier("email", "a@b.ru"), Identifier("phone", "+7 000 000-00-00")],
    addresses=[Address(city="Москва")],
    attributes={"tier": "gold"},
)


def test_finding_paths_become_monitored_fields() -> None:
    assert finding_field(RECORD, "identifiers[1].value") == "phone"
    assert finding_field(RECORD, "identifiers[7].value") == "identifiers"
    assert finding_field(RECORD, "identifiers") == "identifiers"
    assert finding_field(RECORD, "name.first_name") == "first_name"
    assert finding_field(RECORD, "addresses[0].postal_code") == "postal_code"
    assert finding_field(RECORD, "attributes[tier]") == "attributes.tier"
    assert finding_field(RECORD, "birth_date") == "birth_date"


def test_tally_counts_records_refusals_flags_and_findings() -> None:
    rules = RuleSet(default_rules())
    flagged = RawRecord(identifiers=[Identifier("email", "info@shop.ru")])
    refused = RawRecord(identifiers=[Identifier("phone", "0000000000")])
    pairs = [(r, standardize_and_validate(r, rules, "web", TODAY)) for r in (flagged, refused)]
    counts = tally(pairs)
    assert (counts.records, counts.rejected, counts.flagged) == (2, 1, 1)
    assert counts.findings[("default.email_not_role", "email", "flagged")] == 1
    assert counts.findings[("std.phone_unusable", "phone", "corrected")] == 1
    assert counts.findings[("std.no_identifier", "identifiers", "rejected")] == 1


def _profile(**kwargs: object) -> ProfileSnapshot:
    base: dict[str, object] = {
        "customer_id": "c1",
        "identifiers": (
            ObservedIdentifier("phone", "+79161234567", "", CONFIRMED),
            ObservedIdentifier("email", "anna@example.ru", "", CONFIRMED),
        ),
        "first_name": "Анна",
        "last_name": "Петрова",
        "birth_date": dt.date(1990, 5, 17),
        "addresses": (Address("RU", "101000", "", "Москва", "ул. Мира, д. 1"),),
        "sources": ("web",),
    }
    return ProfileSnapshot(**{**base, **kwargs})  # type: ignore[arg-type]


def test_complete_profile_has_every_fact() -> None:
    facts = collect_facts(_profile(), RuleSet(default_rules()), {}, TODAY)
    assert facts == ProfileFacts(
        customer_id="c1",
        sources=("web",),
        has_valid_phone=True,
        has_valid_email=True,
        fields_present=frozenset(COMPLETENESS_FIELDS),
        birth_date_plausible=True,
        address_complete=True,
        contact_confirmed_at=CONFIRMED,
        open_flags=0,
    )


def test_bounce_after_confirmation_makes_the_email_undeliverable_until_reconfirmed() -> None:
    key = identifier_hash("email", "anna@example.ru")
    rules = RuleSet(default_rules())
    failed = collect_facts(_profile(), rules, {key: CONFIRMED + dt.timedelta(days=1)}, TODAY)
    assert failed.undeliverable and not failed.has_valid_email and failed.has_valid_phone
    older = collect_facts(_profile(), rules, {key: CONFIRMED - dt.timedelta(days=1)}, TODAY)
    assert not older.undeliverable and older.has_valid_email


def test_role_and_placeholder_contacts_do_not_count_and_flags_are_open() -> None:
    profile = _profile(
        identifiers=(
            ObservedIdentifier("phone", "+79990000000", "", CONFIRMED),
            ObservedIdentifier("email", "info@example.ru", "", None),
        ),
        first_name="Тест",
        birth_date=dt.date(2024, 1, 1),
        addresses=(Address(city="Москва"),),
    )
    facts = collect_facts(profile, RuleSet(default_rules()), {}, TODAY)
    assert not facts.has_valid_phone and not facts.has_valid_email
    assert not facts.birth_date_plausible and not facts.address_complete
    assert "address" in facts.fields_present
    assert facts.open_flags >= 3  # role e-mail, placeholder name, implausible birth date
    assert facts.contact_confirmed_at == CONFIRMED


def test_contacts_normalise_for_hashing() -> None:
    assert normalized_contact("phone", "8 (916) 123-45-67") == "+79161234567"
    assert normalized_contact("email", " Anna@Example.RU ") == "anna@example.ru"
    assert normalized_contact("email", "nope") == ""
    assert normalized_contact("loyalty_card", "123") == ""


def test_report_builder_matches_build_report() -> None:
    now = dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC)
    rules = RuleSet(default_rules())
    facts = [
        collect_facts(_profile(customer_id=f"c{i}", sources=(f"s{i % 3}",)), rules, {}, TODAY)
        for i in range(7)
    ]
    builder = ReportBuilder(now)
    for item in facts:
        builder.add(item)
    assert builder.finish() == build_report(facts, now)
    assert builder.finish().freshness_days == 365
