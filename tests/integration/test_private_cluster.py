"""With PostgreSQL installed but not running, Svod starts a private cluster of its own."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest

from svod_cli.postgres import PrivateCluster, answers, find_bindir
from svod_cli.suite import free_ports

pytestmark = pytest.mark.slow


def test_private_cluster_starts_answers_and_stops() -> None:
    bindir = find_bindir()
    assert bindir is not None, "PostgreSQL binaries (initdb, pg_ctl) not found"
    folder = Path(tempfile.mkdtemp(prefix="svod-pg-"))
    folder.chmod(0o755)  # the postgres user runs initdb here when we are root
    (port,) = free_ports(1)
    cluster = PrivateCluster(folder / "pg", bindir, port=port)
    try:
        url = cluster.start()
        assert answers("127.0.0.1", port)
        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres") as c:
            assert c.execute("SELECT 1").fetchone() == (1,)
            # Case-insensitive search of Cyrillic names needs a UTF-8 aware locale.
            assert c.execute("SELECT lower('СМИРНОВА')").fetchone() == ("смирнова",)
        assert url.endswith(f"127.0.0.1:{port}/postgres")
        assert cluster.start() == url  # already running: reused, not re-initialised
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)
    assert not answers("127.0.0.1", port)
