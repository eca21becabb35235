"""Bulk-loads synthetic profiles straight into the profile schema (set-based SQL, fast)."""

from __future__ import annotations

import psycopg

from svod_runtime.db import libpq_url


def load_profiles(db_url: str, count: int) -> list[str]:
    with psycopg.connect(libpq_url(db_url), autocommit=True) as conn:
        conn.execute("SET search_path TO profile")
        conn.execute(
            """
            CREATE TEMP TABLE bench_ids AS
            SELECT n, gen_random_uuid() AS customer_id FROM generate_series(1, %s) AS n
            """,
            (count,),
        )
        conn.execute(
            """
            INSERT INTO profiles (customer_id, shown, metrics, version, name_variants,
                                  name_keys)
            SELECT customer_id,
                   jsonb_build_object(
                       'first_name', jsonb_build_object('value', 'Имя' || n, 'source', 'pos',
                           'channel', 'pos', 'observed_at', '2026-01-01T00:00:00+00:00'),
                       'last_name', jsonb_build_object('value', 'Фамилия' || (n % 5000),
                           'source', 'pos', 'channel', 'pos',
                           'observed_at', '2026-01-01T00:00:00+00:00')),
                   '{}', 1,
                   -- Three spellings seen (Маша, Мария, Masha; Смирнова): the name history a
                   -- profile carries.
                   jsonb_build_array(
                       jsonb_build_object('f', 'first_name', 'v', 'Имя' || n, 's', 'pos',
                           'ch', 'pos', 'at', '2026-01-01T00:00:00+00:00',
                           'first', '2026-01-01T00:00:00+00:00', 'n', 3),
                       jsonb_build_object('f', 'first_name', 'v', 'Imya' || n, 's', 'app',
                           'ch', 'app', 'at', '2026-02-01T00:00:00+00:00',
                           'first', '2026-02-01T00:00:00+00:00', 'n', 1),
                       jsonb_build_object('f', 'last_name', 'v', 'Фамилия' || (n % 5000),
                           's', 'pos', 'ch', 'pos', 'at', '2026-01-01T00:00:00+00:00',
                           'first', '2026-01-01T00:00:00+00:00', 'n', 4)),
                   ARRAY['f:imia' || n, 'l:familia' || (n % 5000)]
            FROM bench_ids
            """
        )
        conn.execute(
            """
            INSERT INTO profile_identifiers (customer_id, id_type, value, source, channel,
                                             observed_at)
            SELECT customer_id, 'phone', '+7916' || lpad(n::text, 7, '0'), 'pos', 'pos', now()
            FROM bench_ids
            """
        )
        conn.execute(
            """
            INSERT INTO profile_sources (customer_id, source, channel, first_seen, last_seen,
                                         record_count)
            SELECT customer_id, 'pos', 'pos', now(), now(), 1 FROM bench_ids
            """
        )
        # As a running database would be: vacuumed (visibility map, hint bits) and analysed, so
        # the first reads do not pay for the bulk load.
        for table in ("profiles", "profile_identifiers", "profile_sources"):
            conn.execute(f"VACUUM ANALYZE {table}")
        return [str(r[0]) for r in conn.execute("SELECT customer_id FROM bench_ids")]
