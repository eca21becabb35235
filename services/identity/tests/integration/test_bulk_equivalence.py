"""Equivalence: one generated data set through streaming ResolveBatch and through a bulk import,
each into an empty graph of its own, gives the same partition of records into customers (at
most 0.5% of the true pairs placed differently, every difference listed)."""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterator
from itertools import combinations

import grpc
import pytest

from benchmarks.identity import datasets
from services.identity.tests.integration.test_bulk_import import (
    SUCCEEDED,
    results,
    stage,
    wait_job,
)
from svod.identity.v1 import identity_pb2, identity_pb2_grpc
from svod_cli.suite import InProcessSuite, create_database, drop_database, prepare_database

PERSONS = 250
SEED = 4242
CHUNK = 500  # ResolveBatch's records per transaction


@pytest.fixture
def empty_identity(postgres_admin_url) -> Iterator:
    """An identity service of its own on an empty database (its peers are not started: what
    it announces to them waits in its outbox)."""
    started: list[tuple[str, InProcessSuite]] = []

    def start() -> identity_pb2_grpc.IdentityServiceStub:
        name = f"svod_test_eq_{secrets.token_hex(4)}"
        url = create_database(postgres_admin_url, name)
        prepare_database(url)
        suite = InProcessSuite(url, services=("identity",)).start()
        started.append((name, suite))
        channel = grpc.insecure_channel(suite.target("identity"))
        return identity_pb2_grpc.IdentityServiceStub(channel)

    try:
        yield start
    finally:
        for name, suite in started:
            suite.stop()
            drop_database(postgres_admin_url, name)


def pairs_of(partition: dict[tuple[str, str], str]) -> set[frozenset[tuple[str, str]]]:
    members: dict[str, list[tuple[str, str]]] = {}
    for ref, customer in partition.items():
        members.setdefault(customer, []).append(ref)
    return {frozenset(p) for group in members.values() for p in combinations(sorted(group), 2)}


def test_bulk_import_partitions_records_as_streaming_resolve_does(empty_identity) -> None:
    requests, truth = datasets.generated(PERSONS, SEED)
    streaming = empty_identity()
    for start in range(0, len(requests), CHUNK):
        streaming.ResolveBatch(iter(requests[start : start + CHUNK]), timeout=300)
    # Where every record is now (a record's answer names its customer at that moment).
    streamed = {
        (m.record_ref.source, m.record_ref.message_id): m.customer_id
        for m in streaming.ExportRecordMapping(
            identity_pb2.ExportRecordMappingRequest(), timeout=60
        )
    }

    bulk = empty_identity()

    class Suite:  # what the helpers of test_bulk_import need
        identity = bulk

    import_id = f"eq-{secrets.token_hex(3)}"
    stage(Suite, import_id, [requests[i : i + 1000] for i in range(0, len(requests), 1000)])
    bulk.CommitImport(identity_pb2.CommitImportRequest(import_id=import_id), timeout=30)
    job = wait_job(Suite, import_id, timeout_s=600)
    assert job.state == SUCCEEDED, job.error
    imported = {
        (r.record_ref.source, r.record_ref.message_id): r.customer_id
        for r in results(Suite, import_id)
    }
    assert set(imported) == set(streamed) == set(truth)

    true_pairs = pairs_of({ref: truth[ref] for ref in truth})
    ours, theirs = pairs_of(imported), pairs_of(streamed)
    differing = ours ^ theirs
    listed = sorted(
        (
            "bulk only" if pair in ours else "streaming only",
            sorted(pair),
            "true pair" if pair in true_pairs else "different people",
        )
        for pair in differing
    )
    assert len(differing) <= 0.005 * len(true_pairs), listed
    # Both place the records as well as each other: neither is the worse matcher.
    counts = Counter(
        ("tp" if p in true_pairs else "fp", "bulk" if p in ours else "streaming") for p in differing
    )
    assert abs(counts[("tp", "bulk")] - counts[("tp", "streaming")]) <= max(
        2, 0.005 * len(true_pairs)
    ), counts


# Records per window of the batch engine in the windowed run: neither a multiple nor a divisor
# of ResolveBatch's 500, so windows end in the middle of an online transaction.
WINDOW = 150


def test_an_import_placed_in_windows_is_the_import_placed_at_once(
    empty_identity, monkeypatch
) -> None:
    """The batch engine places a big import window after window, each window reading back
    what the earlier ones wrote in the job's transaction: the partition, the outcome and the
    rows written are those of the import placed in one window. Part of the records are in the
    graph before (resolved online) and some of them are imported again."""
    requests, _ = datasets.generated(PERSONS, SEED)
    before, imported = requests[:300], requests[250:]
    seen = []
    for window in ("", str(WINDOW)):
        if window:
            monkeypatch.setenv("SVOD_IDENTITY_BATCH_WINDOW", window)
        else:
            monkeypatch.delenv("SVOD_IDENTITY_BATCH_WINDOW", raising=False)
        stub = empty_identity()
        stub.ResolveBatch(iter(before), timeout=300)

        class Suite:
            identity = stub

        import_id = f"win-{secrets.token_hex(3)}"
        stage(Suite, import_id, [imported[i : i + 1000] for i in range(0, len(imported), 1000)])
        stub.CommitImport(identity_pb2.CommitImportRequest(import_id=import_id), timeout=30)
        job = wait_job(Suite, import_id, timeout_s=600)
        assert job.state == SUCCEEDED, job.error
        placed = {
            (m.record_ref.source, m.record_ref.message_id): m.customer_id
            for m in stub.ExportRecordMapping(identity_pb2.ExportRecordMappingRequest(), timeout=60)
        }
        answered = Counter((r.outcome, r.rule) for r in results(Suite, import_id))
        outcome = (
            job.customers_created,
            job.records_linked,
            job.records_already_resolved,
            job.customers_merged,
            job.review_items_opened,
        )
        seen.append((pairs_of(placed), outcome, answered, len(set(placed.values()))))
    (whole, whole_outcome, whole_answers, whole_customers), windowed = seen
    assert whole_outcome[2] == 50  # the records imported again
    assert windowed[0] == whole, sorted(windowed[0] ^ whole)[:10]
    assert windowed[1:] == (whole_outcome, whole_answers, whole_customers)


def _rules_with(stub, **changes) -> None:
    rules = stub.GetRules(identity_pb2.GetRulesRequest(), timeout=30)
    version = rules.version
    for name, value in changes.items():
        setattr(rules, name, value)
    stub.UpdateRules(
        identity_pb2.UpdateRulesRequest(rules=rules, expected_version=version, actor="test"),
        timeout=30,
    )


def _customer(stub, request) -> str:
    return stub.GetRecordCustomer(
        identity_pb2.GetRecordCustomerRequest(record_ref=request.record_ref), timeout=30
    ).customer_id


def test_reresolve_reports_then_applies_a_rules_change(empty_identity) -> None:
    from services.identity.tests.integration.test_identity_api import email, phone, request

    stub = empty_identity()
    same = dict(first="Ирина", last="Белова", born=(1985, 3, 4), city="Казань")
    first = request(phones=(phone(),), **same)
    second = request(emails=(email(),), phones=(phone(),), **same)
    other = request(phones=(phone(),), first="Олег", last="Жуков")
    for record in (first, second, other):
        stub.Resolve(record, timeout=30)
    together = _customer(stub, first)
    assert _customer(stub, second) == together != _customer(stub, other)

    class Suite:
        identity = stub

    # Fuzzy matching off: the two records only fuzzy matching joined would be two customers.
    _rules_with(stub, fuzzy_disabled=True)
    preview = stub.ReresolveAll(identity_pb2.ReresolveAllRequest(dry_run=True), timeout=30)
    report = wait_job(Suite, preview.job_id)
    assert report.state == SUCCEEDED, report.error
    assert report.changes.would_split_count == 1 and report.changes.would_merge_count == 0
    assert report.changes.records_evaluated == 3
    assert _customer(stub, second) == together  # a dry run changes nothing

    with pytest.raises(grpc.RpcError) as no_actor:
        stub.ReresolveAll(identity_pb2.ReresolveAllRequest(), timeout=30)
    assert no_actor.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    applied = stub.ReresolveAll(
        identity_pb2.ReresolveAllRequest(job_id="rules-v2", actor="ops", reason="fuzzy off"),
        timeout=30,
    )
    done = wait_job(Suite, applied.job_id)
    assert done.state == SUCCEEDED, done.error
    assert (done.customers_created, done.changes.would_split_count) == (1, 1)
    # The oldest record keeps the id; the other went to a new customer, with its identifiers.
    assert _customer(stub, first) == together
    moved = _customer(stub, second)
    assert moved != together
    found = stub.LookupCustomer(
        identity_pb2.LookupCustomerRequest(identifier=second.identifiers[0]), timeout=30
    )
    assert found.customer_id == moved
    ledger = stub.ListLedgerEntries(
        identity_pb2.ListLedgerEntriesRequest(customer_id=together, kinds=["customer_split"]),
        timeout=30,
    )
    (split,) = ledger.entries
    assert (split.other_customer_id, split.actor, split.reason) == (moved, "ops", "fuzzy off")
    # The same job id names the same job: nothing runs twice.
    again = stub.ReresolveAll(
        identity_pb2.ReresolveAllRequest(job_id="rules-v2", actor="ops"), timeout=30
    )
    assert again.state == SUCCEEDED and again.attempts == done.attempts
