"""Metrics are a commutative fold over events: any order, the same exact figures."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

from svod_profile.domain import events as ev
from svod_profile.domain.events import EventFact, Metrics, apply_event, fold

T0 = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)


def event(n: int, kind: str, channel: str = "web", **fields: object) -> EventFact:
    return EventFact(
        source="test",
        message_id=f"m{n}",
        type=kind,
        occurred_at=T0 + dt.timedelta(days=n),
        channel=channel,
        **fields,  # type: ignore[arg-type]
    )


HISTORY = [
    event(0, ev.ORDER_PLACED, "pos", currency="RUB", amount=Decimal("100.50"), items=2),
    event(1, ev.ORDER_PLACED, currency="RUB", amount=Decimal("50"), discount=Decimal("5"), items=1),
    event(2, ev.ORDER_RETURNED, currency="RUB", amount=Decimal("50")),
    event(3, ev.CART_ABANDONED),
    event(4, ev.CAMPAIGN_DELIVERED, "email"),
    event(5, ev.CAMPAIGN_OPENED, "email"),
    event(6, ev.CAMPAIGN_CLICKED, "email"),
    event(7, ev.SESSION_STARTED, "app"),
    event(8, ev.PRODUCT_VIEWED, "app"),
    event(9, ev.PAGE_VIEWED),
    event(10, ev.SUPPORT_OPENED, "call_center"),
    event(11, ev.LOYALTY_ACCRUED, "pos", loyalty_points=120),
    event(12, ev.LOYALTY_REDEEMED, "pos", loyalty_points=20),
]


def test_fold_counts_every_kind_of_event() -> None:
    m = fold(HISTORY)
    assert (m.order_count, m.items_bought, m.total_spent) == (2, 3, Decimal("150.50"))
    assert (m.discount_total, m.discounted_order_count) == (Decimal("5"), 1)
    assert (m.return_count, m.total_returned) == (1, Decimal("50"))
    assert (m.first_order_at, m.last_order_at) == (T0, T0 + dt.timedelta(days=1))
    assert m.abandoned_cart_count == 1
    assert (m.campaign_delivered_count, m.campaign_opened_count, m.campaign_clicked_count) == (
        1,
        1,
        1,
    )
    assert (m.session_count, m.view_count, m.support_ticket_count) == (1, 2, 1)
    assert m.last_contact_at == m.last_support_ticket_at == T0 + dt.timedelta(days=10)
    assert m.last_event_at == T0 + dt.timedelta(days=12)
    assert m.loyalty_points_balance == 100
    assert m.channels == frozenset({"pos", "web", "email", "app", "call_center"})
    assert m.currency == "RUB"
    assert m.average_order_value == Decimal("75.25")


def test_any_order_of_application_gives_the_same_metrics() -> None:
    expected = fold(HISTORY)
    rng = random.Random(7)
    for _ in range(20):
        shuffled = HISTORY[:]
        rng.shuffle(shuffled)
        assert fold(shuffled) == expected


def test_applying_an_event_leaves_the_old_metrics_untouched() -> None:
    before = Metrics()
    after = apply_event(before, HISTORY[0])
    assert before == Metrics() and after.order_count == 1


def test_combining_the_folds_of_two_parts_gives_the_fold_of_the_whole() -> None:
    """What an event import relies on: per-customer sums of new events added to stored
    metrics give exactly the metrics of applying the events one by one."""
    rng = random.Random(22)
    for _ in range(50):
        events = HISTORY[:]
        rng.shuffle(events)
        cut = rng.randrange(len(events) + 1)
        assert ev.combine(fold(events[:cut]), fold(events[cut:])) == fold(events)
    assert ev.combine(Metrics(), Metrics()) == Metrics()
