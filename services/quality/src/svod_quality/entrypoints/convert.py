"""Protobuf <-> domain for the quality service: records, results, rules, reports."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Final

from svod.common.v1 import common_pb2
from svod.quality.v1 import quality_pb2
from svod_quality.domain import (
    Address,
    Finding,
    FindingAction,
    Identifier,
    QualityPoint,
    QualityReport,
    RawRecord,
    Result,
)
from svod_runtime.protoconv import datetime_to_timestamp

if TYPE_CHECKING:  # the CLI imports this module; keep it free of the storage's imports
    from svod_quality.domain.records import StoredRule

_ID_NAMES: Final = {
    v.number: v.name.removeprefix("IDENTIFIER_TYPE_").lower()
    for v in common_pb2.IdentifierType.DESCRIPTOR.values
    if v.number
}
_ID_NUMBERS: Final = {name: number for number, name in _ID_NAMES.items()}
_GENDER_NAMES: Final = {common_pb2.GENDER_FEMALE: "female", common_pb2.GENDER_MALE: "male"}
_GENDER_NUMBERS: Final = {name: number for number, name in _GENDER_NAMES.items()}
INVALID_DATE: Final = Finding(
    "birth_date", FindingAction.REJECTED, "std.birth_date_invalid", "not a calendar date"
)


def id_type_name(number: int) -> str:
    """``IDENTIFIER_TYPE_EMAIL`` -> "email"; unspecified or unknown -> ""."""
    return _ID_NAMES.get(number, "")


def record_from_proto(rec: common_pb2.CustomerRecord) -> tuple[RawRecord, Finding | None]:
    """The domain record, and a finding when the birth date is not a calendar date."""
    name = rec.name
    record = RawRecord(
        identifiers=[
            Identifier(_ID_NAMES.get(i.type, ""), i.value, i.namespace) for i in rec.identifiers
        ],
        first_name=name.first_name,
        last_name=name.last_name,
        middle_name=name.middle_name,
        full_name=name.full_name,
        gender=_GENDER_NAMES.get(rec.gender, "unknown"),
    )
    problem = None
    born = rec.birth_date
    if born.year or born.month or born.day:
        try:
            record.birth_date = dt.date(born.year, born.month, born.day)
        except ValueError:
            problem = INVALID_DATE
    if rec.addresses:
        record.addresses = [
            Address(a.country_code, a.postal_code, a.region, a.city, a.address_line)
            for a in rec.addresses
        ]
    if rec.attributes:
        record.attributes = dict(rec.attributes)
    return record, problem


def result_to_proto(result: Result, out: quality_pb2.StandardizedRecord) -> None:
    """Fills ``out`` (a message already in its response) with the domain result."""
    r = result.record
    rec = out.record
    for ident in r.identifiers:
        rec.identifiers.add(type=_ID_NUMBERS.get(ident[0], 0), value=ident[1], namespace=ident[2])
    if r.first_name or r.last_name or r.middle_name or r.full_name:
        name = rec.name
        name.first_name = r.first_name
        name.last_name = r.last_name
        name.middle_name = r.middle_name
        name.full_name = r.full_name
    if r.birth_date is not None:
        born = rec.birth_date
        born.year, born.month, born.day = r.birth_date.year, r.birth_date.month, r.birth_date.day
    gender = _GENDER_NUMBERS.get(r.gender)
    if gender:
        rec.gender = gender
    for a in r.addresses:
        rec.addresses.add(
            country_code=a.country_code,
            postal_code=a.postal_code,
            region=a.region,
            city=a.city,
            address_line=a.address_line,
        )
    if r.attributes:
        rec.attributes.update(r.attributes)
    out.rejected = result.rejected
    for f in result.findings:
        out.findings.add(
            field=f.field, action=f.action, rule=f.rule, message=f.message, suggestion=f.suggestion
        )


def rule_definition(rule: quality_pb2.ValidationRule) -> dict[str, object]:
    return {
        "rule_id": rule.rule_id,
        "field": rule.field,
        "source": rule.source,
        "action": rule.action,
        "check": rule.check,
        "parameters": dict(rule.parameters),
    }


def rule_to_proto(stored: StoredRule) -> quality_pb2.ValidationRule:
    rule = stored.rule
    return quality_pb2.ValidationRule(
        rule_id=rule.rule_id,
        field=rule.field,
        source=rule.source or "",
        action=rule.action,
        check=rule.check,
        parameters=dict(rule.parameters),
        create_time=datetime_to_timestamp(stored.created_at),
        update_time=datetime_to_timestamp(stored.updated_at),
    )


def point_to_proto(point: QualityPoint) -> quality_pb2.QualityReportPoint:
    return quality_pb2.QualityReportPoint(
        time=datetime_to_timestamp(point.time),
        valid_phone_share=point.valid_phone_share,
        valid_email_share=point.valid_email_share,
        duplicate_rate=point.duplicate_rate,
        completeness=point.completeness,
        stale_share=point.stale_share,
        profiles=point.profiles,
        undeliverable_share=point.undeliverable_share,
    )


def point_from_proto(point: quality_pb2.QualityReportPoint) -> QualityPoint:
    return QualityPoint(
        time=point.time.ToDatetime(tzinfo=dt.UTC),
        valid_phone_share=point.valid_phone_share,
        valid_email_share=point.valid_email_share,
        duplicate_rate=point.duplicate_rate,
        completeness=point.completeness,
        stale_share=point.stale_share,
        profiles=point.profiles,
        undeliverable_share=point.undeliverable_share,
    )


def report_to_proto(report: QualityReport) -> quality_pb2.QualityReport:
    return quality_pb2.QualityReport(
        now=point_to_proto(report.now),
        trend=[point_to_proto(p) for p in report.trend],
        completeness_by_field=report.completeness_by_field,
        worst_sources=report.worst_sources,
        completeness_by_source=report.completeness_by_source,
        sources=[
            quality_pb2.SourceQuality(
                source=s.source,
                profiles=s.profiles,
                completeness=s.completeness,
                mean_score=s.mean_score,
                valid_phone_share=s.valid_phone_share,
                valid_email_share=s.valid_email_share,
            )
            for s in report.sources
        ],
        suspected_duplicate_pairs=report.suspected_duplicate_pairs,
        blocked_identifiers=report.blocked_identifiers,
        freshness_days=report.freshness_days,
    )
