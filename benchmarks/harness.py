"""What the benchmarks share: a scratch database and the five services running on it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

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


@contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """A new database with every service's schema and role; dropped afterwards (and a private
    cluster, if one had to be started, stopped)."""
    admin, cluster = ensure_postgres(TOP)
    name = f"{prefix}_{uuid.uuid4().hex[:6]}"
    db_url = create_database(admin, name)
    try:
        prepare_database(db_url)
        yield db_url
    finally:
        drop_database(admin, name)
        if cluster is not None:
            cluster.stop()


@contextmanager
def running_suite(db_url: str) -> Iterator[ProcessSuite]:
    """The five services as separate processes on free ports, stopped afterwards."""
    suite = ProcessSuite(
        db_url,
        ports=dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True)),
        extra_env={"SVOD_LOG_LEVEL": "WARNING"},
    ).start()
    try:
        yield suite
    finally:
        suite.stop()
