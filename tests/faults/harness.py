"""What the fault tests share: the five services as separate processes on a database of the
test's own, killing and restarting one of them for real, and the table of outcomes.

Each scenario records one row (``record``): acknowledged messages, how many reached their
profiles, how many were lost or counted twice, and how long the suite took to recover. The
rows are printed at the end of the session (tests/faults/conftest.py) and written to
RESULTS_FILE (replaced by each session that ran a scenario).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from svod_cli.suite import (
    TOP,
    ProcessSuite,
    create_database,
    drop_database,
    free_ports,
    prepare_database,
    wait_healthy,
)
from svod_runtime.config import SERVICES

# Where the session's table is written: .data/ by default (a test run leaves the work tree
# clean); SVOD_FAULTS_RESULTS=benchmarks/results/faults.txt to record a run in the repository.
RESULTS_FILE = TOP / os.environ.get("SVOD_FAULTS_RESULTS", ".data/faults.txt")


@contextmanager
def process_suite(
    admin_url: str, extra_env: dict[str, str] | None = None, prefix: str = "svod_fault"
) -> Iterator[ProcessSuite]:
    """The five services, one process each (as the chart runs them), on a fresh database."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    url = create_database(admin_url, name)
    suite = None
    try:
        prepare_database(url)
        suite = ProcessSuite(
            url,
            ports=dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True)),
            extra_env={"SVOD_LOG_LEVEL": "WARNING", **(extra_env or {})},
        ).start()
        yield suite
    finally:
        if suite is not None:
            suite.stop()
        drop_database(admin_url, name)


def _descendants(pid: int) -> list[int]:
    """Every process started under ``pid`` (Linux /proc), children before theirs."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as children:
                for child in children.read().split():
                    found.append(int(child))
                    found += _descendants(int(child))
        except OSError:
            continue
    return found


def kill(suite: ProcessSuite, service: str) -> None:
    """``kill -9`` of the service and every process it started (quality's worker pool), as
    when its container dies: no drain, no lease released, nothing flushed. Workers left
    behind would outlive the test holding its output open."""
    process = suite.processes[service]
    for pid in [process.pid, *_descendants(process.pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait(10)


def restart(suite: ProcessSuite, service: str) -> None:
    """Starts the service again (its process had ended) and waits until it serves."""
    suite.processes[service] = subprocess.Popen(
        [sys.executable, "-m", f"svod_{service}", "serve"], env=suite.env
    )
    wait_healthy({service: suite.ports[service]}, env=suite.env)


@dataclass(frozen=True)
class Outcome:
    scenario: str
    acknowledged: int
    delivered: int
    lost: int
    double_counted: int
    recovery_s: float


OUTCOMES: list[Outcome] = []
HEADER = (
    f"{'scenario':<44} {'acknowledged':>12} {'delivered':>9} {'lost':>5} "
    f"{'double-counted':>14} {'recovery':>9}"
)


def line(outcome: Outcome) -> str:
    return (
        f"{outcome.scenario:<44} {outcome.acknowledged:>12} {outcome.delivered:>9} "
        f"{outcome.lost:>5} {outcome.double_counted:>14} {outcome.recovery_s:>8.1f}s"
    )


def record(outcome: Outcome) -> None:
    """Keeps the row for the session's table (printed and written at the end) and prints it."""
    OUTCOMES.append(outcome)
    print("\n" + HEADER + "\n" + line(outcome))


def write_results() -> Path:
    """RESULTS_FILE: this session's rows (the file is replaced)."""
    path = Path(RESULTS_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    load = os.getloadavg()[0]
    rows = "\n".join(line(outcome) for outcome in OUTCOMES)
    path.write_text(
        f"# tests/faults, {stamp} UTC, {os.cpu_count()} cores, load average {load:.1f}\n"
        f"{HEADER}\n{rows}\n",
        encoding="utf-8",
    )
    return path
