"""`svod import customers FILE` end to end through the batch path beside the stream path, on the
same file in the same run: from the command's start until every record is delivered (resolved
and folded into its customer's profile).

Each path gets the five services as processes on a scratch database of its own (a fresh graph
each: the same records are new customers for both). The file holds ``--persons`` people with
1-3 records each (a phone, an e-mail and a card spread over their records, a name and birth
date on most), shuffled: real resolution work, links included.

- **batch**: ``svod import customers FILE --path batch`` (StageCustomerImport, then
  CommitCustomerImport), then GetCustomerImport every 0.2 s until the job has succeeded (identity's
  batch engine, ListImportResults, profile's FoldCustomerImport, FinishCustomerImport -
  "announcing", from when every record was folded - one RecomputeSegments): the time of each
  phase is taken from when the poll first saw it;
- **batch_apply_batch** (``--with-apply-batch``): the batch path folding with ApplyBatch calls
  as before FoldCustomerImport (ingestion's SVOD_IMPORT_FOLD=apply_batch), the baseline;
- **stream**: ``svod import customers FILE --path stream``, then the time until ingestion has
  no record of the file pending (IdentifyStream, each record resolved by ResolveBatch streams
  and folded by ApplyBatch from ingestion's relay).

Rounds alternate the order (batch, stream, stream, batch; with the baseline batch, stream,
batch_apply_batch, then reversed); the figures are medians.
Results: benchmarks/results/cli_import_paths.json, with the machine's load average.

    .venv/bin/python -m benchmarks.cli_import.bench_customers_path --persons 12000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import psycopg

from benchmarks.harness import running_suite, scratch_database
from svod.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from svod_cli.bulk_import import job_json
from svod_cli.suite import TOP
from svod_runtime.db import libpq_url
from tests.e2e.test_import_batch import generated

RESULTS = TOP / "benchmarks" / "results" / "cli_import_paths.json"


def pending(db_url: str) -> int:
    with psycopg.connect(libpq_url(db_url)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM ingestion.records WHERE state = 'pending'"
        ).fetchone()
    return int(row[0]) if row else 0


def cpu_s(pid: int) -> float:
    """A process's CPU seconds so far (user + system, /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _parent(pid: str) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def processes_cpu(pids: dict[str, int], db: str) -> dict[str, float]:
    """CPU seconds so far of each service process, of their children (identity's batch worker:
    ``<service>_children``) and of the PostgreSQL backends of ``db`` (``postgres``), from
    /proc: what each process spent, whatever the load."""
    out: dict[str, float] = {name: 0.0 for name in pids}
    by_pid = {pid: name for name, pid in pids.items()}
    needle = f" {db} ".encode()
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            if int(entry) in by_pid:
                out[by_pid[int(entry)]] = cpu_s(int(entry))
                continue
            parent = _parent(entry)
            if parent in by_pid:
                key = f"{by_pid[parent]}_children"
                out[key] = out.get(key, 0.0) + cpu_s(int(entry))
                continue
            title = Path(f"/proc/{entry}/cmdline").read_bytes()
            if title.startswith(b"postgres:") and needle in title:
                out["postgres"] = out.get("postgres", 0.0) + cpu_s(int(entry))
        except (OSError, ValueError):
            continue
    return out


def cpu_between(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds per process between two samples (a process gone meanwhile counts 0; its
    own CPU is lost with it, so a sum of backends is a lower bound)."""
    return {
        k: round(max(0.0, after.get(k, 0.0) - before.get(k, 0.0)), 2)
        for k in sorted(set(before) | set(after))
    }


def follow(
    target: str,
    import_id: str,
    phases: dict[str, float],
    pids: dict[str, int] | None = None,
    fold_cpu: dict[str, float] | None = None,
    phase_cpu: dict[str, dict[str, float]] | None = None,
    db: str = "",
) -> dict[str, Any]:
    """Polls the import's job until it ends; ``phases`` gets the time each phase was first
    seen (from the command's start: the caller adds the staging time), ``fold_cpu`` the CPU
    seconds each of ``pids``' processes spent while the job was folding (load-independent,
    unlike the phase's seconds)."""
    started = time.perf_counter()
    cpu_at: dict[str, float] = {}
    with grpc.insecure_channel(target) as channel:
        stub = ingestion_pb2_grpc.IngestionServiceStub(channel)
        while True:
            job = stub.GetCustomerImport(
                ingestion_pb2.GetCustomerImportRequest(import_id=import_id), timeout=30
            )
            name = ingestion_pb2.CustomerImport.Phase.Name(job.phase).removeprefix("PHASE_")
            if phase_cpu is not None and pids and name.lower() not in phases:
                phase_cpu[name.lower()] = processes_cpu(pids, db)
            phases.setdefault(name.lower(), time.perf_counter() - started)
            if pids and fold_cpu is not None:
                if name == "FOLDING" and not cpu_at:
                    cpu_at = {s: cpu_s(p) for s, p in pids.items()}
                elif name != "FOLDING" and cpu_at and not fold_cpu:
                    fold_cpu.update({s: round(cpu_s(p) - cpu_at[s], 2) for s, p in pids.items()})
            if (
                name == "FOLDING"
                and job.records_staged
                and job.records_delivered + job.records_failed >= job.records_staged
            ):
                # Every record folded: what is left of the phase is profile's announcing.
                phases.setdefault("announcing", time.perf_counter() - started)
            if job.state in (
                ingestion_pb2.CustomerImport.STATE_SUCCEEDED,
                ingestion_pb2.CustomerImport.STATE_FAILED,
            ):
                if phase_cpu is not None and pids:
                    phase_cpu["end"] = processes_cpu(pids, db)
                return job_json(job)
            time.sleep(0.2)


def phase_cpu_summary(
    phase_cpu: dict[str, dict[str, float]], cpu_start: dict[str, float], cli_cpu: float
) -> dict[str, Any]:
    """CPU seconds of each process per phase (staging: the command's run; each later phase
    from when the poll first saw it), the CLI's own beside staging, and the run's totals."""
    marks = list(phase_cpu.items())
    per_phase = {
        name: cpu_between(sample, marks[i + 1][1]) for i, (name, sample) in enumerate(marks[:-1])
    }
    per_phase["staging"]["cli"] = round(cli_cpu, 2)
    for name, cpu in per_phase.items():
        print(f"        CPU s {name}: " + ", ".join(f"{k} {v}" for k, v in cpu.items()))
    return {
        "phase_cpu_s": per_phase,
        "total_cpu_s": {**cpu_between(cpu_start, marks[-1][1]), "cli": round(cli_cpu, 2)},
    }


def run_path(
    path_name: str, file: Path, scratch: Path, lanes: int = 0, fold: str = "", label: str = ""
) -> dict[str, Any]:
    """One import of ``file`` on a fresh graph; ``lanes``: fold calls in flight while the
    batch path folds (0: ingestion's default); ``fold``: "apply_batch" folds with ApplyBatch
    calls as before FoldCustomerImport (the baseline)."""
    os.environ.pop("SVOD_IMPORT_APPLY_LANES", None)
    os.environ.pop("SVOD_IMPORT_FOLD", None)
    if lanes:
        os.environ["SVOD_IMPORT_APPLY_LANES"] = str(lanes)
    if fold:
        os.environ["SVOD_IMPORT_FOLD"] = fold
    with scratch_database(f"svod_bench_{path_name}") as db_url, running_suite(db_url) as suite:
        env = {**os.environ, **{f"SVOD_{s.upper()}_TARGET": suite.target(s) for s in suite.ports}}
        load = os.getloadavg()[0]
        db = db_url.rsplit("/", 1)[-1]
        all_pids = {s: p.pid for s, p in suite.processes.items()}
        command = [
            str(TOP / ".venv" / "bin" / "svod"),
            "import",
            "customers",
            str(file),
            "--path",
            path_name,
            "--json",
            "--checkpoint",
            str(scratch / f"{db_url.rsplit('/', 1)[-1]}.json"),  # a run's own
        ]
        cpu_start = processes_cpu(all_pids, db)
        cli_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        sent_s = time.perf_counter() - started
        cli_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cli_cpu = (cli_after.ru_utime + cli_after.ru_stime) - (
            cli_before.ru_utime + cli_before.ru_stime
        )
        phase_cpu: dict[str, dict[str, float]] = {"staging": cpu_start}
        if done.returncode not in (0, 1) or not done.stdout.strip():
            raise RuntimeError(f"svod import exited {done.returncode}: {done.stderr[-2000:]}")
        result = json.loads(done.stdout)
        if done.returncode == 1:  # lines rejected: counted, and the first reasons shown
            print(
                f"        rejected {result.get('rejected_count')}: {result.get('rejected', [])[:3]}"
            )
        phases: dict[str, float] = {}
        if "import_id" in result:
            fold_cpu: dict[str, float] = {}
            result["import"] = follow(
                suite.target("ingestion"),
                result["import_id"],
                phases,
                all_pids,
                fold_cpu,
                phase_cpu,
                db,
            )
            phases = {"staging": 0.0, **{k: v + sent_s for k, v in phases.items()}}
        while pending(db_url):
            time.sleep(0.5)
        elapsed = time.perf_counter() - started
        if phases:  # seconds each phase took, from when the poll first saw it
            marks = [*phases.items(), ("end", elapsed)]
            phases = {
                name: round(marks[i + 1][1] - at, 1) for i, (name, at) in enumerate(marks[:-1])
            }
        records = int(result["accepted"])
        with psycopg.connect(libpq_url(db_url)) as conn:
            delivered = conn.execute(
                "SELECT count(*) FROM ingestion.records WHERE state = 'delivered'"
            ).fetchone()
            # identity's customers now (the stream path's merges after delivery followed)
            customers = conn.execute(
                "SELECT count(*) FROM identity.customers WHERE merged_into IS NULL"
            ).fetchone()
        out: dict[str, Any] = {
            "records": records,
            "delivered": int(delivered[0]) if delivered else 0,
            "customers": int(customers[0]) if customers else 0,
            "command_s": round(sent_s, 1),
            "end_to_end_s": round(elapsed, 1),
            "records_per_s": round(records / elapsed),
            "load_average_at_start": round(load, 1),
            "load_average_at_end": round(os.getloadavg()[0], 1),
        }
        if len(phase_cpu) > 1:
            out.update(phase_cpu_summary(phase_cpu, cpu_start, cli_cpu))
        if "import" in result:
            out["job"] = result["import"]
            out["phase_s"] = phases
            # CPU seconds of the services while the job folded (and announced).
            out["fold_cpu_s"] = fold_cpu
        if phases:
            print("        phases (s): " + ", ".join(f"{k} {v}" for k, v in phases.items()))
            if out.get("fold_cpu_s"):
                print(
                    "        CPU s while folding: "
                    + ", ".join(f"{k} {v}" for k, v in out["fold_cpu_s"].items())
                )
        print(
            f"{label or path_name:>11}: {records:,} records -> {out['customers']:,} customers in "
            f"{elapsed:,.1f} s ({out['records_per_s']:,}/s end to end; command {sent_s:,.1f} s), "
            f"load average {out['load_average_at_start']} -> {out['load_average_at_end']}"
        )
        return out


def lanes_ab(persons: int, rounds: int) -> int:
    rates: dict[int, list[float]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        file = scratch / "customers.jsonl"
        rows = generated(persons, "bench-lanes", seed=2027)
        file.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        for round_ in range(rounds):
            for lanes in (1, 2) if round_ % 2 == 0 else (2, 1):
                out = run_path("batch", file, scratch, lanes)
                folding = out["phase_s"].get("folding", 0.0)
                rates[lanes].append(out["delivered"] / folding if folding else 0.0)
                print(f"  lanes {lanes}: folding {folding} s, {rates[lanes][-1]:,.0f} records/s")
    for lanes, seen in rates.items():
        print(f"fold with {lanes} ApplyBatch in flight: median {statistics.median(seen):,.0f}/s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.cli_import.bench_customers_path")
    parser.add_argument("--persons", type=int, default=12_000)
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="rounds of both paths, in the order batch, stream, stream, batch, ... (the load of "
        "a shared machine drifts: neither path always runs second); medians are reported",
    )
    parser.add_argument(
        "--output", type=Path, default=RESULTS, help=f"results file (default {RESULTS})"
    )
    parser.add_argument(
        "--with-apply-batch",
        action="store_true",
        help="also the batch path folding with ApplyBatch calls as before FoldCustomerImport "
        "(SVOD_IMPORT_FOLD=apply_batch), in the same rounds: the fold's baseline",
    )
    parser.add_argument(
        "--lanes-ab",
        action="store_true",
        help="instead: the batch path only, folding with 1 and 2 ApplyBatch calls in flight",
    )
    parser.add_argument(
        "--paths",
        default="batch,stream",
        help="comma-separated: batch, stream (default both; 'batch' alone for the batch "
        "path's CPU per phase and process at a size where the stream path takes hours)",
    )
    parser.add_argument(
        "--label", default="", help="with --output: store under this label in the file"
    )
    args = parser.parse_args(argv)
    if args.lanes_ab:
        return lanes_ab(args.persons, args.rounds)
    # variant -> (the command's --path, SVOD_IMPORT_FOLD)
    wanted = [p.strip() for p in args.paths.split(",") if p.strip()]
    variants = {name: (name, "") for name in wanted if name in ("batch", "stream")}
    if args.with_apply_batch:
        variants["batch_apply_batch"] = ("batch", "apply_batch")
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        file = scratch / "customers.jsonl"
        rows = generated(args.persons, "bench-paths", seed=2026)
        file.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        print(f"{len(rows):,} records of {args.persons:,} persons; cpu count {os.cpu_count()}")
        for round_ in range(args.rounds):
            order = list(variants) if round_ % 2 == 0 else list(reversed(variants))
            for name in order:
                path_name, fold = variants[name]
                runs[name].append(run_path(path_name, file, scratch, fold=fold, label=name))

    def median(name: str) -> int:
        return (
            round(statistics.median(r["records_per_s"] for r in runs[name]))
            if runs.get(name)
            else 0
        )

    figures: dict[str, Any] = {
        "persons": args.persons,
        "records": len(rows),
        "rounds": args.rounds,
        "paths": list(variants),
        **{f"{name}_per_s": median(name) for name in variants},
        "same_customer_count": len({r["customers"] for rs in runs.values() for r in rs}) == 1,
        **runs,
        "cpu_count": os.cpu_count(),
        "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if "batch" in runs and "stream" in runs:
        figures["batch_vs_stream"] = round(median("batch") / median("stream"), 2)
        print(
            f"median of {args.rounds}: batch {figures['batch_per_s']:,}/s vs stream "
            f"{figures['stream_per_s']:,}/s end to end: {figures['batch_vs_stream']}x"
        )
    if "batch_apply_batch" in runs:
        figures["batch_vs_batch_apply_batch"] = round(
            median("batch") / median("batch_apply_batch"), 2
        )
        print(
            f"batch with ApplyBatch folding (before FoldCustomerImport): "
            f"{figures['batch_apply_batch_per_s']:,}/s; batch now "
            f"{figures['batch_vs_batch_apply_batch']}x that"
        )
    for name, seen in runs.items():
        folds = [r["phase_s"].get("folding") for r in seen if r.get("phase_s")]
        if folds:
            print(f"{name}: folding phases (s) {folds}")
    if args.label:
        # an entry of its own beside what the file holds (others' figures stay)
        stored = json.loads(args.output.read_text()) if args.output.exists() else {}
        stored[args.label] = figures
        args.output.write_text(json.dumps(stored, indent=2, ensure_ascii=False) + "\n")
        return 0
    args.output.write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
