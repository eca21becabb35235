"""A Postgres cluster of the benchmark's own, durable like a production server.

The shared development server on 5432 is used by whatever else runs on the machine (test
sessions take its connection slots: a run there was seen failing with "remaining connection
slots are reserved"). This one keeps fsync and synchronous_commit on (the defaults), and every
backend in it is the benchmark's, so its CPU is the pipeline's.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from svod_cli.postgres import PostgresMissing, PrivateCluster, find_bindir
from svod_cli.suite import free_ports

SETTINGS = {
    "max_connections": "300",
    "shared_buffers": "256MB",
    "max_wal_size": "2GB",
    "fsync": "on",
    "synchronous_commit": "on",
}


@contextlib.contextmanager
def bench_cluster(extra: dict[str, str] | None = None) -> Iterator[str]:
    """A started cluster's admin URL; stopped and its folder removed afterwards. The folder is
    the run's own, outside the tree (the cluster is owned by the postgres user): two runs at
    once (two worktrees) once shared one folder, and the second failed to start. ``extra``:
    settings on top of SETTINGS (``--statements`` preloads pg_stat_statements)."""
    bindir = find_bindir()
    if bindir is None:
        raise PostgresMissing("PostgreSQL binaries not found")
    folder = Path(tempfile.mkdtemp(prefix="svod-pipeline-bench-"))
    folder.chmod(0o755)  # the postgres user reaches its data folder through it
    cluster = PrivateCluster(folder / "pg", bindir, free_ports(1)[0], {**SETTINGS, **(extra or {})})
    try:
        yield cluster.start()
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)
