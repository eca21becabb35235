"""Profiles stored before names were indexed get their name history and search keys."""

from __future__ import annotations

import secrets
import uuid

import psycopg

from svod_cli.suite import create_database, drop_database, versions_dir
from svod_runtime.config import service_database_url
from svod_runtime.db import bootstrap_service_schema, libpq_url
from svod_runtime.migrations import upgrade


def test_upgrade_fills_name_variants_and_keys_of_stored_profiles(postgres_admin_url) -> None:
    name = f"svod_test_migr_{secrets.token_hex(4)}"
    db_url = create_database(postgres_admin_url, name)
    try:
        bootstrap_service_schema(db_url, "profile")
        url = service_database_url("profile", {"SVOD_DATABASE_URL": db_url})
        upgrade(versions_dir("profile"), url, "profile", "profile_0004")
        customer = str(uuid.uuid4())
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            conn.execute("INSERT INTO profiles (customer_id) VALUES (%s)", (customer,))
            for field, value, day in (
                ("first_name", "Маша", 1),
                ("first_name", "Маша", 2),
                ("first_name", "Masha", 3),
                ("last_name", "Смирнова", 1),
                ("birth_date", "1990-01-01", 1),
            ):
                conn.execute(
                    "INSERT INTO trait_values (customer_id, field, value, source, channel, "
                    "observed_at, record_source, record_message_id) VALUES "
                    "(%s, %s, %s, 'pos', 'pos', timestamptz '2026-01-01' + %s * interval '1 day', "
                    "'pos', %s)",
                    (customer, field, value, day, f"m{day}{field}"),
                )
        upgrade(versions_dir("profile"), url, "profile")
        with psycopg.connect(libpq_url(url)) as conn:
            keys, variants = conn.execute(
                "SELECT name_keys, name_variants FROM profiles WHERE customer_id = %s",
                (customer,),
            ).fetchone()
        assert set(keys) == {"f:masha", "f:maria", "l:smirnova"}
        assert sorted((v["f"], v["v"], v["n"]) for v in variants) == [
            ("first_name", "Masha", 1),
            ("first_name", "Маша", 2),
            ("last_name", "Смирнова", 1),
        ]
    finally:
        drop_database(postgres_admin_url, name)
