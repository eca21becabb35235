"""CPU seconds used by the service processes and by Postgres during a phase (Linux /proc).

Services: each process of the suite (and any child it starts), by name. Postgres: the client
backends connected to the benchmark's database (``pg_stat_activity``), sampled every half
second while the phase runs so that connections a pool opens or closes meanwhile are counted
(one opened during the phase counts from zero; one closed during it counts up to its last
sample). Postgres' shared background processes (WAL writer, checkpointer, autovacuum, ...) are
given apart: on a cluster other databases use they are not all ours.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping

import psycopg

from svod_runtime.db import libpq_url

TICK = os.sysconf("SC_CLK_TCK")
_BACKGROUND = (
    "walwriter",
    "checkpointer",
    "background writer",
    "autovacuum launcher",
    "autovacuum worker",
    "logical replication launcher",
    "walsender",
)


def process_cpu(pid: int) -> float | None:
    """User + system CPU seconds of one process, None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def children_of(pids: set[int]) -> set[int]:
    """The processes ``pids`` started (any depth), from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found: set[int] = set()
    frontier = set(pids)
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


class CpuMeter:
    """Samples the CPU of named processes and of the database's backends during a phase."""

    def __init__(self, services: Mapping[str, int], db_url: str, every_s: float = 0.5) -> None:
        self.services = dict(services)
        self.db_url = libpq_url(db_url)
        self.every_s = every_s
        # pid -> (label, CPU at first sight, CPU at last sight)
        self._seen: dict[int, tuple[str, float, float]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection | None = None
        self._started = 0.0
        self.elapsed_s = 0.0

    def _pids(self) -> dict[int, str]:
        labelled = {pid: name for name, pid in self.services.items()}
        for name, pid in self.services.items():
            for child in children_of({pid}):
                labelled[child] = name
        assert self._conn is not None
        rows = self._conn.execute(
            # The benchmark's own connections (application_name svod-bench) are not counted.
            "SELECT pid, backend_type, datname = current_database() FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND application_name <> 'svod-bench'"
        ).fetchall()
        for pid, backend_type, ours in rows:
            if backend_type == "client backend" and ours:
                labelled[pid] = "postgres"
            elif backend_type in _BACKGROUND:
                labelled[pid] = "postgres_background"
        return labelled

    def _sample(self, first: bool = False) -> None:
        for pid, label in self._pids().items():
            used = process_cpu(pid)
            if used is None:
                continue
            if pid in self._seen:
                label0, start, _ = self._seen[pid]
                self._seen[pid] = (label0, start, used)
            else:
                # Present at the start: counts from now. Appeared later: all of its CPU is ours.
                self._seen[pid] = (label, used if first else 0.0, used)

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self._sample()

    def __enter__(self) -> CpuMeter:
        self._started = time.perf_counter()
        self._conn = psycopg.connect(self.db_url, autocommit=True, application_name="svod-bench")
        self._sample(first=True)
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        self.elapsed_s = time.perf_counter() - self._started
        if self._conn is not None:
            self._conn.close()

    def seconds(self, idle_per_s: Mapping[str, float] | None = None) -> dict[str, float]:
        """CPU seconds by process label over the phase; with ``idle_per_s`` (a quiet period's
        CPU per second by label: pollers, metrics, housekeeping), less what the phase's length
        of quiet would have used, so a slow phase is not charged for its idling."""
        out: dict[str, float] = {}
        for label, start, last in self._seen.values():
            out[label] = out.get(label, 0.0) + max(0.0, last - start)
        for label, rate in (idle_per_s or {}).items():
            if label in out:
                out[label] = max(0.0, out[label] - rate * self.elapsed_s)
        return {k: round(v, 2) for k, v in sorted(out.items(), key=lambda kv: -kv[1])}

    def per_second(self) -> dict[str, float]:
        """CPU seconds per second of the phase, by label (of a quiet period: the idle cost)."""
        return {k: round(v / self.elapsed_s, 4) for k, v in self.seconds().items()}


def per_message(cpu: Mapping[str, float], messages: int) -> dict[str, float]:
    """Milliseconds of CPU per message by process label."""
    return {k: round(v / messages * 1000, 3) for k, v in cpu.items()}
