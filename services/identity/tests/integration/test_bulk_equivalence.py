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
        ("tp" if p in true_pairs else "fp", "bulk" if p in ours else "streaming")
        for p in differing
    )
    assert abs(counts[("tp", "bulk")] - counts[("tp", "streaming")]) <= max(
        2, 0.005 * len(true_pairs)
    ), counts
