"""Synthetic read model for segmentation benchmarks, generated inside Postgres.

A fresh database of its own (``svod_bench_seg_*``) gets the segmentation schema, then
``customers`` rows and their ``events`` (0-14 per customer, two years back) are written by
``INSERT ... SELECT generate_series`` with a fixed seed; order metrics are derived from the
order events, so profiles and behaviour agree.
"""

from __future__ import annotations

import os
import secrets
import time

import psycopg

from svod_cli.postgres import ensure_postgres
from svod_cli.suite import TOP, create_database, prepare_database
from svod_runtime.db import libpq_url

CUSTOMERS_SQL = """
SELECT setseed(0.42);
INSERT INTO customers (customer_id, profile_version, first_name, last_name, gender, birth_date,
    city, country_code, currency, channels, sources, identifier_types, consents, attributes,
    profile_created_at, profile_updated_at, campaign_opened_count, session_count)
SELECT gen_random_uuid(), 1,
    (ARRAY['Мария','Анна','Елена','Иван','Сергей','Ольга'])[1 + floor(random() * 6)],
    (ARRAY['Смирнова','Иванов','Кузнецова','Попов'])[1 + floor(random() * 4)],
    (ARRAY['female','male'])[1 + floor(random() * 2)],
    date '1950-01-01' + floor(random() * 20000)::int,
    (ARRAY['Москва','Санкт-Петербург','Казань','Самара','Екатеринбург','Новосибирск'])
        [1 + floor(random() * 6)],
    'RU', 'RUB',
    string_to_array((ARRAY['pos,web', 'web,app', 'pos'])[1 + floor(random() * 3)], ','),
    ARRAY['pos-msk-01', 'webshop'], ARRAY['phone', 'email'],
    jsonb_build_object(
        'email', (ARRAY['opted_in','opted_out','opted_in'])[1 + floor(random() * 3)],
        'sms', (ARRAY['opted_in','opted_out'])[1 + floor(random() * 2)],
        'push', (ARRAY['opted_in','opted_out'])[1 + floor(random() * 2)]),
    jsonb_build_object(
        'loyalty_tier', (ARRAY['basic','silver','gold','platinum'])[1 + floor(random() * 4)],
        'kids', floor(random() * 4)::text),
    now() - random() * interval '1500 days', now() - random() * interval '30 days',
    floor(random() * 20)::int, floor(random() * 50)::int
FROM generate_series(1, %(n)s);
"""

EVENTS_SQL = """
SELECT setseed(0.43);
INSERT INTO events (source, message_id, customer_id, event_type, occurred_at, amount, discount,
    categories, channel, properties)
SELECT 'bench', c.customer_id::text || '-' || k, c.customer_id, t.event_type,
    now() - random() * interval '730 days',
    CASE WHEN t.event_type = 'order_placed' THEN round((200 + random() * 9800)::numeric, 2) END,
    CASE WHEN t.event_type = 'order_placed' AND random() < 0.4
         THEN round((random() * 500)::numeric, 2) ELSE 0 END,
    ARRAY[(ARRAY['shoes','dresses','kids','home','beauty'])[1 + floor(random() * 5)]],
    (ARRAY['pos','web','app'])[1 + floor(random() * 3)],
    jsonb_build_object('channel', (ARRAY['email','sms','push'])[1 + floor(random() * 3)])
FROM customers c
CROSS JOIN LATERAL generate_series(1, abs(hashtext(c.customer_id::text)) %% 15) AS k
CROSS JOIN LATERAL (
    SELECT (ARRAY['order_placed','order_placed','order_placed','product_viewed',
                  'product_viewed','page_viewed','campaign_opened','campaign_delivered',
                  'cart_abandoned','session_started'])[1 + floor(random() * 10 + k * 0)::int]
        AS event_type
) t;
"""

METRICS_SQL = """
UPDATE customers c SET order_count = o.n, total_spent = o.spent,
    average_order_value = round(o.spent / o.n, 2), first_order_at = o.first,
    last_order_at = o.last, last_contact_at = o.last
FROM (
    SELECT customer_id, count(*) AS n, sum(amount) AS spent, min(occurred_at) AS first,
        max(occurred_at) AS last
    FROM events WHERE event_type = 'order_placed' GROUP BY customer_id
) o
WHERE o.customer_id = c.customer_id;
"""


def fresh_database(prefix: str = "svod_bench_seg") -> tuple[str, str, str, dict[str, str]]:
    """(admin url, database name, database admin url, service urls) of a new database."""
    admin_url, _cluster = ensure_postgres(TOP)
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    db_url = create_database(admin_url, name)
    return admin_url, name, db_url, prepare_database(db_url)


def load(service_url: str, customers: int) -> dict[str, float]:
    """Fills the read model; returns timings and sizes."""
    out: dict[str, float] = {}
    with psycopg.connect(libpq_url(service_url), autocommit=True) as conn:
        for name, sql in (
            ("customers", CUSTOMERS_SQL),
            ("events", EVENTS_SQL),
            ("metrics", METRICS_SQL),
        ):
            started = time.perf_counter()
            conn.execute(sql % {"n": customers} if name != "events" else sql.replace("%%", "%"))
            out[f"load_{name}_s"] = round(time.perf_counter() - started, 2)
        conn.execute("VACUUM ANALYZE customers")
        conn.execute("VACUUM ANALYZE events")
        out["events"] = conn.execute("SELECT count(*) FROM events").fetchone()[0]  # type: ignore[index]
    out["customers"] = customers
    return out
