"""What the look-alike model reads from the read model (features per customer) and writes
(the chosen customers' scores). Runs inside the caller's transaction."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from svod_segmentation.domain.builtins import MODEL_BUILTINS
from svod_segmentation.domain.lookalike import CustomerFeatures

_BASE = """
SELECT CAST(c.customer_id AS text) AS customer_id,
    extract(epoch FROM (:now - c.last_order_at)) / 86400 AS recency_days,
    c.order_count, c.total_spent, c.average_order_value, c.return_count, c.items_bought,
    c.abandoned_cart_count, c.campaign_delivered_count, c.campaign_opened_count,
    c.campaign_clicked_count, c.session_count, c.support_ticket_count,
    c.loyalty_points_balance,
    date_part('year', age(CAST(:now AS date), c.birth_date)) AS age,
    extract(epoch FROM (:now - c.profile_created_at)) / 86400 AS tenure_days,
    coalesce(c.gender, '') AS gender, coalesce(c.city, '') AS city, c.channels, c.sources
FROM customers c
WHERE c.merged_into IS NULL {population}
"""

_EVENTS = """
SELECT CAST(e.customer_id AS text) AS customer_id,
    count(*) FILTER (WHERE e.event_type = 'order_placed' AND coalesce(e.discount, 0) > 0)
        AS discounted,
    count(*) FILTER (WHERE e.event_type = 'order_placed') AS orders,
    count(*) FILTER (WHERE e.event_type = 'product_viewed') AS product_views,
    count(*) FILTER (WHERE e.event_type = 'page_viewed') AS page_views
FROM events e
WHERE e.event_type IN ('order_placed', 'product_viewed', 'page_viewed') {population}
GROUP BY e.customer_id
"""

_CATEGORIES = """
SELECT CAST(e.customer_id AS text) AS customer_id, cat, count(*) AS n
FROM events e, unnest(e.categories) AS cat
WHERE e.event_type = 'order_placed' {population}
GROUP BY e.customer_id, cat
"""

_CLASSES = """
SELECT CAST(m.customer_id AS text) AS customer_id, s.builtin, m.label
FROM memberships m JOIN segments s ON s.segment_id = m.segment_id
WHERE s.builtin <> '' AND NOT s.builtin = ANY(CAST(:model AS text[])) AND m.label IS NOT NULL
"""


def _num(value: object) -> float:
    if value is None:
        return 0.0
    number = float(value)  # type: ignore[arg-type]
    return number if math.isfinite(number) else 0.0


async def load_features(
    conn: AsyncConnection, now: dt.datetime, population: Sequence[str] | None
) -> list[CustomerFeatures]:
    """Every live customer's features (only ``population``'s when given), by customer id."""
    params: dict[str, object] = {
        "now": now,
        "pop": list(population or []),
        "model": list(MODEL_BUILTINS),
    }
    only_c = "AND c.customer_id = ANY(CAST(:pop AS uuid[]))" if population is not None else ""
    only_e = "AND e.customer_id = ANY(CAST(:pop AS uuid[]))" if population is not None else ""
    rows = await conn.execute(text(_BASE.format(population=only_c)), params)
    features: dict[str, CustomerFeatures] = {}
    for r in rows:
        tokens: dict[str, float] = {}
        if r.gender:
            tokens[f"gender:{r.gender}"] = 1.0
        if r.city:
            tokens[f"city:{r.city.strip().lower()}"] = 1.0
        for value in r.channels or ():
            tokens[f"channel:{value}"] = 1.0
        for value in r.sources or ():
            tokens[f"source:{value}"] = 1.0
        no_order = r.recency_days is None
        features[r.customer_id] = CustomerFeatures(
            r.customer_id,
            {
                "recency_days": 3650.0 if no_order else _num(r.recency_days),
                "no_order": float(no_order),
                "orders": _num(r.order_count),
                "spent": _num(r.total_spent),
                "order_value": _num(r.average_order_value),
                "returns": _num(r.return_count),
                "items": _num(r.items_bought),
                "abandoned_carts": _num(r.abandoned_cart_count),
                "campaigns_delivered": _num(r.campaign_delivered_count),
                "campaigns_opened": _num(r.campaign_opened_count),
                "campaigns_clicked": _num(r.campaign_clicked_count),
                "sessions": _num(r.session_count),
                "support_tickets": _num(r.support_ticket_count),
                "loyalty_points": _num(r.loyalty_points_balance),
                "age": _num(r.age),
                "no_age": float(r.age is None),
                "tenure_days": _num(r.tenure_days),
            },
            tokens,
        )
    for r in await conn.execute(text(_EVENTS.format(population=only_e)), params):
        found = features.get(r.customer_id)
        if found is not None:
            found.numbers["discount_share"] = r.discounted / r.orders if r.orders else 0.0
            found.numbers["product_views"] = float(r.product_views)
            found.numbers["page_views"] = float(r.page_views)
    for r in await conn.execute(text(_CATEGORIES.format(population=only_e)), params):
        found = features.get(r.customer_id)
        if found is not None:
            found.tokens[f"category:{r.cat.strip().lower()}"] = math.log1p(r.n)
    for r in await conn.execute(text(_CLASSES), params):
        found = features.get(r.customer_id)
        if found is not None:
            found.tokens[f"{r.builtin}:{r.label}"] = 1.0
    return [features[k] for k in sorted(features)]


async def segment_members(conn: AsyncConnection, segment_id: str) -> list[str]:
    rows = await conn.execute(
        text(
            "SELECT CAST(customer_id AS text) AS c FROM memberships WHERE segment_id = :s "
            "ORDER BY customer_id"
        ),
        {"s": segment_id},
    )
    return [r.c for r in rows]


async def replace_scores(
    conn: AsyncConnection, segment_id: str, chosen: Sequence[tuple[str, float]]
) -> None:
    await conn.execute(
        text("DELETE FROM lookalike_scores WHERE segment_id = :s"), {"s": segment_id}
    )
    if chosen:
        await conn.execute(
            text(
                "INSERT INTO lookalike_scores (segment_id, customer_id, score) "
                "SELECT :s, CAST(x.r ->> 0 AS uuid), CAST(x.r ->> 1 AS float8) "
                "FROM jsonb_array_elements(CAST(:rows AS jsonb)) AS x(r)"
            ),
            {"s": segment_id, "rows": json.dumps([[c, s] for c, s in chosen])},
        )


async def drop_scores(conn: AsyncConnection, segment_id: str) -> None:
    await conn.execute(
        text("DELETE FROM lookalike_scores WHERE segment_id = :s"), {"s": segment_id}
    )
