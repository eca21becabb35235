"""Generated behavioural events for profile's event-import tests and benchmark (issue 22).

Deterministic by seed. ``mixed`` gives every event type the metrics fold (orders with lines,
discounts and categories, returns, campaigns, sessions, views, tickets, loyalty, carts,
unsubscribes, contact failures); ``orders`` gives what a retailer's order history is.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator

from google.protobuf.timestamp_pb2 import Timestamp
from google.type import money_pb2

from svod.common.v1 import common_pb2
from svod.profile.v1 import profile_pb2

E = common_pb2
START = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
CHANNELS = (E.SOURCE_CHANNEL_WEB, E.SOURCE_CHANNEL_POS, E.SOURCE_CHANNEL_APP)
CATEGORIES = ("shoes", "bags", "outerwear", "kids", "sport")
MIXED_TYPES = (
    (E.EVENT_TYPE_ORDER_PLACED, 30),
    (E.EVENT_TYPE_ORDER_RETURNED, 6),
    (E.EVENT_TYPE_CAMPAIGN_DELIVERED, 8),
    (E.EVENT_TYPE_CAMPAIGN_OPENED, 6),
    (E.EVENT_TYPE_CAMPAIGN_CLICKED, 4),
    (E.EVENT_TYPE_SESSION_STARTED, 8),
    (E.EVENT_TYPE_PAGE_VIEWED, 8),
    (E.EVENT_TYPE_PRODUCT_VIEWED, 6),
    (E.EVENT_TYPE_SUPPORT_TICKET_OPENED, 3),
    (E.EVENT_TYPE_SUPPORT_TICKET_RESOLVED, 2),
    (E.EVENT_TYPE_LOYALTY_ACCRUED, 5),
    (E.EVENT_TYPE_LOYALTY_REDEEMED, 3),
    (E.EVENT_TYPE_CART_ABANDONED, 4),
    (E.EVENT_TYPE_CAMPAIGN_UNSUBSCRIBED, 1),
    (E.EVENT_TYPE_CONTACT_FAILED, 1),
)


def _money(kopecks: int) -> money_pb2.Money:
    return money_pb2.Money(
        currency_code="RUB", units=kopecks // 100, nanos=(kopecks % 100) * 10_000_000
    )


def _time(rng: random.Random) -> Timestamp:
    stamp = Timestamp()
    moment = START + dt.timedelta(seconds=rng.randrange(3 * 365 * 86400), microseconds=0)
    stamp.FromDatetime(moment)
    return stamp


def event(
    rng: random.Random, customer_id: str, source: str, message_id: str, kind: int
) -> profile_pb2.ApplyEventRequest:
    """One event of ``kind`` for the customer, its details drawn from ``rng``."""
    item = profile_pb2.ApplyEventRequest(
        customer_id=customer_id,
        record_ref=E.RecordRef(source=source, message_id=message_id),
        channel=rng.choice(CHANNELS),
    )
    e = item.event
    e.type = kind  # type: ignore[assignment]
    e.occurred_time.CopyFrom(_time(rng))
    if kind == E.EVENT_TYPE_ORDER_PLACED:
        e.order_id = f"o-{message_id}"
        total = 0
        for _ in range(rng.randint(1, 3)):
            price = rng.randrange(10_000, 2_000_000)
            quantity = rng.randint(1, 3)
            line = e.lines.add(
                sku=f"sku-{rng.randrange(500)}",
                category=rng.choice(CATEGORIES),
                quantity=quantity,
                unit_price=_money(price),
            )
            if rng.random() < 0.3:
                line.discount.CopyFrom(_money(price // 10))
                total -= price // 10 * quantity
            total += price * quantity
        e.total.CopyFrom(_money(total))
    elif kind == E.EVENT_TYPE_ORDER_RETURNED:
        e.order_id = f"r-{message_id}"
        e.total.CopyFrom(_money(rng.randrange(10_000, 500_000)))
    elif kind in (
        E.EVENT_TYPE_CAMPAIGN_DELIVERED,
        E.EVENT_TYPE_CAMPAIGN_OPENED,
        E.EVENT_TYPE_CAMPAIGN_CLICKED,
        E.EVENT_TYPE_CAMPAIGN_UNSUBSCRIBED,
        E.EVENT_TYPE_CONTACT_FAILED,
    ):
        e.contact_channel = rng.choice(("email", "sms"))
        e.reference_id = f"camp-{rng.randrange(20)}"
        if kind == E.EVENT_TYPE_CONTACT_FAILED:
            e.identifiers.add(type=E.IDENTIFIER_TYPE_EMAIL, value=f"{message_id}@example.com")
            e.identifiers.add(type=E.IDENTIFIER_TYPE_PHONE, value="+79161234567")
    elif kind in (E.EVENT_TYPE_LOYALTY_ACCRUED, E.EVENT_TYPE_LOYALTY_REDEEMED):
        e.loyalty_points = rng.randrange(1, 500)
    elif kind in (E.EVENT_TYPE_PAGE_VIEWED, E.EVENT_TYPE_PRODUCT_VIEWED):
        e.properties["page"] = f"/p/{rng.randrange(100)}"
    return item


def events(
    customers: list[str], count: int, seed: int, *, mixed: bool = True, source: str = "shop"
) -> Iterator[profile_pb2.ApplyEventRequest]:
    """``count`` events spread over the customers at random (so each customer's events come
    in no particular order), message ids ``e<seed>-<n>``."""
    rng = random.Random(seed)
    kinds = [k for k, _ in MIXED_TYPES]
    weights = [w for _, w in MIXED_TYPES]
    for n in range(count):
        kind = rng.choices(kinds, weights)[0] if mixed else E.EVENT_TYPE_ORDER_PLACED
        yield event(rng, rng.choice(customers), source, f"e{seed}-{n}", kind)
