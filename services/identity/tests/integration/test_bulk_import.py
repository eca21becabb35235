"""Bulk import through identity's API (docs/bulk-import.md): staging, commit, the job, results,
idempotency by (source, message id), and the partition against streaming Resolve."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2

from services.identity.tests.integration.test_identity_api import (
    EXACT,
    T,
    email,
    phone,
    request,
    resolve,
    surname,
)
from svod.identity.v1 import identity_pb2
from svod_identity.domain.jobs import JobKind, JobPhase, JobState
from tests.waiting import wait_until

CREATED = identity_pb2.RESOLUTION_OUTCOME_CREATED
ALREADY = identity_pb2.RESOLUTION_OUTCOME_ALREADY_RESOLVED
SUCCEEDED = identity_pb2.RESOLUTION_JOB_STATE_SUCCEEDED
# A job runs in a worker process of its own (a Python start and the import's work).
JOB_TIMEOUT_S = 180.0


def stage(
    suite, import_id: str, messages: Iterable[list[identity_pb2.ResolveRequest]]
) -> list[identity_pb2.StageImportRecordsResponse]:
    requests: Iterator[identity_pb2.StageImportRecordsRequest] = (
        identity_pb2.StageImportRecordsRequest(import_id=import_id, records=records)
        for records in messages
    )
    return list(suite.identity.StageImportRecords(requests, timeout=T * 3))


def wait_job(suite, job_id: str, timeout_s: float = JOB_TIMEOUT_S) -> identity_pb2.ResolutionJob:
    def done() -> identity_pb2.ResolutionJob | None:
        job = suite.identity.GetResolutionJob(
            identity_pb2.GetResolutionJobRequest(job_id=job_id), timeout=T
        )
        return job if job.state in (SUCCEEDED, identity_pb2.RESOLUTION_JOB_STATE_FAILED) else None

    return wait_until(done, timeout_s, what=f"job {job_id} done", interval_s=0.2)


def results(suite, import_id: str, after: int = 0) -> list[identity_pb2.ImportRecordResult]:
    return list(
        suite.identity.ListImportResults(
            identity_pb2.ListImportResultsRequest(import_id=import_id, after_sequence=after),
            timeout=T * 3,
        )
    )


def import_records(suite, records: list[identity_pb2.ResolveRequest], chunk: int = 3) -> str:
    import_id = f"test-{secrets.token_hex(4)}"
    stage(suite, import_id, [records[i : i + chunk] for i in range(0, len(records), chunk)])
    suite.identity.CommitImport(identity_pb2.CommitImportRequest(import_id=import_id), timeout=T)
    job = wait_job(suite, import_id)
    assert job.state == SUCCEEDED, job.error
    return import_id


def test_job_enums_mirror_the_proto() -> None:
    for enum_type, domain, prefix in (
        (identity_pb2.ResolutionJobKind, JobKind, "RESOLUTION_JOB_KIND_"),
        (identity_pb2.ResolutionJobState, JobState, "RESOLUTION_JOB_STATE_"),
        (identity_pb2.ResolutionJobPhase, JobPhase, "RESOLUTION_JOB_PHASE_"),
    ):
        names = {v.name.removeprefix(prefix).lower() for v in enum_type.DESCRIPTOR.values}
        # UNSPECIFIED (0) is a phase a job has before its first attempt, never a kind or state.
        assert names - {"unspecified"} == {m.value for m in domain} - {"unspecified"}


def test_an_import_is_staged_committed_and_answers_per_record(suite) -> None:
    shared, other = phone(), phone()
    mail = email()
    first = request(phones=(shared,), first="Ирина", last="Белова")
    second = request(phones=(shared,), emails=(mail,), first="Ира", last="Белова")
    third = request(phones=(other,), first="Олег", last="Жуков")
    bad = request(phones=("not a phone",))
    import_id = f"test-{secrets.token_hex(4)}"

    answers = stage(suite, import_id, [[first, bad], [second, first], [third]])

    assert [(a.staged_count, a.duplicate_count) for a in answers] == [(1, 0), (1, 1), (1, 0)]
    assert answers[-1].import_staged_count == 3
    (refused,) = answers[0].refused
    assert refused.index == 1 and refused.record_ref == bad.record_ref
    assert refused.error.code == code_pb2.INVALID_ARGUMENT
    details = error_details_pb2.BadRequest()
    assert refused.error.details[0].Unpack(details)
    assert [v.field for v in details.field_violations] == ["identifiers[0].value"]
    staging = suite.identity.GetResolutionJob(
        identity_pb2.GetResolutionJobRequest(job_id=import_id), timeout=T
    )
    assert staging.state == identity_pb2.RESOLUTION_JOB_STATE_STAGING
    assert staging.kind == identity_pb2.RESOLUTION_JOB_KIND_IMPORT
    # Results come only once the import has succeeded.
    with pytest.raises(grpc.RpcError) as early:
        results(suite, import_id)
    assert early.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    committed = suite.identity.CommitImport(
        identity_pb2.CommitImportRequest(import_id=import_id), timeout=T
    )
    assert committed.state in (
        identity_pb2.RESOLUTION_JOB_STATE_QUEUED,
        identity_pb2.RESOLUTION_JOB_STATE_RUNNING,
        SUCCEEDED,
    )
    job = wait_job(suite, import_id)
    assert job.state == SUCCEEDED, job.error
    assert (job.customers_created, job.records_linked, job.records_already_resolved) == (2, 1, 0)
    assert job.records_total == 3 and job.phase == identity_pb2.RESOLUTION_JOB_PHASE_DONE
    # Committing again changes nothing; staging after the commit is refused.
    again = suite.identity.CommitImport(
        identity_pb2.CommitImportRequest(import_id=import_id), timeout=T
    )
    assert again.state == SUCCEEDED
    with pytest.raises(grpc.RpcError) as late:
        stage(suite, import_id, [[request(phones=(phone(),))]])
    assert late.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    placed = results(suite, import_id)
    assert [r.record_ref for r in placed] == [first.record_ref, second.record_ref, third.record_ref]
    assert [r.outcome for r in placed] == [CREATED, EXACT, CREATED]
    assert placed[0].customer_id == placed[1].customer_id != placed[2].customer_id
    assert [i.value for i in placed[0].normalized_identifiers] == [shared.replace(" ", "")]
    assert placed[0].sequence < placed[1].sequence < placed[2].sequence
    # Resumed after the first result.
    assert results(suite, import_id, after=placed[0].sequence) == placed[1:]
    # The next online Resolve sees the import's customers and identifiers.
    online = resolve(suite, request(emails=(mail,), first="Ирина", last="Белова"))
    assert online.outcome == EXACT and online.customer_id == placed[0].customer_id


def test_a_resent_import_changes_nothing(suite) -> None:
    records = [request(phones=(phone(),), first="Пётр", last="Сомов") for _ in range(4)]
    first = results(suite, import_records(suite, records))
    again = results(suite, import_records(suite, records, chunk=2))
    assert [r.outcome for r in again] == [ALREADY] * 4
    assert [r.customer_id for r in again] == [r.customer_id for r in first]


def test_bad_import_calls_get_precise_refusals(suite) -> None:
    with pytest.raises(grpc.RpcError) as missing:
        stage(suite, "", [[request(phones=(phone(),))]])
    assert missing.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as malformed:
        stage(suite, "bad id!", [[request(phones=(phone(),))]])
    assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as unknown:
        suite.identity.CommitImport(
            identity_pb2.CommitImportRequest(import_id=f"never-{secrets.token_hex(3)}"),
            timeout=T,
        )
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as no_job:
        suite.identity.GetResolutionJob(
            identity_pb2.GetResolutionJobRequest(job_id="nobody"), timeout=T
        )
    assert no_job.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as too_many:
        stage(suite, f"test-{secrets.token_hex(3)}", [[request(phones=(phone(),))] * 2001])
    assert too_many.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_quality_accepts_what_an_import_reports(suite, suite_database) -> None:
    """An import's review pairs reach quality. A pair whose two customers a later record of
    the import joined is no suspected duplicate any more and is not reported: quality refuses
    a customer paired with itself (INVALID_ARGUMENT), and once refused the whole report, with
    the pairs that still hold, was a dead letter."""
    surname = f"Муравьева{secrets.choice('абвгдежз')}{secrets.choice('клмнпрст')}ина"
    born, other_born = (1985, 3, 4), (1979, 11, 23)
    p1, p2, p3, p4 = phone(), phone(), phone(), phone()
    full = dict(first="Феврония", last=surname)
    records = [
        request(phones=(p1,), born=born, **full),
        # The surname and birth date alone: a review against the first, a customer of its own.
        request(phones=(p2,), last=surname, born=born),
        # Both phones: joins the two (the review pair is settled within the import).
        request(phones=(p1, p2), born=born, **full),
        # Another such pair that nothing settles: reported to quality.
        request(phones=(p3,), born=other_born, **full),
        request(phones=(p4,), last=surname, born=other_born),
    ]
    import_id = import_records(suite, records)
    job = wait_job(suite, import_id)
    assert job.review_items_opened >= 2
    placed = results(suite, import_id)
    joined, kept = placed[0].customer_id, (placed[3].customer_id, placed[4].customer_id)
    assert placed[1].customer_id == placed[2].customer_id == joined
    assert kept[0] != kept[1]

    def reports() -> list[tuple[object, ...]]:
        with suite_database.admin_connect() as conn:
            return conn.execute(
                "SELECT outbox_pk, failed_at, last_error FROM identity.outbox "
                "WHERE topic = 'quality.duplicates' AND (position(%s in "
                "convert_from(payload, 'UTF8')) > 0 OR position(%s in "
                "convert_from(payload, 'UTF8')) > 0)",
                (joined, kept[0]),
            ).fetchall()

    def delivered() -> bool:
        pending = reports()
        assert all(failed is None for _, failed, _ in pending), pending
        return not pending

    wait_until(delivered, 30, what="the import's quality reports delivered")
    first, second = sorted(kept)
    with suite_database.admin_connect() as conn:
        suspected = conn.execute(
            "SELECT first_customer_id::text, second_customer_id::text, suspected "
            "FROM quality.duplicate_pairs WHERE first_customer_id = ANY(%s) "
            "OR second_customer_id = ANY(%s)",
            ([joined, *kept], [joined, *kept]),
        ).fetchall()
    assert suspected == [(first, second, True)]


def test_results_read_in_pages_are_every_record_once_in_order(suite, monkeypatch) -> None:
    """ListImportResults reads the staged records a page at a time (``RESULTS_PAGE``), the
    page first and then its rows in ``records``: across page boundaries, and resumed at one,
    every record comes once, in staging order, with its customer."""
    from svod_identity.adapters import job_storage

    phones = [phone() for _ in range(7)]
    records = [request(phones=(p,), first="Анна", last=surname(True)) for p in phones]
    # The last record links to the first (a customer across pages).
    records.append(request(phones=(phones[0],), first="Анна", last=records[0].name.last_name))
    import_id = import_records(suite, records, chunk=2)
    whole = results(suite, import_id)
    monkeypatch.setattr(job_storage, "RESULTS_PAGE", 3)
    paged = results(suite, import_id)
    assert paged == whole
    assert [r.record_ref for r in paged] == [r.record_ref for r in records]
    assert [r.sequence for r in paged] == sorted(r.sequence for r in paged)
    assert paged[7].customer_id == paged[0].customer_id
    assert results(suite, import_id, after=paged[2].sequence) == whole[3:]
    assert results(suite, import_id, after=paged[5].sequence) == whole[6:]


def test_an_import_counts_the_sharers_of_held_identifiers(suite, suite_database) -> None:
    """A record refused an identifier because its holder is clearly somebody else counts as a
    sharer of it, as ``Resolve`` counts it: for an identifier held before the import and for
    one the import itself gave out."""
    held, given = phone(), phone()
    owner = resolve(suite, request(phones=(held,), first="Ирина", last="Белова", born=(1985, 3, 4)))
    records = [
        request(phones=(held,), first="Олег", last="Жуков", born=(1951, 7, 9)),
        request(phones=(given,), first="Марина", last="Соколова", born=(1990, 1, 2)),
        request(phones=(given,), first="Пётр", last="Ильин", born=(1947, 12, 30)),
    ]
    placed = results(suite, import_records(suite, records))
    assert len({owner.customer_id, *(r.customer_id for r in placed)}) == 4
    with suite_database.admin_connect() as conn:
        rows = dict(
            conn.execute(
                "SELECT value, sharers FROM identity.identifiers "
                "WHERE id_type = 'phone' AND value = ANY(%s)",
                ([held.replace(" ", ""), given.replace(" ", "")],),
            ).fetchall()
        )
    assert rows == {
        held.replace(" ", ""): [placed[0].customer_id],
        given.replace(" ", ""): [placed[2].customer_id],
    }


def test_result_pages_are_the_results_in_pages(suite, monkeypatch) -> None:
    """ListImportResultPages answers ListImportResults' results, in order, a full page per
    message but the last, and resumes after a sequence as ListImportResults does."""
    from svod_identity.domain import jobs

    records = [request(phones=(phone(),), first="Олег", last=surname()) for _ in range(5)]
    import_id = import_records(suite, records, chunk=2)
    whole = results(suite, import_id)
    monkeypatch.setattr(jobs, "RESULTS_PER_PAGE", 2)

    def pages(after: int = 0) -> list[list[identity_pb2.ImportRecordResult]]:
        return [
            list(page.results)
            for page in suite.identity.ListImportResultPages(
                identity_pb2.ListImportResultsRequest(import_id=import_id, after_sequence=after),
                timeout=T * 3,
            )
        ]

    assert pages() == [whole[0:2], whole[2:4], whole[4:5]]
    assert pages(after=whole[1].sequence) == [whole[2:4], whole[4:5]]
    assert pages(after=whole[4].sequence) == []
    nobody = suite.identity.ListImportResultPages(
        identity_pb2.ListImportResultsRequest(import_id=f"never-{secrets.token_hex(3)}"),
        timeout=T,
    )
    with pytest.raises(grpc.RpcError) as unknown:
        list(nobody)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
