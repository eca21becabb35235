"""Each service's database role can touch only its own schema."""

from __future__ import annotations

import itertools

import psycopg
import pytest
from psycopg import sql

from svod_runtime.config import SERVICES
from svod_runtime.db import libpq_url

# One table of each schema (the Alembic version table exists in all of them).
VERSION_TABLE = "alembic_version"


PAIRS = list(itertools.permutations(SERVICES, 2))


@pytest.mark.parametrize(("reader", "owner"), PAIRS, ids=[f"{r}-reads-{o}" for r, o in PAIRS])
def test_role_is_refused_another_services_schema(suite_database, reader, owner) -> None:
    with (
        psycopg.connect(libpq_url(suite_database.service_urls[reader])) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute(
            sql.SQL("SELECT * FROM {}.{}").format(
                sql.Identifier(owner), sql.Identifier(VERSION_TABLE)
            )
        )


@pytest.mark.parametrize("service", SERVICES)
def test_role_reads_its_own_schema_and_cannot_create_elsewhere(suite_database, service) -> None:
    with psycopg.connect(libpq_url(suite_database.service_urls[service])) as conn:
        version = conn.execute(
            sql.SQL("SELECT version_num FROM {}.{}").format(
                sql.Identifier(service), sql.Identifier(VERSION_TABLE)
            )
        ).fetchone()
        assert version is not None and version[0].startswith(service)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE public.svod_escape (x int)")
