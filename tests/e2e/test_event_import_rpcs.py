"""Ingestion's event-import RPCs against the running suite: what a caller gets wrong is answered
precisely (INVALID_ARGUMENT with field violations, NOT_FOUND, FAILED_PRECONDITION), events are
idempotent by (source, message id) and visible through GetRecordStatus from the moment they are
staged, an event of an unknown customer is handed to the streaming delivery, and a committed
import ends with every staged event delivered to its customer."""

from __future__ import annotations

import grpc
import pytest

from svod.common.v1 import common_pb2
from svod.ingestion.v1 import ingestion_pb2
from tests.builders import identify, random_phone, track, unique
from tests.e2e.test_identify_slice import field_violations
from tests.waiting import wait_until

T = 30.0
Import = ingestion_pb2.EventImport
PHONE = common_pb2.IDENTIFIER_TYPE_PHONE


def stage(suite, import_id: str, *messages: list[ingestion_pb2.TrackRequest]):
    return list(
        suite.ingestion.StageEventImport(
            iter(
                ingestion_pb2.StageEventImportRequest(import_id=import_id, events=m)
                for m in messages
            ),
            timeout=T,
        )
    )


def finished(suite, import_id: str, timeout_s: float = 120.0) -> ingestion_pb2.EventImport:
    return wait_until(
        lambda: suite.ingestion.GetEventImport(
            ingestion_pb2.GetEventImportRequest(import_id=import_id), timeout=T
        ),
        timeout_s,
        "the import finished",
        0.2,
        until=lambda job: job.state in (Import.STATE_SUCCEEDED, Import.STATE_FAILED),
    )


def order(source: str, phone: str, total: str = "100") -> ingestion_pb2.TrackRequest:
    return track(
        source,
        common_pb2.EVENT_TYPE_ORDER_PLACED,
        common_pb2.Identifier(type=PHONE, value=phone),
        total=total,
        order_id=unique("o"),
    )


def status(suite, event: ingestion_pb2.TrackRequest) -> ingestion_pb2.RecordStatus:
    return suite.ingestion.GetRecordStatus(
        ingestion_pb2.GetRecordStatusRequest(record_ref=event.record_ref), timeout=T
    )


def test_an_import_staged_twice_and_committed_twice_delivers_every_event_once(suite) -> None:
    phone = random_phone()
    person = identify(unique("crm"), phones=(phone,), first_name="Вера")
    suite.ingestion.Identify(person, timeout=T)
    customer = suite.wait_processed(person.record_ref).customer_id
    source = unique("shop")
    import_id = unique("evt")
    events = [order(source, phone, total=str(100 + n)) for n in range(4)]
    stranger = order(source, random_phone())
    bad = order(source, phone, total="-5")
    (first,) = stage(suite, import_id, [*events[:2], stranger, bad])
    assert (first.accepted_count, first.duplicate_count, first.rejected_count) == (3, 0, 1)
    assert (first.handed_over_count, first.import_staged_count) == (1, 2)
    (refused,) = first.rejected
    assert refused.index == 3 and refused.field_violations
    assert status(suite, events[0]).state == ingestion_pb2.RecordStatus.STATE_PENDING

    # The first message sent again (a resumed client) with the rest: duplicates, then new.
    again, rest = stage(suite, import_id, [*events[:2], stranger], events[2:])
    assert (again.accepted_count, again.duplicate_count, again.handed_over_count) == (0, 3, 0)
    assert (rest.accepted_count, rest.import_staged_count) == (2, 4)

    job = suite.ingestion.CommitEventImport(
        ingestion_pb2.CommitEventImportRequest(import_id=import_id), timeout=T
    )
    assert job.state == Import.STATE_RUNNING and job.events_handed_over == 1
    repeat = suite.ingestion.CommitEventImport(
        ingestion_pb2.CommitEventImportRequest(import_id=import_id), timeout=T
    )
    assert repeat.import_id == import_id and repeat.state != Import.STATE_STAGING
    done = finished(suite, import_id)
    assert done.state == Import.STATE_SUCCEEDED, done
    assert (done.events_applied, done.records_delivered, done.records_failed) == (4, 4, 0)
    assert done.customers_changed == 1
    for event in events:
        seen = status(suite, event)
        assert seen.state == ingestion_pb2.RecordStatus.STATE_DELIVERED, seen
        assert seen.customer_id == customer
    # The stranger's order went the streaming way: waiting for its customer, or held.
    assert status(suite, stranger).state in (
        ingestion_pb2.RecordStatus.STATE_PENDING,
        ingestion_pb2.RecordStatus.STATE_UNATTRIBUTED,
    )

    # A committed import takes no more events.
    with pytest.raises(grpc.RpcError) as late:
        stage(suite, import_id, [order(source, phone)])
    assert late.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    # The same events in another import: duplicates, nothing applied again.
    other = unique("evt")
    (dup,) = stage(suite, other, events)
    assert (dup.accepted_count, dup.duplicate_count, dup.import_staged_count) == (0, 4, 0)
    suite.ingestion.CommitEventImport(
        ingestion_pb2.CommitEventImportRequest(import_id=other), timeout=T
    )
    empty = finished(suite, other)
    assert empty.state == Import.STATE_SUCCEEDED and empty.records_delivered == 0


def test_bad_requests_are_refused_precisely(suite) -> None:
    source = unique("shop")
    with pytest.raises(grpc.RpcError) as missing:
        stage(suite, "", [order(source, random_phone())])
    assert missing.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "import_id" in field_violations(missing.value)

    with pytest.raises(grpc.RpcError) as malformed:
        suite.ingestion.GetEventImport(
            ingestion_pb2.GetEventImportRequest(import_id="no spaces/here"), timeout=T
        )
    assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "import_id" in field_violations(malformed.value)

    phone = random_phone()
    too_many = [order(source, phone) for _ in range(2001)]
    with pytest.raises(grpc.RpcError) as over:
        stage(suite, unique("evt"), too_many)
    assert over.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "events" in field_violations(over.value)

    # A customer import's id names no event import.
    customers = unique("cust")
    list(
        suite.ingestion.StageCustomerImport(
            iter([ingestion_pb2.StageCustomerImportRequest(import_id=customers)]), timeout=T
        )
    )
    with pytest.raises(grpc.RpcError) as other_kind:
        stage(suite, customers, [order(source, phone)])
    assert other_kind.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    for call, request_type in (
        (suite.ingestion.CommitEventImport, ingestion_pb2.CommitEventImportRequest),
        (suite.ingestion.GetEventImport, ingestion_pb2.GetEventImportRequest),
    ):
        for import_id in (unique("never"), customers):
            with pytest.raises(grpc.RpcError) as unknown:
                call(request_type(import_id=import_id), timeout=T)
            assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_message_repeating_an_event_stores_its_first_copy(suite) -> None:
    """A message naming one (source, message id) twice: the plain insert of its records meets
    itself (a unique violation) and the message is stored again with ON CONFLICT, the first
    copy stored; the second is its duplicate when it is the same event, refused as a reuse of
    the message id when it is another."""
    phone = random_phone()
    person = identify(unique("crm"), phones=(phone,), first_name="Инна")
    suite.ingestion.Identify(person, timeout=T)
    suite.wait_processed(person.record_ref)
    source = unique("shop")
    first, other = order(source, phone, total="300"), order(source, phone)
    changed = ingestion_pb2.TrackRequest()
    changed.CopyFrom(first)
    changed.event.total.units = 301
    (answer,) = stage(suite, unique("evt"), [first, other, first, changed])
    assert (answer.accepted_count, answer.duplicate_count, answer.rejected_count) == (2, 1, 1)
    (reused,) = answer.rejected
    assert reused.index == 3 and "already used" in reused.reason
    assert status(suite, first).state == ingestion_pb2.RecordStatus.STATE_PENDING
