"""Profile scores and the base report, from profiles created through the public ingestion API.

The report tests read the base with ProfileService.StreamProfiles (the contract in
protos/svod/profile/v1/profile.proto); while the profile service answers UNIMPLEMENTED for it,
RefreshQualityReport answers FAILED_PRECONDITION and those tests fail by design.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from svod.common.v1 import common_pb2
from svod.ingestion.v1 import ingestion_pb2
from svod.quality.v1 import quality_pb2

from .helpers import EMAIL, PHONE, T, field_violations, random_mobile, unique_source


def identify(
    suite, source: str, record: common_pb2.CustomerRecord, observed: Timestamp | None = None
) -> str:
    request = ingestion_pb2.IdentifyRequest(
        record_ref=common_pb2.RecordRef(source=source, message_id=uuid.uuid4().hex),
        channel=common_pb2.SOURCE_CHANNEL_WEB,
        record=record,
    )
    if observed is not None:
        request.observed_time.CopyFrom(observed)
    suite.ingestion.Identify(request, timeout=T)
    status = suite.wait_processed(request.record_ref)
    assert status.state == ingestion_pb2.RecordStatus.STATE_DELIVERED, status
    return status.customer_id


def complete_record(email: str) -> common_pb2.CustomerRecord:
    return common_pb2.CustomerRecord(
        identifiers=[
            common_pb2.Identifier(type=PHONE, value=random_mobile()),
            common_pb2.Identifier(type=EMAIL, value=email),
        ],
        name=common_pb2.PersonName(first_name="Анна", last_name="Петрова"),
        birth_date={"year": 1990, "month": 5, "day": 17},
        addresses=[
            common_pb2.PostalAddress(
                country_code="RU",
                postal_code="101000",
                city="Москва",
                address_line="ул. Мира, д. 1",
            )
        ],
    )


def score(suite, customer_id: str) -> quality_pb2.ProfileScore:
    return suite.quality.GetProfileScore(
        quality_pb2.GetProfileScoreRequest(customer_id=customer_id), timeout=T
    )


def test_complete_fresh_profile_scores_100_and_a_bounce_costs_points(suite) -> None:
    email = f"anna.{uuid.uuid4().hex[:8]}@example.ru"
    customer = identify(suite, unique_source(), complete_record(email))
    full = score(suite, customer)
    assert (full.customer_id, full.score, list(full.reasons)) == (customer, 100, [])

    suite.quality.ReportContactFailures(
        quality_pb2.ReportContactFailuresRequest(
            failures=[
                quality_pb2.ContactFailure(
                    identifier=common_pb2.Identifier(type=EMAIL, value=email)
                )
            ]
        ),
        timeout=T,
    )
    bounced = score(suite, customer)
    assert bounced.score == 80
    assert list(bounced.reasons) == ["no valid e-mail (-20)"]


def test_sparse_stale_duplicate_profile_gets_its_reasons(suite) -> None:
    old = Timestamp()
    old.FromDatetime(dt.datetime.now(dt.UTC) - dt.timedelta(days=800))
    record = common_pb2.CustomerRecord(
        identifiers=[common_pb2.Identifier(type=PHONE, value=random_mobile())],
        name=common_pb2.PersonName(first_name="Иван"),
    )
    customer = identify(suite, unique_source(), record, observed=old)
    suite.quality.ReportDuplicates(
        quality_pb2.ReportDuplicatesRequest(
            pairs=[
                quality_pb2.DuplicatePair(
                    first_customer_id=customer, second_customer_id=str(uuid.uuid4()), score=0.7
                )
            ]
        ),
        timeout=T,
    )
    reply = score(suite, customer)
    assert reply.score == 100 - 20 - 8 - 10 - 10 - 10 - 5
    assert list(reply.reasons) == [
        "no valid e-mail (-20)",
        "name incomplete (-8)",
        "birth date missing or implausible (-10)",
        "address incomplete (-10)",
        "contact data not confirmed in 365 days (-10)",
        "suspected duplicate (-5)",
    ]


def test_score_of_unknown_or_malformed_customer(suite) -> None:
    with pytest.raises(grpc.RpcError) as missing:
        score(suite, str(uuid.uuid4()))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as malformed:
        score(suite, "42")
    assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "customer_id" in field_violations(malformed.value)


def test_refresh_counts_the_base_by_source_and_keeps_a_daily_trend(suite, suite_database) -> None:
    source = unique_source("rep")
    complete = identify(suite, source, complete_record(f"a.{uuid.uuid4().hex[:8]}@example.ru"))
    sparse = identify(
        suite,
        source,
        common_pb2.CustomerRecord(
            identifiers=[common_pb2.Identifier(type=PHONE, value=random_mobile())]
        ),
    )
    suite.quality.ReportDuplicates(
        quality_pb2.ReportDuplicatesRequest(
            pairs=[
                quality_pb2.DuplicatePair(
                    first_customer_id=complete, second_customer_id=sparse, score=0.9
                )
            ]
        ),
        timeout=T,
    )
    yesterday = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    with suite_database.admin_connect() as conn:
        conn.execute(
            "INSERT INTO quality.report_snapshots (day, taken_at, report) VALUES (%s, %s, %s) "
            "ON CONFLICT (day) DO NOTHING",
            (
                yesterday.date(),
                yesterday,
                json.dumps({"now": {"profiles": 1, "completeness": 0.25}}),
            ),
        )

    report = suite.quality.RefreshQualityReport(
        quality_pb2.RefreshQualityReportRequest(), timeout=T
    )
    assert report.now.profiles >= 2
    [ours] = [s for s in report.sources if s.source == source]
    assert ours.profiles == 2
    assert ours.valid_phone_share == 1.0 and ours.valid_email_share == 0.5
    assert report.completeness_by_source[source] == ours.completeness
    assert report.suspected_duplicate_pairs >= 1
    assert report.now.duplicate_rate > 0
    assert set(report.completeness_by_field) == {
        "phone",
        "email",
        "first_name",
        "last_name",
        "birth_date",
        "address",
    }
    assert report.trend[-1] == report.now
    assert report.trend[-2].completeness == 0.25

    again = suite.quality.GetQualityReport(
        quality_pb2.GetQualityReportRequest(trend_days=7), timeout=T
    )
    assert again.now == report.now
    assert [p.time.seconds for p in again.trend][-2:] == [p.time.seconds for p in report.trend][-2:]


def test_report_trend_window_is_checked(suite) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        suite.quality.GetQualityReport(
            quality_pb2.GetQualityReportRequest(trend_days=-1), timeout=T
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "trend_days" in field_violations(refused.value)
