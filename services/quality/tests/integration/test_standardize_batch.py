"""StandardizeBatch through the running quality service, and what it records for monitoring."""

from __future__ import annotations

import grpc
import pytest

from svod.common.v1 import common_pb2
from svod.quality.v1 import quality_pb2

from .helpers import CARD, EMAIL, PHONE, T, field_violations, random_mobile, record, unique_source


def standardize(suite, source: str, *records: common_pb2.CustomerRecord):
    return suite.quality.StandardizeBatch(
        quality_pb2.StandardizeBatchRequest(source=source, records=records), timeout=T
    )


def test_messy_records_come_back_standardised_in_order_with_findings(suite) -> None:
    source = unique_source()
    reply = standardize(
        suite,
        source,
        record((PHONE, "8 (916) 123-45-67"), (EMAIL, " Anna.Petrova@GMIAL.com "), full_name=""),
        record(
            (PHONE, "+7 000 000-00-00"), (EMAIL, "ivan@mail.ru"), full_name="иванов иван  иванович"
        ),
        record((PHONE, "0000000000")),
        common_pb2.CustomerRecord(
            identifiers=[common_pb2.Identifier(type=CARD, value="2000 1234-5678")],
            birth_date={"year": 2023, "month": 2, "day": 30},
        ),
    )
    assert len(reply.results) == 4
    first, second, third, fourth = reply.results

    assert [(i.type, i.value) for i in first.record.identifiers] == [
        (PHONE, "+79161234567"),
        (EMAIL, "anna.petrova@gmial.com"),
    ]
    typo = next(f for f in first.findings if f.rule == "std.email_domain_typo")
    assert (typo.field, typo.action, typo.suggestion) == (
        "identifiers[1].value",
        "flagged",
        "anna.petrova@gmail.com",
    )
    assert not first.rejected

    # The placeholder phone is dropped, the full name split and the gender inferred.
    assert [i.value for i in second.record.identifiers] == ["ivan@mail.ru"]
    assert (
        second.record.name.last_name,
        second.record.name.first_name,
        second.record.name.middle_name,
    ) == ("Иванов", "Иван", "Иванович")
    assert second.record.gender == common_pb2.GENDER_MALE
    assert {f.rule for f in second.findings} >= {
        "std.phone_unusable",
        "std.full_name_split",
        "std.gender_inferred",
    }

    # Nothing usable left: refused, and the finding says why.
    assert third.rejected
    assert ("identifiers", "rejected", "std.no_identifier") in {
        (f.field, f.action, f.rule) for f in third.findings
    }
    # Not a calendar date: refused, naming the field.
    assert fourth.rejected
    assert fourth.record.identifiers[0].value == "200012345678"
    assert ("birth_date", "rejected") in {(f.field, f.action) for f in fourth.findings}
    assert reply.rejected_count == 2
    assert reply.flagged_count == 1


@pytest.mark.parametrize(
    ("source", "count", "field"),
    [("", 1, "source"), ("Bad Source!", 1, "source"), ("ok", 0, "records")],
    ids=["empty-source", "malformed-source", "no-records"],
)
def test_bad_batches_are_invalid_argument_naming_the_field(suite, source, count, field) -> None:
    records = [record((PHONE, random_mobile()))] * count
    with pytest.raises(grpc.RpcError) as refused:
        standardize(suite, source, *records)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(refused.value)


def test_oversized_batch_is_invalid_argument_naming_records(suite) -> None:
    one = record((PHONE, "+79161234567"))
    with pytest.raises(grpc.RpcError) as refused:
        standardize(suite, "webshop", *([one] * 10_001))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "10,000" in field_violations(refused.value)["records"]


# 300 records run in a thread of the server (at most THREAD_MAX), 1,200 in worker processes.
@pytest.mark.parametrize("size", [300, 1_200])
def test_large_batch_equals_small_batches_inline(suite, size: int) -> None:
    source = unique_source()
    records = []
    for n in range(size):
        phone = f"8 916 {n % 1000:03d}-{n % 100:02d}-{(n * 7) % 100:02d}"
        email = f"User{n}@{'gmial.com' if n % 5 == 0 else 'yandex.ru'}"
        records.append(record((PHONE, phone), (EMAIL, email), full_name=f"петрова анна {n}"))
    whole = standardize(suite, source, *records)
    parts = [standardize(suite, source, *records[i : i + 50]) for i in range(0, size, 50)]
    assert list(whole.results) == [r for part in parts for r in part.results]
    assert whole.rejected_count == sum(p.rejected_count for p in parts)
    assert whole.flagged_count == sum(p.flagged_count for p in parts) == size // 5


def test_findings_are_counted_by_rule_field_source_and_day(suite) -> None:
    source = unique_source()
    standardize(suite, source, record((PHONE, "+7 000 000-00-00"), (EMAIL, "info@shop.ru")))
    standardize(suite, source, record((PHONE, "1234567890"), (EMAIL, "a@mailinator.com")))
    stats = suite.quality.GetViolationStats(
        quality_pb2.GetViolationStatsRequest(source=source, days=1), timeout=T
    )
    counts = {(v.rule, v.field, v.action): v.count for v in stats.violations}
    assert counts[("std.phone_unusable", "phone", "corrected")] == 2
    assert counts[("default.email_not_role", "email", "flagged")] == 1
    assert counts[("default.email_not_disposable", "email", "flagged")] == 1
    assert {v.source for v in stats.violations} == {source}
    [day] = stats.records
    assert (day.records, day.rejected_records, day.flagged_records) == (2, 0, 2)


def test_stats_window_is_checked(suite) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        suite.quality.GetViolationStats(quality_pb2.GetViolationStatsRequest(days=400), timeout=T)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "days" in field_violations(refused.value)
