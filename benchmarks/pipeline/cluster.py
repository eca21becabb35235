"""A Postgres cluster of the benchmark's own, durable like a production server.

The shared development server on 5432 is used by whatever else runs on the machine (test
sessions take its connection slots: a run there was seen failing with "remaining connection
slots are reserved"), and the tests' private cluster runs with fsync off, which would make
"durable accept" mean nothing. This one keeps fsync and synchronous_commit on (the defaults),
and every backend in it is the benchmark's, so its CPU is the pipeline's.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from svod_cli.postgres import PostgresMissing, PrivateCluster, _as_postgres_user, find_bindir
from svod_cli.suite import free_ports

# Outside the tree: the cluster is owned by the postgres user, and is the benchmark's alone.
DATADIR = Path(tempfile.gettempdir()) / "svod-pipeline-bench" / "pg"
OPTIONS = (
    "-c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=300 "
    "-c shared_buffers=256MB -c max_wal_size=2GB -c fsync=on -c synchronous_commit=on"
)


class BenchCluster(PrivateCluster):
    def __init__(self) -> None:
        bindir = find_bindir()
        if bindir is None:
            raise PostgresMissing("PostgreSQL binaries not found")
        super().__init__(DATADIR, bindir, free_ports(1)[0])

    def start(self) -> str:
        if not (self.datadir / "PG_VERSION").exists():
            # initdb through the parent (it starts with fsync off; stop it and restart below).
            super().start()
            self.stop()
        subprocess.run(
            _as_postgres_user(
                [
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(self.datadir),
                    "-l",
                    str(self.datadir / "server.log"),
                    "-o",
                    f"-p {self.port} {OPTIONS}",
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )
        return self.url
