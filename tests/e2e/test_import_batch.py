"""`svod import customers FILE` through identity's set-based batch path (issue 22), against the
five services as processes on databases of their own:

- the batch path puts a generated file's records into the same customers as the stream path
  (IdentifyStream, each record resolved on its own) does on a fresh graph, and every record's
  profile exists with its identifiers;
- importing the same file again changes nothing;
- ingestion killed (SIGKILL) while the import's job folds the records into the profiles: the
  job is taken over after the restart and the import finishes, every record once.
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from svod.common.v1 import common_pb2
from svod.identity.v1 import identity_pb2, identity_pb2_grpc
from svod.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from svod.profile.v1 import profile_pb2, profile_pb2_grpc
from svod_cli.suite import ProcessSuite
from svod_runtime.config import SERVICES
from tests.faults.harness import kill, process_suite, restart
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

FIRST = ["Анна", "Мария", "Ольга", "Иван", "Пётр", "Сергей", "Елена", "Дмитрий", "Юлия"]
LAST = ["Смирнова", "Иванова", "Кузнецова", "Попова", "Соколова", "Лебедева", "Новикова"]
# A short lease, so a killed ingestion's job is taken over within seconds (3 outbox leases).
ENV = {"SVOD_OUTBOX_LEASE_S": "2", "SVOD_UNKNOWN_CUSTOMER_GRACE_S": "3600"}


def generated(persons: int, source: str, seed: int) -> list[dict[str, Any]]:
    """IdentifyRequests (proto JSON) of ``persons`` people with 1-3 records each: a record
    carries some of its person's phone, e-mail and card, and the person's name (a record
    without a name now and then), in shuffled order."""
    rng = random.Random(seed)
    records: list[dict[str, Any]] = []
    for n in range(persons):
        phone = f"+7 9{rng.randrange(10**9):09d}"
        email = f"p{seed}.{n}.{rng.randrange(10**6)}@example.ru"
        card = f"C{seed}{n:06d}{rng.randrange(10**4):04d}"
        first, last = rng.choice(FIRST), rng.choice(LAST)
        birth = {
            "year": 1950 + rng.randrange(50),
            "month": 1 + rng.randrange(12),
            "day": 1 + rng.randrange(28),
        }
        for _ in range(1 + rng.randrange(3)):
            kinds = rng.sample(["phone", "email", "card"], 1 + rng.randrange(3))
            identifiers = []
            if "phone" in kinds:
                identifiers.append({"type": "IDENTIFIER_TYPE_PHONE", "value": phone})
            if "email" in kinds:
                identifiers.append({"type": "IDENTIFIER_TYPE_EMAIL", "value": email})
            if "card" in kinds:
                identifiers.append({"type": "IDENTIFIER_TYPE_LOYALTY_CARD", "value": card})
            record: dict[str, Any] = {"identifiers": identifiers}
            if rng.random() < 0.9:
                record["name"] = {"first_name": first, "last_name": last}
                record["birth_date"] = birth
            records.append({"record_ref": {"source": source}, "record": record})
    rng.shuffle(records)
    return records


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def svod_import(suite: ProcessSuite, *args: str | Path, timeout: float = 600) -> dict[str, Any]:
    env = {**suite.env, **{f"SVOD_{s.upper()}_TARGET": suite.target(s) for s in SERVICES}}
    env.pop("SVOD_API_KEY", None)
    ran = subprocess.run(
        [sys.executable, "-m", "svod_cli", "import", "customers", *map(str, args), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return dict(json.loads(ran.stdout))


def placed(suite: ProcessSuite, source: str, lines: int) -> dict[str, str]:
    """Each record's customer now (merges since followed), by its line's message id, as
    identity says; ingestion must say each is delivered."""
    out: dict[str, str] = {}
    with (
        grpc.insecure_channel(suite.target("ingestion")) as front,
        grpc.insecure_channel(suite.target("identity")) as graph,
    ):
        ingestion = ingestion_pb2_grpc.IngestionServiceStub(front)
        identity = identity_pb2_grpc.IdentityServiceStub(graph)
        for message_id in _ids_of(source, lines):
            ref = common_pb2.RecordRef(source=source, message_id=message_id)
            status = ingestion.GetRecordStatus(
                ingestion_pb2.GetRecordStatusRequest(record_ref=ref), timeout=10
            )
            assert status.state == ingestion_pb2.RecordStatus.STATE_DELIVERED, status
            customer = identity.GetRecordCustomer(
                identity_pb2.GetRecordCustomerRequest(record_ref=ref), timeout=10
            )
            out[message_id] = customer.customer_id
    return out


# The message ids the CLI gives a source's lines: imp-<20 hex digits of the file's SHA-256>.
_PREFIX: dict[str, str] = {}


def line_ids(path: Path) -> str:
    return "imp-" + hashlib.sha256(path.read_bytes()).hexdigest()[:20]


def _ids_of(source: str, lines: int) -> list[str]:
    return [f"{_PREFIX[source]}-{line}" for line in range(1, lines + 1)]


def partition(customers: dict[str, str]) -> set[frozenset[str]]:
    groups: dict[str, set[str]] = defaultdict(set)
    for message_id, customer in customers.items():
        groups[customer].add(message_id)
    return {frozenset(g) for g in groups.values()}


def identifiers_on_profiles(
    suite: ProcessSuite, rows: list[dict[str, Any]], customers: dict[str, str], source: str
) -> None:
    """Every record's profile exists and holds the record's identifiers."""
    ids = sorted(set(customers.values()))
    profiles: dict[str, profile_pb2.Profile] = {}
    with grpc.insecure_channel(suite.target("profile")) as channel:
        stub = profile_pb2_grpc.ProfileServiceStub(channel)
        for start in range(0, len(ids), 1000):
            reply = stub.BatchGetProfiles(
                profile_pb2.BatchGetProfilesRequest(customer_ids=ids[start : start + 1000]),
                timeout=30,
            )
            assert not reply.missing_customer_ids, reply.missing_customer_ids[:5]
            profiles.update({p.customer_id: p for p in reply.profiles})
    for line, row in enumerate(rows, 1):
        profile = profiles[customers[f"{_PREFIX[source]}-{line}"]]
        held = {i.identifier.value.replace(" ", "").lower() for i in profile.identifiers}
        for identifier in row["record"]["identifiers"]:
            value = identifier["value"].replace(" ", "").lower()
            assert value in held, (line, value, sorted(held))


def profile_facts(suite: ProcessSuite, customers: dict[str, str]) -> dict[str, tuple[Any, ...]]:
    """Per record (message id), what its customer's profile shows but the times: names,
    birth date, identifiers, sources with their record counts."""
    ids = sorted(set(customers.values()))
    facts: dict[str, tuple[Any, ...]] = {}
    with grpc.insecure_channel(suite.target("profile")) as channel:
        stub = profile_pb2_grpc.ProfileServiceStub(channel)
        for start in range(0, len(ids), 1000):
            reply = stub.BatchGetProfiles(
                profile_pb2.BatchGetProfilesRequest(customer_ids=ids[start : start + 1000]),
                timeout=30,
            )
            for p in reply.profiles:
                facts[p.customer_id] = (
                    p.first_name.value,
                    p.last_name.value,
                    p.birth_date.SerializeToString(deterministic=True),
                    sorted((i.identifier.type, i.identifier.value) for i in p.identifiers),
                    sorted((s.source, s.record_count) for s in p.sources),
                    sorted((v.field, v.value, v.observation_count) for v in p.name_variants),
                )
    return {message_id: facts[customer] for message_id, customer in customers.items()}


@pytest.fixture(scope="module")
def batch_suite(postgres_admin_url: str) -> Iterator[ProcessSuite]:
    with process_suite(postgres_admin_url, ENV, prefix="svod_impb") as suite:
        yield suite


@pytest.fixture(scope="module")
def stream_suite(postgres_admin_url: str) -> Iterator[ProcessSuite]:
    with process_suite(postgres_admin_url, ENV, prefix="svod_imps") as suite:
        yield suite


def test_batch_and_stream_paths_make_the_same_customers_and_a_rerun_changes_nothing(
    batch_suite: ProcessSuite, stream_suite: ProcessSuite, tmp_path: Path
) -> None:
    source = "crm-equiv"
    rows = generated(400, source, seed=22)
    path = write_jsonl(tmp_path / "customers.jsonl", rows)
    batch = svod_import(
        batch_suite, path, "--path", "batch", "--wait", "--checkpoint", tmp_path / "b.json"
    )
    _PREFIX[source] = line_ids(path)
    job = batch["import"]
    assert batch["accepted"] == len(rows) and batch["rejected_count"] == 0, batch
    assert job["state"] == "succeeded" and job["delivered"] == len(rows), job
    assert job["failed"] == 0 and job["pending"] == 0, job
    stream = svod_import(
        stream_suite, path, "--path", "stream", "--wait", "--checkpoint", tmp_path / "s.json"
    )
    assert stream["accepted"] == len(rows) and stream["delivered"] == len(rows), stream

    by_batch = placed(batch_suite, source, len(rows))
    by_stream = placed(stream_suite, source, len(rows))
    only_batch = partition(by_batch) - partition(by_stream)
    only_stream = partition(by_stream) - partition(by_batch)
    lines = {f"{_PREFIX[source]}-{n}": row for n, row in enumerate(rows, 1)}
    shown = [
        (side, [(m, lines[m]["record"]) for m in sorted(group)])
        for side, groups in (("batch", only_batch), ("stream", only_stream))
        for group in sorted(groups, key=sorted)[:6]
    ]
    assert not only_batch and not only_stream, json.dumps(shown, ensure_ascii=False, indent=1)
    assert job["customers_created"] == len(partition(by_batch))
    identifiers_on_profiles(batch_suite, rows, by_batch, source)
    # Profile folded the batch path's records set-based (FoldCustomerImport), the stream
    # path's one pass at a time (ApplyBatch): every record's profile holds the same (times
    # aside: each suite stamped the records when it received them).
    batch_facts = profile_facts(batch_suite, by_batch)
    stream_facts = profile_facts(stream_suite, by_stream)
    differing = [m for m in by_batch if batch_facts[m] != stream_facts[m]]
    assert not differing, [(batch_facts[m], stream_facts[m]) for m in differing[:3]]

    # The same file again (a new import of it): every line a duplicate, nothing resolved or
    # folded again, every record where it was.
    again = svod_import(
        batch_suite, path, "--restart", "--wait", "--checkpoint", tmp_path / "b.json"
    )
    assert (again["accepted"], again["duplicates"]) == (0, len(rows)), again
    assert again["import"]["state"] == "succeeded", again
    assert again["import"]["customers_created"] == 0 and again["import"]["delivered"] == 0
    assert placed(batch_suite, source, len(rows)) == by_batch


def test_ingestion_killed_during_the_job_finishes_the_import_after_restart(
    batch_suite: ProcessSuite, tmp_path: Path
) -> None:
    source = "crm-kill"
    rows = generated(2000, source, seed=23)
    path = write_jsonl(tmp_path / "kill.jsonl", rows)
    staged = svod_import(batch_suite, path)  # staged and committed, not waited for
    _PREFIX[source] = line_ids(path)
    import_id = staged["import_id"]
    with grpc.insecure_channel(batch_suite.target("ingestion")) as channel:
        stub = ingestion_pb2_grpc.IngestionServiceStub(channel)

        def job() -> ingestion_pb2.CustomerImport:
            return stub.GetCustomerImport(
                ingestion_pb2.GetCustomerImportRequest(import_id=import_id), timeout=10
            )

        folding = wait_until(
            lambda: (
                (j := job()).phase == ingestion_pb2.CustomerImport.PHASE_FOLDING
                and j.records_delivered > 0
                and j
            ),
            120,
            "the job folding records",
            0.02,
        )
        assert folding.state == ingestion_pb2.CustomerImport.STATE_RUNNING
    kill(batch_suite, "ingestion")
    time.sleep(1.0)
    restart(batch_suite, "ingestion")
    with grpc.insecure_channel(batch_suite.target("ingestion")) as channel:
        stub = ingestion_pb2_grpc.IngestionServiceStub(channel)
        done = wait_until(
            lambda: (
                (
                    j := stub.GetCustomerImport(
                        ingestion_pb2.GetCustomerImportRequest(import_id=import_id), timeout=10
                    )
                ).state
                == ingestion_pb2.CustomerImport.STATE_SUCCEEDED
                and j
            ),
            180,
            "the import finished after the restart",
            0.5,
        )
    assert done.records_delivered == len(rows) and done.records_failed == 0, done
    customers = placed(batch_suite, source, len(rows))
    identifiers_on_profiles(batch_suite, rows, customers, source)
    # Every customer of the file's records is new, but for a record the earlier test's people
    # may have drawn in (a shared name and birth date)
    assert 0 < len(partition(customers)) - done.customers_created <= 5 or (
        done.customers_created == len(partition(customers))
    )


def test_an_import_whose_fits_changed_the_model_is_followed_by_identitys_reresolution(
    postgres_admin_url: str, tmp_path: Path
) -> None:
    """On a fresh install identity fits its model during the import (from 500 records here,
    and at every doubling): the windows before a fit were placed with the model it replaced,
    so identity re-resolves the graph after the import, and `svod import --wait` follows that
    job to its end and reports it."""
    env = {**ENV, "SVOD_IDENTITY_MODEL_AUTOFIT_RECORDS": "500"}
    with process_suite(postgres_admin_url, env, prefix="svod_impr") as suite:
        rows = generated(1_000, "crm-refit", seed=24)
        path = write_jsonl(tmp_path / "refit.jsonl", rows)
        result = svod_import(suite, path, "--wait", "--checkpoint", tmp_path / "r.json")
        assert result["import"]["state"] == "succeeded", result
        again = result["reresolution"]
        assert again["state"] == "succeeded", again
        with grpc.insecure_channel(suite.target("identity")) as channel:
            identity = identity_pb2_grpc.IdentityServiceStub(channel)
            model = identity.GetMatchModel(identity_pb2.GetMatchModelRequest(), timeout=10)
            assert model.created_by == "svod-identity:auto-fit"
            assert model.reresolution_job_id == again["job_id"]
            job = identity.GetResolutionJob(
                identity_pb2.GetResolutionJobRequest(job_id=again["job_id"]), timeout=10
            )
            assert job.records_total == len(rows)
