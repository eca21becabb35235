"""The customer import's job over in-memory storage and peers (no database, no network): the
phases in order, a transient peer failure waited out, a refused record failed alone, a job
whose lease another worker took stops, and an import nothing of which reached identity ends at
once. The SQL behind the ports and the real peers are tested in tests/e2e/test_import_batch.py
and tests/e2e/test_customer_import_rpcs.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import Any

import pytest

from svod_ingestion.domain.imports import (
    NOT_STAGED,
    CustomerImport,
    ImportPhase,
    ImportResult,
    ImportState,
    LostLease,
    ResolutionProgress,
)
from svod_ingestion.service_layer import imports
from svod_ingestion.service_layer.imports import ImportJobRunner
from svod_runtime.outbox import DeliveryError


class FakeStore:
    def __init__(self, records: int) -> None:
        self.job = CustomerImport("imp-1", ImportState.RUNNING, ImportPhase.RESOLVING)
        # (source, message id) -> [record pk, payload, state, customer or error]
        self.records = {("s", f"m{n}"): [n, b"p", "pending", ""] for n in range(records)}
        self.owner = ""
        self.stolen = False

    async def claim(self, owner: str, lease_s: float) -> CustomerImport | None:
        if self.owner or self.job.state is not ImportState.RUNNING:
            return None
        self.owner = owner
        return self.job

    async def get(self, import_id: str) -> CustomerImport | None:
        return self.job

    def _fence(self, owner: str) -> None:
        if self.stolen or owner != self.owner:
            raise LostLease(self.job.import_id)

    async def update(self, import_id: str, owner: str, lease_s: float, **values: Any) -> None:
        self._fence(owner)
        values = {k: v for k, v in values.items() if k != "finished_at"}
        for name in ("state", "phase"):
            if name in values:
                values[name] = (ImportState if name == "state" else ImportPhase)(values[name])
        self.job = replace(self.job, **values)

    async def pending_records(
        self, import_id: str, refs: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[int, bytes]]:
        return {
            ref: (self.records[ref][0], self.records[ref][1])
            for ref in refs
            if ref in self.records and self.records[ref][2] == "pending"
        }

    async def settle(
        self,
        import_id: str,
        owner: str,
        lease_s: float,
        delivered: Sequence[tuple[int, str]],
        failed: Sequence[tuple[int, str]],
        results_after: int,
    ) -> None:
        self._fence(owner)
        by_pk = {r[0]: r for r in self.records.values()}
        for pk, customer in delivered:
            by_pk[pk][2:] = ["delivered", customer]
        for pk, error in failed:
            by_pk[pk][2:] = ["failed", error]
        self.job = replace(
            self.job,
            results_after=results_after,
            records_delivered=self.job.records_delivered + len(delivered),
            records_failed=self.job.records_failed + len(failed),
        )

    async def fail_leftovers(self, import_id: str, owner: str, lease_s: float, error: str) -> int:
        left = [r for r in self.records.values() if r[2] == "pending"]
        for record in left:
            record[2:] = ["failed", error]
        self.job = replace(self.job, records_failed=self.job.records_failed + len(left))
        return len(left)

    async def release(self, import_id: str, owner: str) -> None:
        if owner == self.owner:
            self.owner = ""


class FakePeers:
    def __init__(self, staged: int) -> None:
        self.staged = staged
        self.polls = 0
        self.applied: list[str] = []
        self.apply_failures: list[DeliveryError] = []
        self.refuse: set[str] = set()
        self.recomputed = 0
        self.finished = 0
        self.reads: list[int] = []

    async def commit(self, import_id: str) -> ResolutionProgress:
        if not self.staged:
            raise DeliveryError("NOT_FOUND", "never staged")
        return ResolutionProgress("queued", "unspecified", 0, 0)

    async def progress(self, import_id: str) -> ResolutionProgress:
        self.polls += 1
        if self.polls < 2:
            return ResolutionProgress("running", "placing", self.staged, 1)
        return ResolutionProgress(
            "succeeded", "done", self.staged, self.staged, customers_created=self.staged
        )

    async def results(self, import_id: str, after_sequence: int) -> AsyncIterator[ImportResult]:
        self.reads.append(after_sequence)
        for n in range(after_sequence, self.staged):
            yield ImportResult(n + 1, "s", f"m{n}", f"c{n}", ())

    async def fold(
        self, import_id: str, items: Sequence[tuple[bytes, ImportResult]]
    ) -> list[str | DeliveryError]:
        if self.apply_failures:
            return [self.apply_failures.pop()] * len(items)
        out: list[str | DeliveryError] = []
        for _, result in items:
            if result.message_id in self.refuse:
                out.append(DeliveryError("INVALID_ARGUMENT", "profile refused it"))
            else:
                self.applied.append(result.message_id)
                out.append(result.customer_id)
        return out

    async def finish(self, import_id: str) -> int:
        self.finished += 1
        return self.staged

    async def recompute_segments(self) -> None:
        self.recomputed += 1


def run_job(store: FakeStore, peers: FakePeers) -> bool:
    runner = ImportJobRunner(store, peers, poll_s=0, lease_s=10)  # type: ignore[arg-type]
    return asyncio.run(runner.run_once())


@pytest.fixture(autouse=True)
def small_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imports, "FOLD_CHUNK", 3)
    monkeypatch.setattr(imports, "BACKOFF_FIRST_S", 0.0)


def test_a_job_resolves_folds_every_record_once_and_recomputes_segments_once() -> None:
    store, peers = FakeStore(7), FakePeers(7)
    peers.apply_failures.append(DeliveryError("UNAVAILABLE", "profile is restarting"))
    peers.refuse.add("m4")
    assert run_job(store, peers)
    job = store.job
    assert (job.state, job.phase) == (ImportState.SUCCEEDED, ImportPhase.DONE)
    assert (job.records_delivered, job.records_failed, job.customers_created) == (6, 1, 7)
    assert sorted(peers.applied) == sorted(f"m{n}" for n in range(7) if n != 4)
    assert store.records[("s", "m4")][2:] == ["failed", "INVALID_ARGUMENT: profile refused it"]
    assert peers.recomputed == 1 and job.results_after == 7
    # Profile announced the import's customers once its records were all folded.
    assert peers.finished == 1
    # The transient failure made it read the results again from where it stood (0: nothing
    # folded yet), not skip them.
    assert peers.reads == [0, 0]


def test_a_job_taken_over_goes_on_after_the_last_step_recorded() -> None:
    store, peers = FakeStore(7), FakePeers(7)
    store.job = replace(store.job, phase=ImportPhase.FOLDING, results_after=3)
    for n in range(3):
        store.records[("s", f"m{n}")][2:] = ["delivered", f"c{n}"]
    assert run_job(store, peers)
    assert peers.reads == [3] and sorted(peers.applied) == ["m3", "m4", "m5", "m6"]
    assert store.job.state is ImportState.SUCCEEDED


def test_a_worker_whose_lease_was_taken_stops_and_changes_nothing_more() -> None:
    store, peers = FakeStore(7), FakePeers(7)
    store.job = replace(store.job, phase=ImportPhase.FOLDING)
    store.stolen = True
    with pytest.raises(LostLease):
        run_job(store, peers)
    assert all(r[2] == "pending" for r in store.records.values())


def test_an_import_nothing_of_which_reached_identity_ends_at_once() -> None:
    store, peers = FakeStore(2), FakePeers(0)
    assert run_job(store, peers)
    assert store.job.state is ImportState.SUCCEEDED and store.job.records_failed == 2
    assert store.records[("s", "m0")][2:] == ["failed", NOT_STAGED]
    assert peers.recomputed == 0
