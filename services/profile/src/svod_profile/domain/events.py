"""Behavioural events as the profile sees them, and the metrics computed from them.

Metrics are a fold over events with only commutative steps (counts, sums, min/max, set union),
so applying events one by one in any order gives exactly what recomputing from all of them
gives — which is what keeps metrics exact through merges and re-deliveries.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from svod_profile.domain.summaries import summarize

ORDER_PLACED = "order_placed"
ORDER_RETURNED = "order_returned"
CART_ABANDONED = "cart_abandoned"
CAMPAIGN_DELIVERED = "campaign_delivered"
CAMPAIGN_OPENED = "campaign_opened"
CAMPAIGN_CLICKED = "campaign_clicked"
CAMPAIGN_UNSUBSCRIBED = "campaign_unsubscribed"
SUPPORT_OPENED = "support_ticket_opened"
SUPPORT_RESOLVED = "support_ticket_resolved"
LOYALTY_ACCRUED = "loyalty_accrued"
LOYALTY_REDEEMED = "loyalty_redeemed"
SESSION_STARTED = "session_started"
PAGE_VIEWED = "page_viewed"
PRODUCT_VIEWED = "product_viewed"

CONTACT_EVENTS = frozenset(
    {CAMPAIGN_DELIVERED, CAMPAIGN_OPENED, CAMPAIGN_CLICKED, SUPPORT_OPENED, SUPPORT_RESOLVED}
)


@dataclass(frozen=True)
class EventFact:
    """One applied event, in the profile's terms."""

    source: str
    message_id: str
    type: str
    occurred_at: dt.datetime
    channel: str
    currency: str = ""
    # Order or return total.
    amount: Decimal = Decimal(0)
    discount: Decimal = Decimal(0)
    items: int = 0
    categories: tuple[str, ...] = ()
    order_id: str = ""
    reference_id: str = ""
    contact_channel: str = ""
    loyalty_points: int = 0
    properties: dict[str, str] = field(default_factory=dict)
    # (type, value, namespace) as the source named the customer; used to re-attribute on splits.
    identifiers: tuple[tuple[str, str, str], ...] = ()

    def summary(self) -> str:
        """A one-line description for people (see ``summaries``)."""
        return summarize(self)


def _min(a: dt.datetime | None, b: dt.datetime) -> dt.datetime:
    return b if a is None or b < a else a


def _max(a: dt.datetime | None, b: dt.datetime) -> dt.datetime:
    return b if a is None or b > a else a


@dataclass(frozen=True)
class Metrics:
    currency: str = ""
    order_count: int = 0
    total_spent: Decimal = Decimal(0)
    items_bought: int = 0
    discount_total: Decimal = Decimal(0)
    discounted_order_count: int = 0
    return_count: int = 0
    total_returned: Decimal = Decimal(0)
    first_order_at: dt.datetime | None = None
    last_order_at: dt.datetime | None = None
    last_contact_at: dt.datetime | None = None
    last_event_at: dt.datetime | None = None
    channels: frozenset[str] = frozenset()
    abandoned_cart_count: int = 0
    campaign_delivered_count: int = 0
    campaign_opened_count: int = 0
    campaign_clicked_count: int = 0
    session_count: int = 0
    view_count: int = 0
    support_ticket_count: int = 0
    last_support_ticket_at: dt.datetime | None = None
    loyalty_points_balance: int = 0

    @property
    def average_order_value(self) -> Decimal:
        if not self.order_count:
            return Decimal(0)
        return (self.total_spent / self.order_count).quantize(Decimal("0.01"))


def _with(metrics: Metrics, changes: dict[str, object]) -> Metrics:
    """``replace(metrics, **changes)`` without re-running the frozen __init__ field by field:
    this runs once per applied event, and replace() was most of apply_event's cost."""
    copy = object.__new__(Metrics)
    state = dict(metrics.__dict__)
    state.update(changes)
    object.__setattr__(copy, "__dict__", state)
    return copy


def apply_event(metrics: Metrics, event: EventFact) -> Metrics:  # noqa: C901
    """The metrics after one more event (commutative: order of application does not matter)."""
    m = metrics
    at = event.occurred_at
    # One replace() per event: the changed fields are gathered first (replace is the cost).
    changes: dict[str, object] = {"last_event_at": _max(m.last_event_at, at)}
    if event.channel not in m.channels:
        changes["channels"] = m.channels | {event.channel}
    if event.currency and not m.currency:
        changes["currency"] = event.currency
    kind = event.type
    if kind == ORDER_PLACED:
        changes.update(
            order_count=m.order_count + 1,
            total_spent=m.total_spent + event.amount,
            items_bought=m.items_bought + event.items,
            discount_total=m.discount_total + event.discount,
            discounted_order_count=m.discounted_order_count + (1 if event.discount > 0 else 0),
            first_order_at=_min(m.first_order_at, at),
            last_order_at=_max(m.last_order_at, at),
        )
    elif kind == ORDER_RETURNED:
        changes.update(
            return_count=m.return_count + 1, total_returned=m.total_returned + event.amount
        )
    elif kind == CART_ABANDONED:
        changes["abandoned_cart_count"] = m.abandoned_cart_count + 1
    elif kind == CAMPAIGN_DELIVERED:
        changes["campaign_delivered_count"] = m.campaign_delivered_count + 1
    elif kind == CAMPAIGN_OPENED:
        changes["campaign_opened_count"] = m.campaign_opened_count + 1
    elif kind == CAMPAIGN_CLICKED:
        changes["campaign_clicked_count"] = m.campaign_clicked_count + 1
    elif kind == SESSION_STARTED:
        changes["session_count"] = m.session_count + 1
    elif kind in (PAGE_VIEWED, PRODUCT_VIEWED):
        changes["view_count"] = m.view_count + 1
    elif kind == SUPPORT_OPENED:
        changes.update(
            support_ticket_count=m.support_ticket_count + 1,
            last_support_ticket_at=_max(m.last_support_ticket_at, at),
        )
    elif kind == LOYALTY_ACCRUED:
        changes["loyalty_points_balance"] = m.loyalty_points_balance + event.loyalty_points
    elif kind == LOYALTY_REDEEMED:
        changes["loyalty_points_balance"] = m.loyalty_points_balance - event.loyalty_points
    if kind in CONTACT_EVENTS:
        changes["last_contact_at"] = _max(m.last_contact_at, at)
    return _with(m, changes)


def _earlier(a: dt.datetime | None, b: dt.datetime | None) -> dt.datetime | None:
    return a if b is None else _min(a, b)


def _later(a: dt.datetime | None, b: dt.datetime | None) -> dt.datetime | None:
    return a if b is None else _max(a, b)


def combine(a: Metrics, b: Metrics) -> Metrics:
    """The metrics of two disjoint sets of events together: ``combine(fold(x), fold(y)) ==
    fold(x + y)`` (every step of ``apply_event`` is a count, a sum, a min/max or a union).
    An event import folds its events per customer in SQL and adds them to the stored metrics
    with this."""
    return Metrics(
        currency=a.currency or b.currency,
        order_count=a.order_count + b.order_count,
        total_spent=a.total_spent + b.total_spent,
        items_bought=a.items_bought + b.items_bought,
        discount_total=a.discount_total + b.discount_total,
        discounted_order_count=a.discounted_order_count + b.discounted_order_count,
        return_count=a.return_count + b.return_count,
        total_returned=a.total_returned + b.total_returned,
        first_order_at=_earlier(a.first_order_at, b.first_order_at),
        last_order_at=_later(a.last_order_at, b.last_order_at),
        last_contact_at=_later(a.last_contact_at, b.last_contact_at),
        last_event_at=_later(a.last_event_at, b.last_event_at),
        channels=a.channels | b.channels,
        abandoned_cart_count=a.abandoned_cart_count + b.abandoned_cart_count,
        campaign_delivered_count=a.campaign_delivered_count + b.campaign_delivered_count,
        campaign_opened_count=a.campaign_opened_count + b.campaign_opened_count,
        campaign_clicked_count=a.campaign_clicked_count + b.campaign_clicked_count,
        session_count=a.session_count + b.session_count,
        view_count=a.view_count + b.view_count,
        support_ticket_count=a.support_ticket_count + b.support_ticket_count,
        last_support_ticket_at=_later(a.last_support_ticket_at, b.last_support_ticket_at),
        loyalty_points_balance=a.loyalty_points_balance + b.loyalty_points_balance,
    )


def fold(events: Iterable[EventFact]) -> Metrics:
    metrics = Metrics()
    for event in events:
        metrics = apply_event(metrics, event)
    return metrics
