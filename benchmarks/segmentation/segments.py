"""The 20 rule segments (and the two built-ins) the benchmarks evaluate."""

from __future__ import annotations

from svod_segmentation.domain.model import Segment
from svod_segmentation.domain.rules import (
    AllOf,
    AnyOf,
    BehaviorCondition,
    FieldCondition,
    InSegment,
    Not,
    Rule,
    SegmentDefinition,
)


def f(field: str, op: str, *values: str) -> FieldCondition:
    return FieldCondition(field, op, values)


def b(event: str, cmp: str, threshold: float, days: int, agg: str = "count", **flt: str) -> Rule:
    filters = tuple(sorted((k.replace("__", "."), v) for k, v in flt.items()))
    return BehaviorCondition(event, agg, cmp, threshold, days, filters)


RULES: dict[str, Rule] = {
    "repeat-buyers": f("metrics.order_count", "ge", "2"),
    "mid-spenders": f("metrics.total_spent", "between", "5000", "50000"),
    "recent-buyers": f("metrics.last_order_time", "within_last", "90"),
    "lapsed": AllOf(
        (f("metrics.order_count", "ge", "1"), f("metrics.last_order_time", "before_last", "365"))
    ),
    "capitals": f("city", "in", "Москва", "Санкт-Петербург"),
    "young-women": AllOf((f("gender", "eq", "female"), f("age", "between", "25", "40"))),
    "email-readers": AllOf(
        (f("consents.email", "eq", "opted_in"), f("metrics.campaign_opened_count", "ge", "1"))
    ),
    "bought-twice-90d": b("order_placed", "ge", 2, 90),
    "no-email-open-60d": b("campaign_opened", "eq", 0, 60, property__channel="email"),
    "spent-10k-365d": b("order_placed", "ge", 10000, 365, "sum"),
    "window-shoppers": AllOf((b("product_viewed", "ge", 3, 30), b("order_placed", "eq", 0, 30))),
    "shoes-30d": b("order_placed", "ge", 1, 30, category="shoes"),
    "gold-tier": f("attributes.loyalty_tier", "in", "gold", "platinum"),
    "parents": f("attributes.kids", "gt", "0"),
    "pos-customers": f("metrics.channels", "contains", "pos"),
    "sms-or-push": AnyOf(
        (f("consents.sms", "eq", "opted_in"), f("consents.push", "eq", "opted_in"))
    ),
    "not-recent": AllOf((Not(InSegment("recent-buyers")), f("metrics.order_count", "ge", "1"))),
    "abandoned-7d": b("cart_abandoned", "ge", 1, 7),
    "discount-180d": b("order_placed", "ge", 2, 180, discounted="true"),
    "big-repeaters": AllOf((InSegment("repeat-buyers"), InSegment("spent-10k-365d"))),
}


def definitions() -> list[Segment]:
    """Rule segments in an order that creates referenced ones first, then RFM and ABC."""
    out = [Segment(SegmentDefinition(name, rule)) for name, rule in RULES.items()]
    out.append(Segment(SegmentDefinition("rfm", builtin="rfm")))
    out.append(Segment(SegmentDefinition("abc", builtin="abc")))
    return out
