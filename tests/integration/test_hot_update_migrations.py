"""The migrations that make the outbox claim and ingestion's delivery heap-only updates
(issue #20) go down and up again on a database of every service, with rows in the tables.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest
from alembic import command

from svod_cli.suite import create_database, drop_database, prepare_database, versions_dir
from svod_runtime.db import libpq_url
from svod_runtime.migrations import alembic_config

# Each service's revision before this change's.
BEFORE = {
    "identity": "identity_0009",
    "ingestion": "ingestion_0009",
    "profile": "profile_0010",
    "segmentation": "segmentation_0008",
}


@pytest.fixture
def service_urls(postgres_admin_url: str) -> Iterator[dict[str, str]]:
    name = f"svod_hot_{time.monotonic_ns()}"
    url = create_database(postgres_admin_url, name)
    try:
        yield prepare_database(url)
    finally:
        drop_database(postgres_admin_url, name)


def _shape(url: str, schema: str, table: str) -> tuple[dict[str, str], list[str]]:
    """The table's indexes (name: definition) and storage options."""
    with psycopg.connect(libpq_url(url)) as conn:
        indexes = dict(
            conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s "
                "AND tablename = %s",
                (schema, table),
            ).fetchall()
        )
        options = conn.execute(
            "SELECT coalesce(reloptions, '{}') FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
            (schema, table),
        ).fetchone()
    assert options is not None
    return indexes, list(options[0])


def test_outbox_and_records_migrations_go_down_and_up(service_urls) -> None:
    for service, before in BEFORE.items():
        url = service_urls[service]
        with psycopg.connect(libpq_url(url)) as conn:
            conn.execute("INSERT INTO outbox (topic, key) VALUES ('t', 'k')")
        indexes, options = _shape(url, service, "outbox")
        assert "outbox_leased" not in indexes
        assert options == ["fillfactor=50"]

        config = alembic_config(versions_dir(service), url, service)
        command.downgrade(config, before)
        indexes, options = _shape(url, service, "outbox")
        assert "lease_token" in indexes["outbox_leased"]
        assert options == []
        if service == "ingestion":
            records, options = _shape(url, service, "records")
            assert "state = 'pending'" in records["records_import"]
            assert options == []

        command.upgrade(config, "head")
        indexes, options = _shape(url, service, "outbox")
        assert "outbox_leased" not in indexes
        assert options == ["fillfactor=50"]
        with psycopg.connect(libpq_url(url)) as conn:
            assert conn.execute("SELECT count(*) FROM outbox").fetchone() == (1,)

    records, options = _shape(service_urls["ingestion"], "ingestion", "records")
    assert "state" not in records["records_import"]
    assert "import_id IS NOT NULL" in records["records_import"]
    assert options == ["fillfactor=50"]
