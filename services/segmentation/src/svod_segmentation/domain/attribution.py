"""Campaign attribution: which campaign touches preceded each order, and who gets the credit.

For every order, the touches of the same customer (campaign events: delivered, opened,
clicked) in the window before it are its candidates, oldest first. First-touch gives the whole
order (count 1 and its amount) to the oldest, last-touch to the newest, linear an equal share
to each. Credit goes to (campaign, channel) pairs; an order without touches is unattributed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

TOUCH_TYPES = ("delivered", "opened", "clicked")
MIN_WINDOW_DAYS, MAX_WINDOW_DAYS, DEFAULT_WINDOW_DAYS = 1, 90, 7
MAX_PERIOD_DAYS = 366
MAX_CAMPAIGN_FILTER = 100


@dataclass(frozen=True)
class Order:
    customer_id: str
    at: dt.datetime
    amount: Decimal


@dataclass(frozen=True)
class Touch:
    customer_id: str
    at: dt.datetime
    campaign_id: str
    channel: str
    kind: str  # delivered / opened / clicked


@dataclass
class Credit:
    campaign_id: str
    channel: str
    touches: int = 0
    touched_orders: int = 0
    first_orders: Decimal = Decimal(0)
    last_orders: Decimal = Decimal(0)
    linear_orders: Decimal = Decimal(0)
    first_revenue: Decimal = Decimal(0)
    last_revenue: Decimal = Decimal(0)
    linear_revenue: Decimal = Decimal(0)


@dataclass
class Report:
    order_count: int = 0
    attributed_orders: int = 0
    revenue: Decimal = Decimal(0)
    attributed_revenue: Decimal = Decimal(0)
    credits: dict[tuple[str, str], Credit] = field(default_factory=dict)

    def rows(self) -> list[Credit]:
        """By linear revenue, then linear orders, most first; ties by campaign and channel."""
        return sorted(
            self.credits.values(),
            key=lambda c: (-c.linear_revenue, -c.linear_orders, c.campaign_id, c.channel),
        )


def attribute(orders: Iterable[Order], touches: Iterable[Touch], window: dt.timedelta) -> Report:
    """Attributes orders to the touches before them. Both may come in any order and may mix
    customers. A touch counts for an order when window >= order time - touch time > 0."""
    by_customer: dict[str, list[Touch]] = {}
    for touch in touches:
        by_customer.setdefault(touch.customer_id, []).append(touch)
    for mine in by_customer.values():
        mine.sort(key=lambda t: (t.at, t.campaign_id, t.channel, t.kind))
    report = Report()
    for order in orders:
        report.order_count += 1
        report.revenue += order.amount
        candidates = [
            t
            for t in by_customer.get(order.customer_id, ())
            if dt.timedelta(0) < order.at - t.at <= window
        ]
        if not candidates:
            continue
        report.attributed_orders += 1
        report.attributed_revenue += order.amount
        share = Decimal(1) / Decimal(len(candidates))
        seen: set[tuple[str, str]] = set()
        for touch in candidates:
            credit = _credit(report, touch)
            credit.touches += 1
            credit.linear_orders += share
            credit.linear_revenue += order.amount * share
            if (touch.campaign_id, touch.channel) not in seen:
                seen.add((touch.campaign_id, touch.channel))
                credit.touched_orders += 1
        first, last = _credit(report, candidates[0]), _credit(report, candidates[-1])
        first.first_orders += 1
        first.first_revenue += order.amount
        last.last_orders += 1
        last.last_revenue += order.amount
    return report


def _credit(report: Report, touch: Touch) -> Credit:
    key = (touch.campaign_id, touch.channel)
    credit = report.credits.get(key)
    if credit is None:
        credit = report.credits[key] = Credit(touch.campaign_id, touch.channel)
    return credit
