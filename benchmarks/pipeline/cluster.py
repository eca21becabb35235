"""A Postgres cluster of the benchmark's own, durable like a production server.

The shared development server on 5432 is used by whatever else runs on the machine (test
sessions take its connection slots: a run there was seen failing with "remaining connection
slots are reserved"). This one keeps fsync and synchronous_commit on (the defaults), and every
backend in it is the benchmark's, so its CPU is the pipeline's.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from svod_cli.postgres import PostgresMissing, PrivateCluster, find_bindir
from svod_cli.suite import free_ports

# Outside the tree: the cluster is owned by the postgres user, and is the benchmark's alone.
DATADIR = Path(tempfile.gettempdir()) / "svod-pipeline-bench" / "pg"
SETTINGS = {
    "max_connections": "300",
    "shared_buffers": "256MB",
    "max_wal_size": "2GB",
    "fsync": "on",
    "synchronous_commit": "on",
}


def bench_cluster() -> PrivateCluster:
    bindir = find_bindir()
    if bindir is None:
        raise PostgresMissing("PostgreSQL binaries not found")
    return PrivateCluster(DATADIR, bindir, free_ports(1)[0], SETTINGS)
