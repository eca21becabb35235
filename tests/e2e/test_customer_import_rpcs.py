"""Ingestion's customer-import RPCs against the running suite: what a caller gets wrong is
answered precisely (INVALID_ARGUMENT with field violations, NOT_FOUND, FAILED_PRECONDITION),
records are idempotent by (source, message id) and visible through GetRecordStatus from the
moment they are staged, and a committed import ends with every record delivered."""

from __future__ import annotations

import uuid

import grpc
import pytest

from svod.common.v1 import common_pb2
from svod.ingestion.v1 import ingestion_pb2
from svod.profile.v1 import profile_pb2
from tests.builders import identify, random_phone, unique
from tests.e2e.test_identify_slice import field_violations
from tests.waiting import wait_until

T = 30.0
Import = ingestion_pb2.CustomerImport


def stage(suite, import_id: str, *messages: list[ingestion_pb2.IdentifyRequest]):
    return list(
        suite.ingestion.StageCustomerImport(
            iter(
                ingestion_pb2.StageCustomerImportRequest(import_id=import_id, records=m)
                for m in messages
            ),
            timeout=T,
        )
    )


def finished(suite, import_id: str, timeout_s: float = 120.0) -> ingestion_pb2.CustomerImport:
    return wait_until(
        lambda: suite.ingestion.GetCustomerImport(
            ingestion_pb2.GetCustomerImportRequest(import_id=import_id), timeout=T
        ),
        timeout_s,
        "the import finished",
        0.2,
        until=lambda job: job.state in (Import.STATE_SUCCEEDED, Import.STATE_FAILED),
    )


def test_an_import_staged_twice_and_committed_twice_delivers_every_record_once(suite) -> None:
    source = unique("imp")
    import_id = unique("cust")
    records = [identify(source, phones=(random_phone(),), first_name="Вера") for _ in range(5)]
    bad = identify(source, emails=("not an e-mail",))
    (first,) = stage(suite, import_id, [*records[:3], bad])
    assert (first.accepted_count, first.duplicate_count, first.rejected_count) == (3, 0, 1)
    (refused,) = first.rejected
    assert refused.index == 3 and refused.field_violations[0].field == "record.identifiers[0].value"
    status = suite.ingestion.GetRecordStatus(
        ingestion_pb2.GetRecordStatusRequest(record_ref=records[0].record_ref), timeout=T
    )
    assert status.state == ingestion_pb2.RecordStatus.STATE_PENDING

    # The first message sent again (a resumed client) with the rest: duplicates, then new.
    again, rest = stage(suite, import_id, records[:3], records[3:])
    assert (again.accepted_count, again.duplicate_count) == (0, 3)
    assert (rest.accepted_count, rest.import_staged_count) == (2, 5)

    job = suite.ingestion.CommitCustomerImport(
        ingestion_pb2.CommitCustomerImportRequest(import_id=import_id), timeout=T
    )
    assert job.state == Import.STATE_RUNNING and job.records_staged == 5
    repeat = suite.ingestion.CommitCustomerImport(
        ingestion_pb2.CommitCustomerImportRequest(import_id=import_id), timeout=T
    )
    assert repeat.import_id == import_id and repeat.state != Import.STATE_STAGING
    done = finished(suite, import_id)
    assert done.state == Import.STATE_SUCCEEDED, done
    assert (done.customers_created, done.records_delivered, done.records_failed) == (5, 5, 0)
    for record in records:
        status = suite.ingestion.GetRecordStatus(
            ingestion_pb2.GetRecordStatusRequest(record_ref=record.record_ref), timeout=T
        )
        assert status.state == ingestion_pb2.RecordStatus.STATE_DELIVERED and status.customer_id

    # A committed import takes no more records.
    with pytest.raises(grpc.RpcError) as late:
        stage(suite, import_id, [identify(source, phones=(random_phone(),))])
    assert late.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    # The same records in another import: duplicates, nothing resolved again.
    other = unique("cust")
    (dup,) = stage(suite, other, records)
    assert (dup.accepted_count, dup.duplicate_count, dup.import_staged_count) == (0, 5, 0)
    suite.ingestion.CommitCustomerImport(
        ingestion_pb2.CommitCustomerImportRequest(import_id=other), timeout=T
    )
    empty = finished(suite, other)
    assert empty.state == Import.STATE_SUCCEEDED and empty.records_delivered == 0


def test_bad_requests_are_refused_precisely(suite) -> None:
    source = unique("imp")
    with pytest.raises(grpc.RpcError) as missing:
        stage(suite, "", [identify(source, phones=(random_phone(),))])
    assert missing.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "import_id" in field_violations(missing.value)

    with pytest.raises(grpc.RpcError) as malformed:
        suite.ingestion.GetCustomerImport(
            ingestion_pb2.GetCustomerImportRequest(import_id="no spaces/here"), timeout=T
        )
    assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "import_id" in field_violations(malformed.value)

    too_many = [identify(source, message_id=f"m{n}") for n in range(2001)]
    with pytest.raises(grpc.RpcError) as over:
        stage(suite, unique("cust"), too_many)
    assert over.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "records" in field_violations(over.value)

    two = unique("cust")
    with pytest.raises(grpc.RpcError) as switched:
        list(
            suite.ingestion.StageCustomerImport(
                iter(
                    [
                        ingestion_pb2.StageCustomerImportRequest(import_id=two),
                        ingestion_pb2.StageCustomerImportRequest(import_id=unique("cust")),
                    ]
                ),
                timeout=T,
            )
        )
    assert switched.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    for call in (suite.ingestion.CommitCustomerImport, suite.ingestion.GetCustomerImport):
        request_type = (
            ingestion_pb2.CommitCustomerImportRequest
            if call is suite.ingestion.CommitCustomerImport
            else ingestion_pb2.GetCustomerImportRequest
        )
        with pytest.raises(grpc.RpcError) as unknown:
            call(request_type(import_id=unique("never")), timeout=T)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


def test_profiles_fold_refuses_bad_calls_precisely_and_bad_records_alone(suite) -> None:
    """Profile's FoldCustomerImport, as the import's job calls it: a bad call is
    INVALID_ARGUMENT naming the field; a bad record fails alone, the others are folded (and
    announced once by FinishCustomerImport)."""
    customer = str(uuid.uuid4())

    def record(message_id: str, customer_id: str = customer) -> profile_pb2.ApplyRequest:
        return profile_pb2.ApplyRequest(
            customer_id=customer_id,
            record_ref=common_pb2.RecordRef(source="fold-rpc", message_id=message_id),
            name=common_pb2.PersonName(first_name="Мария"),
        )

    for import_id, records, field in (
        ("no spaces/here", [record("a")], "import_id"),
        ("", [record("a")], "import_id"),
        (unique("fold"), [], "records"),
        (unique("fold"), [record(f"m{n}") for n in range(2001)], "records"),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            suite.profile.FoldCustomerImport(
                profile_pb2.FoldCustomerImportRequest(import_id=import_id, records=records),
                timeout=T,
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert field in field_violations(refused.value)

    import_id = unique("fold")
    call = profile_pb2.FoldCustomerImportRequest(
        import_id=import_id,
        records=[record(unique("ok")), record(unique("bad"), "not-a-uuid"), record(unique("ok"))],
    )
    first = suite.profile.FoldCustomerImport(call, timeout=T).results
    assert [r.HasField("applied") for r in first] == [True, False, True]
    assert first[1].error_code == "INVALID_ARGUMENT"
    assert first[0].applied.changed and first[2].applied.changed
    again = suite.profile.FoldCustomerImport(call, timeout=T).results
    assert [r.applied.changed for r in again] == [False, False, False]
    finish = profile_pb2.FinishCustomerImportRequest(import_id=import_id)
    assert suite.profile.FinishCustomerImport(finish, timeout=T).customers_announced == 1
    assert suite.profile.FinishCustomerImport(finish, timeout=T).customers_announced == 0
    profile = suite.profile.GetProfile(
        profile_pb2.GetProfileRequest(customer_id=customer), timeout=T
    )
    assert profile.first_name.value == "Мария"
    assert [(s.source, s.record_count) for s in profile.sources] == [("fold-rpc", 2)]
