"""ReportDuplicates (from identity) and ReportContactFailures: validation and idempotency."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from svod.common.v1 import common_pb2
from svod.quality.v1 import quality_pb2

from .helpers import EMAIL, PHONE, T, field_violations


def ts(seconds: int) -> Timestamp:
    return Timestamp(seconds=seconds)


def pair_rows(suite_database, a: str, b: str) -> list[tuple]:
    first, second = sorted((a, b))
    with suite_database.admin_connect() as conn:
        return conn.execute(
            "SELECT score, suspected FROM quality.duplicate_pairs "
            "WHERE first_customer_id = %s AND second_customer_id = %s",
            (first, second),
        ).fetchall()


def report(suite, **fields) -> None:
    suite.quality.ReportDuplicates(quality_pb2.ReportDuplicatesRequest(**fields), timeout=T)


def test_duplicate_reports_are_idempotent_and_never_go_back_in_time(suite, suite_database) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    suspected = quality_pb2.DuplicatePair(first_customer_id=b, second_customer_id=a, score=0.8)
    shared = common_pb2.Identifier(type=PHONE, value="+74951234567")
    report(suite, pairs=[suspected], blocked_identifiers=[shared], report_time=ts(1_700_000_000))
    report(suite, pairs=[suspected], blocked_identifiers=[shared], report_time=ts(1_700_000_000))
    assert pair_rows(suite_database, a, b) == [(0.8, True)]

    resolved = quality_pb2.DuplicatePair(first_customer_id=a, second_customer_id=b)
    report(suite, resolved_pairs=[resolved], report_time=ts(1_700_000_100))
    assert pair_rows(suite_database, a, b) == [(0.8, False)]
    # A late retry of the older report does not bring the pair back.
    report(suite, pairs=[suspected], report_time=ts(1_700_000_000))
    assert pair_rows(suite_database, a, b) == [(0.8, False)]
    with suite_database.admin_connect() as conn:
        blocked = conn.execute(
            "SELECT blocked FROM quality.blocked_identifiers WHERE value = %s", (shared.value,)
        ).fetchall()
    assert blocked == [(True,)]


@pytest.mark.parametrize(
    ("fields", "violation"),
    [
        (
            {"pairs": [quality_pb2.DuplicatePair(first_customer_id="42", second_customer_id="x")]},
            "pairs[0].first_customer_id",
        ),
        (
            {
                "pairs": [
                    quality_pb2.DuplicatePair(
                        first_customer_id=str(uuid.UUID(int=1)),
                        second_customer_id=str(uuid.UUID(int=1)),
                    )
                ]
            },
            "pairs[0]",
        ),
        (
            {
                "pairs": [
                    quality_pb2.DuplicatePair(
                        first_customer_id=str(uuid.uuid4()),
                        second_customer_id=str(uuid.uuid4()),
                        score=1.5,
                    )
                ]
            },
            "pairs[0].score",
        ),
        (
            {"blocked_identifiers": [common_pb2.Identifier(type=EMAIL)]},
            "blocked_identifiers[0].value",
        ),
        ({"report_time": ts(4_000_000_000)}, "report_time"),
    ],
    ids=["not-uuid", "self-pair", "score", "empty-identifier", "future"],
)
def test_malformed_duplicate_report_is_invalid_argument(suite, fields, violation) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        report(suite, **fields)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violation in field_violations(refused.value)


def failure(id_type: int, value: str, seconds: int = 0) -> quality_pb2.ContactFailure:
    out = quality_pb2.ContactFailure(identifier=common_pb2.Identifier(type=id_type, value=value))
    if seconds:
        out.failure_time.CopyFrom(ts(seconds))
    return out


def test_contact_failures_keep_only_a_hash_and_the_latest_time(suite, suite_database) -> None:
    email = f"bounced-{uuid.uuid4().hex[:8]}@example.ru"
    suite.quality.ReportContactFailures(
        quality_pb2.ReportContactFailuresRequest(
            failures=[
                failure(EMAIL, email.upper(), 1_700_000_000),
                failure(EMAIL, email, 1_700_000_500),
            ]
        ),
        timeout=T,
    )
    suite.quality.ReportContactFailures(
        quality_pb2.ReportContactFailuresRequest(failures=[failure(EMAIL, email, 1_700_000_100)]),
        timeout=T,
    )
    with suite_database.admin_connect() as conn:
        rows = conn.execute(
            "SELECT id_type, extract(epoch FROM failed_at)::bigint FROM quality.contact_failures "
            "WHERE failed_at = to_timestamp(1700000500)"
        ).fetchall()
        leaked = conn.execute(
            "SELECT count(*) FROM quality.contact_failures WHERE identifier_hash::text LIKE %s",
            (f"%{email}%",),
        ).fetchone()
    assert ("email", 1_700_000_500) in rows
    assert leaked == (0,)


@pytest.mark.parametrize(
    ("failures", "violation"),
    [
        ([], "failures"),
        ([failure(common_pb2.IDENTIFIER_TYPE_LOYALTY_CARD, "123")], "failures[0].identifier.type"),
        ([failure(PHONE, "12")], "failures[0].identifier.value"),
        ([failure(EMAIL, "not-an-email")], "failures[0].identifier.value"),
    ],
    ids=["none", "card", "bad-phone", "bad-email"],
)
def test_malformed_contact_failures_are_invalid_argument(suite, failures, violation) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        suite.quality.ReportContactFailures(
            quality_pb2.ReportContactFailuresRequest(failures=failures), timeout=T
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violation in field_violations(refused.value)
