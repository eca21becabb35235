"""Identify calls of a bulk import reach profile as ApplyBatch calls: every record applied once,
a customer's records in order, each record in its own trace, each refusal its own."""

from __future__ import annotations

import uuid

import grpc
import pytest

from svod.common.v1 import common_pb2
from svod.ingestion.v1 import ingestion_pb2
from svod.profile.v1 import profile_pb2
from tests.builders import PHONE, at, identify, random_phone, unique
from tests.waiting import wait_until

T = 10.0
DELIVERED = ingestion_pb2.RecordStatus.STATE_DELIVERED
APPLY_BATCH = "/svod.profile.v1.ProfileService/ApplyBatch"


def _record(customer_id: str, first_name: str, **attributes: str) -> profile_pb2.ApplyRequest:
    return profile_pb2.ApplyRequest(
        customer_id=customer_id,
        record_ref=common_pb2.RecordRef(source="import", message_id=unique()),
        channel=common_pb2.SOURCE_CHANNEL_POS,
        identifiers=[common_pb2.Identifier(type=PHONE, value=random_phone())],
        name=common_pb2.PersonName(first_name=first_name),
        attributes=attributes,
    )


def _profile(suite, customer_id: str) -> profile_pb2.Profile:
    return suite.profile.GetProfile(
        profile_pb2.GetProfileRequest(customer_id=customer_id), timeout=T
    )


def test_apply_batch_answers_each_record_and_a_redelivery_changes_nothing(suite) -> None:
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    good = [
        _record(first, "Мария", shoe_size="38,5"),
        _record(second, "Иван"),
        # The same customer again, later in the call: applied after the first record.
        _record(first, "Светлана"),
    ]
    good[2].observed_time.CopyFrom(at("2025-06-01T00:00:00Z"))
    good[0].observed_time.CopyFrom(at("2025-01-01T00:00:00Z"))
    not_an_id = _record("not-a-uuid", "Пётр")
    bad_attribute = _record(second, "Иван", shoe_size="много")
    reply = suite.profile.ApplyBatch(
        profile_pb2.ApplyBatchRequest(records=[*good, not_an_id, good[0], bad_attribute]),
        timeout=T,
    )
    results = list(reply.results)
    assert [r.applied.changed for r in results[:3]] == [True, True, True]
    assert results[3].error_code == "INVALID_ARGUMENT"
    assert results[4].HasField("applied") and not results[4].applied.changed  # a retry
    assert results[5].error_code == "INVALID_ARGUMENT"
    assert "shoe_size" in results[5].error_message

    shown = _profile(suite, first)
    assert shown.first_name.value == "Светлана"
    assert shown.attributes["shoe_size"] == "38.5"
    assert [s.record_count for s in shown.sources] == [2]
    assert _profile(suite, second).first_name.value == "Иван"

    # Delivered again (a relay that died before recording the delivery): nothing changes.
    again = suite.profile.ApplyBatch(profile_pb2.ApplyBatchRequest(records=good), timeout=T)
    assert [r.applied.changed for r in again.results] == [False, False, False]
    after = _profile(suite, first)
    assert after.version == shown.version
    assert [s.record_count for s in after.sources] == [2]


def test_apply_batch_refuses_an_empty_or_oversized_call(suite) -> None:
    for records in ([], [_record(str(uuid.uuid4()), "Анна")] * 1001):
        with pytest.raises(grpc.RpcError) as refused:
            suite.profile.ApplyBatch(profile_pb2.ApplyBatchRequest(records=records), timeout=T)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def _applied_spans(exporter, trace_id: int, count: int, timeout_s: float = 10.0) -> list:
    def spans() -> list:
        return [
            s
            for s in exporter.get_finished_spans()
            if s.context.trace_id == trace_id and s.name == "profile apply record"
        ]

    return wait_until(
        spans, timeout_s, what=f"{count} applied-record spans", until=lambda s: len(s) >= count
    )


def test_a_bulk_identify_stream_reaches_profiles_through_apply_batch_once(
    suite, suite_database, span_exporter
) -> None:
    """An import's records reach their profiles as ApplyBatch calls, each record continuing
    the trace that accepted it; the relay delivering them all again changes nothing."""
    phones = [random_phone() for _ in range(30)]
    names = ["Анна", "Олег", "Ирина"]
    requests = [
        identify("import", phones=(phone,), first_name=names[n % 3], last_name="Петрова")
        for n, phone in enumerate(phones)
    ]
    # A customer's second record in the same import (a new surname): applied after the first.
    later = identify("import", phones=(phones[0],), first_name="Анна", last_name="Сидорова")
    later.observed_time.CopyFrom(at("2026-01-02T00:00:00Z"))
    requests[0].observed_time.CopyFrom(at("2026-01-01T00:00:00Z"))
    requests.append(later)
    reply = suite.ingestion.IdentifyStream(iter(requests), timeout=T)
    assert reply.accepted_count == len(requests)
    statuses = [suite.wait_processed(r.record_ref, timeout_s=30) for r in requests]
    assert {s.state for s in statuses} == {DELIVERED}

    customers = {s.customer_id for s in statuses}
    assert len(customers) == len(phones)
    profiles = {c: _profile(suite, c) for c in customers}
    for request, status in zip(requests[1:-1], statuses[1:-1], strict=True):
        assert profiles[status.customer_id].first_name.value == request.record.name.first_name
    assert statuses[-1].customer_id == statuses[0].customer_id
    assert profiles[statuses[0].customer_id].last_name.value == "Сидорова"
    assert [s.record_count for s in profiles[statuses[0].customer_id].sources] == [2]

    # The batch path carried them: ApplyBatch calls, and one profile span per record in the
    # trace of the stream that accepted the records.
    spans = span_exporter.get_finished_spans()
    assert any(s.name == APPLY_BATCH for s in spans)
    stream = max(
        (s for s in spans if s.name == "/svod.ingestion.v1.IngestionService/IdentifyStream"),
        key=lambda s: s.start_time,
    )
    applied = _applied_spans(span_exporter, stream.context.trace_id, len(requests))
    assert len(applied) == len(requests)

    # Delivered again through the relay (as after a crash before it recorded the delivery).
    with suite_database.admin_connect() as conn:
        conn.execute(
            "INSERT INTO ingestion.outbox (topic, key) SELECT 'record.identify', record_pk::text "
            "FROM ingestion.records WHERE source = 'import' AND message_id = ANY(%s) "
            "ORDER BY record_pk",
            ([r.record_ref.message_id for r in requests],),
        )

        def queued() -> int:
            return conn.execute(
                "SELECT count(*) FROM ingestion.outbox WHERE topic = 'record.identify'"
            ).fetchone()[0]

        wait_until(queued, 30, "the redelivery finished", 0.1, until=lambda n: n == 0)
    for customer, before in profiles.items():
        after = _profile(suite, customer)
        assert after.version == before.version
        assert [s.record_count for s in after.sources] == [s.record_count for s in before.sources]
