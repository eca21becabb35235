"""Identity's bulk import at scale: the batch engine beside streaming Resolve and Splink.

For ``--records`` generated records (benchmarks/identity/generator.py, with drift: nicknames,
transliteration, typos, moves, new contacts, married surnames, households, namesakes):

* **batch**: a fresh database and identity service (its own process); the records staged over
  ``StageImportRecords`` (2,000 per message), ``CommitImport``, the job polled to its end
  (its worker's peak RSS sampled from /proc), the results read with ``ListImportResultPages``.
  Records/s end to end for identity, seconds per phase, pairwise precision/recall/F1.
* **online**: the same records through streaming ``ResolveBatch`` on a fresh database, whole
  when ``--online all`` (slow: ~1,000 records/s), else the records of a sample of the persons
  (``--online-persons``), with the batch engine run on the same sample: F1 of both, and the
  partition difference between the two (share of the true pairs placed differently).
* **Splink** (DuckDB backend, requirements/bench.txt) on the same records in the same run:
  EM-trained on the same fields, clustered at match probability 0.9: time and F1.

Results: benchmarks/results/identity_bulk.json. The machine's load average is printed beside
the figures (2 cores shared: timings vary with what else runs).

    .venv/bin/python -m benchmarks.identity.bench_bulk --records 1000000
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import random
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from itertools import combinations
from typing import Any

import grpc

from benchmarks.harness import settled_identity
from benchmarks.identity import datasets
from benchmarks.identity.generator import generate
from benchmarks.identity.offline import pairwise
from svod.identity.v1 import identity_pb2, identity_pb2_grpc
from svod_cli.postgres import ensure_postgres
from svod_cli.suite import (
    TOP,
    ProcessSuite,
    create_database,
    drop_database,
    free_ports,
    prepare_database,
)
from svod_runtime.config import SERVICES
from svod_runtime.retries import retry_options

RESULTS = TOP / "benchmarks" / "results" / "identity_bulk.json"
STAGE_MESSAGE = 2_000
RECORDS_PER_PERSON = 3.15  # the generator's mean
# The database of the identity the benchmark runs now (its PostgreSQL backends' CPU is counted).
CURRENT_DB = ""


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


@contextlib.contextmanager
def identity_stub(admin: str) -> Iterator[identity_pb2_grpc.IdentityServiceStub]:
    global CURRENT_DB
    db = CURRENT_DB = f"svod_bench_bulk_{uuid.uuid4().hex[:6]}"
    url = create_database(admin, db)
    suite = None
    try:
        prepare_database(url)
        suite = ProcessSuite(
            url,
            ports=dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True)),
            extra_env={"SVOD_LOG_LEVEL": "WARNING"},
        ).start()
        with grpc.insecure_channel(
            suite.target("identity"),
            options=[*retry_options(), ("grpc.max_send_message_length", 16 << 20)],
        ) as channel:
            yield identity_pb2_grpc.IdentityServiceStub(channel)
    finally:
        if suite is not None:
            suite.stop()
        drop_database(admin, db)


def _ours(pid: str) -> bool:
    """Whether ``pid`` descends from this process (the identity the benchmark started): other
    agents' batch workers on the same machine are not this run's."""
    me = os.getpid()
    for _ in range(16):
        try:
            with open(f"/proc/{pid}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
        if parent == me:
            return True
        if parent <= 1:
            return False
        pid = str(parent)
    return False


def batch_workers() -> dict[str, tuple[int, float]]:
    """This run's identity batch worker processes now: pid -> (peak resident memory so far,
    VmHWM, in KiB; CPU seconds so far). A worker may serve several jobs, so both span its
    life."""
    out: dict[str, tuple[int, float]] = {}
    ticks = os.sysconf("SC_CLK_TCK")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"batch_worker" not in f.read():
                    continue
            if not _ours(pid):
                continue
            with open(f"/proc/{pid}/status") as f:
                peak = next((int(x.split()[1]) for x in f if x.startswith("VmHWM:")), 0)
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (peak, (int(fields[11]) + int(fields[12])) / ticks)
    return out


def database_backends(db: str) -> dict[str, float]:
    """CPU seconds so far of the PostgreSQL backends connected to ``db`` (their process title
    names the database): the batch job's reads and writes are mostly theirs."""
    out: dict[str, float] = {}
    if not db:
        return out
    ticks = os.sysconf("SC_CLK_TCK")
    needle = f" {db} ".encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                title = f.read()
            if not title.startswith(b"postgres:") or needle not in title:
                continue
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / ticks
    return out


class PeakRss:
    """Samples the peak resident memory (VmHWM) and the CPU time of the batch worker
    processes (on a loaded machine the CPU seconds say more than the wall clock)."""

    def __init__(self) -> None:
        self.peak_kib = 0
        self.cpu_s: dict[str, float] = {}
        self.db_cpu_s: dict[str, float] = {}
        self._db_start = database_backends(CURRENT_DB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid, (peak_kib, cpu_s) in batch_workers().items():
                self.peak_kib = max(self.peak_kib, peak_kib)
                self.cpu_s[pid] = cpu_s
            for pid, cpu_s in database_backends(CURRENT_DB).items():
                self.db_cpu_s[pid] = cpu_s - self._db_start.get(pid, 0.0)
            self._stop.wait(0.2)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def batch_import(
    stub: identity_pb2_grpc.IdentityServiceStub, requests: Sequence[Any]
) -> tuple[dict[tuple[str, str], str], dict[str, Any]]:
    import_id = f"bench-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    messages = (
        identity_pb2.StageImportRecordsRequest(
            import_id=import_id, records=requests[i : i + STAGE_MESSAGE]
        )
        for i in range(0, len(requests), STAGE_MESSAGE)
    )
    staged = 0
    for answer in stub.StageImportRecords(messages, timeout=7200):
        staged += answer.staged_count
    staging_s = time.perf_counter() - started
    with PeakRss() as rss:
        stub.CommitImport(identity_pb2.CommitImportRequest(import_id=import_id), timeout=60)
        while True:
            job = stub.GetResolutionJob(
                identity_pb2.GetResolutionJobRequest(job_id=import_id), timeout=60
            )
            if job.state in (
                identity_pb2.RESOLUTION_JOB_STATE_SUCCEEDED,
                identity_pb2.RESOLUTION_JOB_STATE_FAILED,
            ):
                break
            # Polled often: a second's poll counted up to a second of idling as the job's.
            time.sleep(0.2)
    job_s = time.perf_counter() - started - staging_s
    if job.state != identity_pb2.RESOLUTION_JOB_STATE_SUCCEEDED:
        raise RuntimeError(f"import failed: {job.error}")
    # A page of 2,000 results per message: ListImportResults' message per result was gRPC
    # framing more than results (about 7,500 results/s at 200k, half of it this client's CPU).
    placed = {
        (r.record_ref.source, r.record_ref.message_id): r.customer_id
        for page in stub.ListImportResultPages(
            identity_pb2.ListImportResultsRequest(import_id=import_id), timeout=7200
        )
        for r in page.results
    }
    total_s = time.perf_counter() - started
    # Where the import's fits changed the model of a small graph, identity re-resolves it
    # after the import (``MatchModel.reresolution_job_id``): the partition compared is the
    # graph once that is done, as online's is.
    settling_s, model = settled_identity(stub, len(requests))
    if model.reresolution_job_id:
        placed = export_mapping(stub)
    return placed, {
        "records": len(requests),
        "staged": staged,
        "staging_s": round(staging_s, 1),
        "job_s": round(job_s, 1),
        "results_s": round(total_s - staging_s - job_s, 1),
        "total_s": round(total_s, 1),
        "records_per_s": round(len(requests) / total_s, 1),
        "reresolution_after_s": round(settling_s, 1),
        "job_phase_s": dict(job.phase_seconds),
        "worker_peak_rss_mib": round(rss.peak_kib / 1024, 1),
        # CPU seconds of the worker process (sampled every 0.2 s: the last fifth of a second of
        # its work may be missing).
        "worker_cpu_s": round(sum(rss.cpu_s.values()), 1),
        "records_per_worker_cpu_s": round(len(requests) / max(sum(rss.cpu_s.values()), 0.1), 1),
        # CPU seconds of the identity database's PostgreSQL backends during the job (sampled
        # likewise; the identity service's own connections included: its polls are a few).
        "database_cpu_s": round(sum(rss.db_cpu_s.values()), 1),
        "customers_created": job.customers_created,
        "review_items": job.review_items_opened,
    }


def online_resolve(
    stub: identity_pb2_grpc.IdentityServiceStub, requests: Sequence[Any]
) -> tuple[dict[tuple[str, str], str], float]:
    started = time.perf_counter()
    for start in range(0, len(requests), 500):
        stub.ResolveBatch(iter(requests[start : start + 500]), timeout=600)
    seconds = time.perf_counter() - started
    settled_identity(stub, len(requests))
    return export_mapping(stub), seconds


def export_mapping(stub: identity_pb2_grpc.IdentityServiceStub) -> dict[tuple[str, str], str]:
    """Every record's customer now, as ExportRecordMapping gives it."""
    return {
        (m.record_ref.source, m.record_ref.message_id): m.customer_id
        for m in stub.ExportRecordMapping(identity_pb2.ExportRecordMappingRequest(), timeout=3600)
    }


def clusters(placed: dict[tuple[str, str], str]) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for ref, customer in placed.items():
        out[customer].append(ref)
    return out


def partition_hash(placed: dict[tuple[str, str], str]) -> str:
    """The partition of the records into customers, whatever the customers' ids: equal
    between two runs on the same records exactly when every record is grouped alike."""
    groups = sorted(sorted(members) for members in clusters(placed).values())
    return hashlib.sha256(json.dumps(groups).encode()).hexdigest()[:16]


def partition_difference(
    a: dict[tuple[str, str], str], b: dict[tuple[str, str], str], truth: datasets.Truth
) -> dict[str, Any]:
    def pairs(placed: dict[tuple[str, str], str]) -> set[frozenset[tuple[str, str]]]:
        return {
            frozenset(p)
            for members in clusters(placed).values()
            for p in combinations(sorted(members), 2)
        }

    true_pairs = pairs({ref: truth[ref] for ref in a})
    ours, theirs = pairs(a), pairs(b)
    differing = ours ^ theirs
    return {
        "true_pairs": len(true_pairs),
        "pairs_placed_differently": len(differing),
        "share_of_true_pairs": round(len(differing) / max(len(true_pairs), 1), 5),
        "batch_only_true": sum(1 for p in ours - theirs if p in true_pairs),
        "batch_only_false": sum(1 for p in ours - theirs if p not in true_pairs),
        "online_only_true": sum(1 for p in theirs - ours if p in true_pairs),
        "online_only_false": sum(1 for p in theirs - ours if p not in true_pairs),
    }


def splink_run(messages: Sequence[dict[str, Any]], truth: datasets.Truth) -> dict[str, Any]:
    """Splink on DuckDB over the same records: names, birth date, e-mail, phone, city."""
    import pyarrow as pa
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    rows: dict[str, list[Any]] = defaultdict(list)
    for index, m in enumerate(messages):
        phones = [i["value"] for i in m["identifiers"] if i["type"] == "phone"]
        emails = [i["value"].lower() for i in m["identifiers"] if i["type"] == "email"]
        rows["unique_id"].append(index)
        rows["first_name"].append((m.get("first_name") or "").lower() or None)
        rows["surname"].append((m.get("last_name") or "").lower() or None)
        rows["dob"].append(m.get("birth_date"))
        rows["email"].append(emails[0] if emails else None)
        rows["phone"].append("".join(c for c in phones[0] if c.isdigit())[-10:] if phones else None)
        rows["city"].append((m.get("city") or "").lower() or None)
    table = pa.table(rows)
    started = time.perf_counter()
    db_api = DuckDBAPI()
    frame = db_api.register(table)
    settings = SettingsCreator(
        link_type="dedupe_only",
        comparisons=[
            cl.NameComparison("first_name"),
            cl.NameComparison("surname"),
            cl.DateOfBirthComparison("dob", input_is_string=True),
            cl.EmailComparison("email"),
            cl.ExactMatch("phone"),
            cl.ExactMatch("city"),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("phone"),
            block_on("email"),
            block_on("first_name", "dob"),
            block_on("surname", "dob"),
            block_on("first_name", "surname"),
        ],
        retain_matching_columns=False,
    )
    linker = Linker(frame, settings, log_level=40)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("phone"), block_on("email")], recall=0.7
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=2_000_000)
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("first_name", "surname")
    )
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("dob"))
    predictions = linker.inference.predict(threshold_match_probability=0.5)
    clustered = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=0.9
    )
    result = clustered.as_duckdbpyrelation().arrow()
    if hasattr(result, "read_all"):  # DuckDB 2 answers with a reader
        result = result.read_all()
    seconds = time.perf_counter() - started
    ids = result.column("unique_id").to_pylist()
    cluster_ids = result.column("cluster_id").to_pylist()
    by_cluster: dict[Any, list[tuple[str, str]]] = defaultdict(list)
    refs = [(datasets.source_name(m), m["message_id"]) for m in messages]
    for uid, cluster in zip(ids, cluster_ids, strict=True):
        by_cluster[cluster].append(refs[int(uid)])
    return {"seconds": round(seconds, 1), **pairwise(by_cluster, truth)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.identity.bench_bulk")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=2027)
    parser.add_argument(
        "--online-persons",
        type=int,
        default=3000,
        help="persons whose records also go through streaming ResolveBatch (0: none)",
    )
    parser.add_argument("--online-all", action="store_true", help="all records online (slow)")
    parser.add_argument("--no-splink", action="store_true")
    args = parser.parse_args(argv)
    admin, cluster = ensure_postgres(TOP)
    report: dict[str, Any] = {
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "records": args.records,
        "seed": args.seed,
    }
    try:
        started = time.perf_counter()
        messages = generate(round(args.records / RECORDS_PER_PERSON), args.seed)
        requests = [datasets.generator_request(m) for m in messages]
        truth = {(datasets.source_name(m), m["message_id"]): str(m["person_id"]) for m in messages}
        report["records"] = len(requests)
        report["generate_s"] = round(time.perf_counter() - started, 1)
        print(f"generated {len(requests)} records in {report['generate_s']} s", flush=True)

        report["load_average_before"] = load_average()
        with identity_stub(admin) as stub:
            placed, batch = batch_import(stub, requests)
        batch["load_average_after"] = load_average()
        batch["accuracy"] = pairwise(clusters(placed), truth)
        batch["partition_hash"] = partition_hash(placed)
        report["batch"] = batch
        print("batch:", json.dumps(batch, ensure_ascii=False), flush=True)

        if args.online_all or args.online_persons:
            if args.online_all:
                sample = list(range(len(messages)))
            else:
                persons = sorted({m["person_id"] for m in messages})
                chosen = set(
                    random.Random(args.seed).sample(persons, min(args.online_persons, len(persons)))
                )
                sample = [i for i, m in enumerate(messages) if m["person_id"] in chosen]
            subset = [requests[i] for i in sample]
            sub_truth = {
                (datasets.source_name(messages[i]), messages[i]["message_id"]): str(
                    messages[i]["person_id"]
                )
                for i in sample
            }
            with identity_stub(admin) as stub:
                online, online_s = online_resolve(stub, subset)
            with identity_stub(admin) as stub:
                batch_sample, batch_sample_stats = batch_import(stub, subset)
            report["online"] = {
                "records": len(subset),
                "whole": bool(args.online_all),
                "seconds": round(online_s, 1),
                "records_per_s": round(len(subset) / online_s, 1),
                "accuracy": pairwise(clusters(online), sub_truth),
                "batch_on_the_same_records": {
                    "seconds": batch_sample_stats["total_s"],
                    "accuracy": pairwise(clusters(batch_sample), sub_truth),
                },
                "partition_difference": partition_difference(batch_sample, online, sub_truth),
            }
            print("online:", json.dumps(report["online"], ensure_ascii=False), flush=True)

        if not args.no_splink:
            report["splink"] = splink_run(messages, truth)
            report["splink"]["load_average_after"] = load_average()
            print("splink:", json.dumps(report["splink"], ensure_ascii=False), flush=True)
    finally:
        if cluster is not None:
            cluster.stop()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    print(f"written to {RESULTS.relative_to(TOP)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
