"""Standardise one record, then run the validation rules on it.

What standardisation does on its own (findings with rule ``std.*``):

* names: spacing and case; a full name typed into one field is split when the order is certain
  (``corrected``); gender is inferred from the patronymic or a listed first name when the record
  has none (``corrected``), and a given gender that contradicts the patronymic is ``flagged``;
* phones to E.164, e-mails to lower case, loyalty cards without spaces/dashes, duplicates merged;
* identifiers that cannot identify anyone (invalid or placeholder phones, malformed e-mails)
  are removed, since identity would otherwise merge strangers on ``+7 000 000-00-00``
  (``corrected``); a record left with no identifier is ``rejected``;
* a probable e-mail domain typo is ``flagged`` with the fixed address as the suggestion and is
  NOT applied;
* addresses: abbreviations, punctuation, the postcode moved from the line into ``postal_code``.

Rules (:mod:`rules`) then check the standardised values; paths in findings point into the record
as it was sent (``identifiers[2].value``) so the sender can find the value.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from svod_contacts.cards import normalize_card
from svod_contacts.identifiers import IdentifierType
from svod_quality.domain.addresses import normalize_address
from svod_quality.domain.checks import ATTRIBUTE_PREFIX, FieldValue
from svod_quality.domain.emails import analyse_email
from svod_quality.domain.model import (
    GENDERS,
    Address,
    Finding,
    FindingAction,
    Identifier,
    RawRecord,
    Result,
)
from svod_quality.domain.names import infer_gender, normalize_name, split_full_name
from svod_quality.domain.phones import analyse_phone
from svod_quality.domain.rules import RuleSet, ValidationRule

_NAME_PATHS: Final = {
    "first_name": "name.first_name",
    "last_name": "name.last_name",
    "middle_name": "name.middle_name",
    "full_name": "name.full_name",
}


@dataclass(slots=True)
class Standardized:
    """A standardised record plus what was learnt on the way, for the checks."""

    record: RawRecord
    findings: list[Finding]
    identifier_values: dict[str, list[FieldValue]] = field(default_factory=dict)


def _std_identifier(
    index: int, ident: Identifier, values: dict[str, list[FieldValue]], findings: list[Finding]
) -> Identifier | None:
    path = f"identifiers[{index}].value"
    id_type, raw = ident.type, ident.value
    if id_type == "phone":
        phone = analyse_phone(raw)
        values.setdefault("phone", []).append(FieldValue(path, raw.strip(), phone))
        if phone.valid and not phone.placeholder:
            return Identifier(id_type, phone.e164, ident.namespace.strip())
        why = phone.reason if phone.placeholder else f"not a valid phone number ({phone.reason})"
        findings.append(
            Finding(path, FindingAction.CORRECTED, "std.phone_unusable", f"removed: {why}")
        )
        return None
    if id_type == "email":
        email = analyse_email(raw)
        values.setdefault("email", []).append(FieldValue(path, email.normalized, email))
        if email.valid:
            if email.suggestion:
                message = "the domain looks mistyped; confirm the address, then use the suggestion"
                findings.append(
                    Finding(
                        path,
                        FindingAction.FLAGGED,
                        "std.email_domain_typo",
                        message,
                        email.suggestion,
                    )
                )
            return Identifier(id_type, email.normalized, ident.namespace.strip())
        message = f"removed: not a valid e-mail ({email.reason})"
        findings.append(
            Finding(path, FindingAction.CORRECTED, "std.email_unusable", message, email.suggestion)
        )
        return None
    value = raw.strip()
    if id_type == IdentifierType.LOYALTY_CARD:
        value = normalize_card(value) or ""
    values.setdefault(id_type, []).append(FieldValue(path, value))
    return Identifier(id_type, value, ident.namespace.strip()) if value else None


def _std_names(record: RawRecord, out: RawRecord, findings: list[Finding]) -> None:
    out.first_name = normalize_name(record.first_name)
    out.last_name = normalize_name(record.last_name)
    out.middle_name = normalize_name(record.middle_name)
    out.full_name = normalize_name(record.full_name)
    parts = (out.first_name, out.last_name, out.middle_name)
    source_field = ""
    if out.full_name and not any(parts):
        source_field = "full_name"
    elif sum(1 for p in parts if p) == 1 and out.first_name.count(" ") >= 2:
        source_field = "first_name"  # "Иванов Иван Иванович" typed into the first-name box
    if source_field:
        split = split_full_name(getattr(out, source_field))
        if split is not None and (source_field == "full_name" or split.middle):
            if source_field != "full_name":
                out.full_name = out.first_name
            out.last_name, out.first_name, out.middle_name = split
            message = "split into last, first and middle name"
            findings.append(
                Finding(
                    _NAME_PATHS[source_field],
                    FindingAction.CORRECTED,
                    "std.full_name_split",
                    message,
                )
            )
    given = record.gender.strip().lower() if record.gender else "unknown"
    given = given if given in GENDERS else "unknown"
    inferred, basis = infer_gender(out.first_name, out.middle_name)
    out.gender = given
    if given == "unknown" and inferred != "unknown":
        out.gender = inferred
        findings.append(
            Finding(
                "gender",
                FindingAction.CORRECTED,
                "std.gender_inferred",
                f"{inferred}, from the {basis}",
            )
        )
    elif given != "unknown" and basis == "patronymic" and inferred != given:
        message = f"given as {given} but the patronymic is {inferred}"
        findings.append(Finding("gender", FindingAction.FLAGGED, "std.gender_mismatch", message))


def standardize_record(record: RawRecord) -> Standardized:
    """The standardised copy of a record (the input is not modified) and std.* findings."""
    findings: list[Finding] = []
    values: dict[str, list[FieldValue]] = {}
    out = RawRecord(birth_date=record.birth_date, attributes=dict(record.attributes))
    seen: set[Identifier] = set()
    for index, ident in enumerate(record.identifiers):
        ident = ident if isinstance(ident, Identifier) else Identifier(*ident)
        std = _std_identifier(index, ident, values, findings)
        if std is not None and std not in seen:  # "8 916..." and "+7 916..." are one phone
            seen.add(std)
            out.identifiers.append(std)
    if not out.identifiers:
        message = "no usable identifier (e-mail, phone, card, ...) in the record"
        findings.append(
            Finding("identifiers", FindingAction.REJECTED, "std.no_identifier", message)
        )
    _std_names(record, out, findings)
    out.addresses = [normalize_address(a) for a in record.addresses]
    return Standardized(out, findings, values)


def field_values(std: Standardized, field_name: str) -> tuple[list[FieldValue], str]:
    """(values of a rule field, path to report when the field is missing altogether)."""
    record = std.record
    if field_name in _NAME_PATHS:
        path = _NAME_PATHS[field_name]
        return [FieldValue(path, getattr(record, field_name))], path
    if field_name == "birth_date":
        return [FieldValue("birth_date", record.birth_date)], "birth_date"
    if field_name == "gender":
        gender = "" if record.gender == "unknown" else record.gender
        return [FieldValue("gender", gender)], "gender"
    if field_name.startswith(ATTRIBUTE_PREFIX):
        name = field_name[len(ATTRIBUTE_PREFIX) :]
        value = record.attributes.get(name)
        path = f"attributes[{name}]"
        return ([] if value is None else [FieldValue(path, value)]), path
    if field_name in Address.__slots__:
        found = [
            FieldValue(f"addresses[{i}].{field_name}", getattr(a, field_name), a.country_code)
            for i, a in enumerate(record.addresses)
        ]
        return found, "addresses"
    return std.identifier_values.get(field_name, []), "identifiers"


def validate(
    std: Standardized, rules: RuleSet | Sequence[ValidationRule], source: str, today: dt.date
) -> list[Finding]:
    """Findings of every rule for this source that the standardised record fails, grouped by
    field (fields in the order of their first rule)."""
    plan = (rules if isinstance(rules, RuleSet) else RuleSet(rules)).plan(source)
    findings: list[Finding] = []
    for field_name, checks in plan:
        values, missing = field_values(std, field_name)
        present = [v for v in values if v.value not in ("", None)]
        for check in checks:
            if check.wants_empty:
                problems = check.fn(values, check.params, today, missing)
            elif present:
                problems = check.fn(present, check.params, today, missing)
            else:
                continue
            for problem in problems:
                findings.append(
                    Finding(
                        problem.path,
                        check.action,
                        check.rule_id,
                        problem.message,
                        problem.suggestion,
                    )
                )
    return findings


def standardize_and_validate(
    record: RawRecord, rules: RuleSet | Sequence[ValidationRule], source: str, today: dt.date
) -> Result:
    """Standardise a record and validate it against the rules that apply to ``source``.

    Pass a :class:`RuleSet` built once per batch; a plain list is re-planned on every call.
    ``today`` anchors age checks (pass the ingestion date; the function reads no clock).
    ``rejected`` is true when a ``reject`` rule failed or no usable identifier is left.
    """
    std = standardize_record(record)
    findings = std.findings + validate(std, rules, source, today)
    rejected = any(f.action is FindingAction.REJECTED for f in findings)
    return Result(std.record, rejected, findings)
