"""Timeline summaries read as people write: grouped roubles, kopecks only when due, plurals."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import pytest

from svod_profile.domain import events as ev
from svod_profile.domain.events import EventFact
from svod_profile.domain.summaries import count_of, format_money

T0 = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        ("4200.000000000", "4 200 RUB"),
        ("1249.9", "1 249.90 RUB"),
        ("0", "0 RUB"),
        ("999", "999 RUB"),
        ("1000", "1 000 RUB"),
        ("1234567.891", "1 234 567.89 RUB"),
        ("0.005", "0.01 RUB"),  # half a kopeck rounds up, as a till does
        ("12.30", "12.30 RUB"),
    ],
)
def test_money_is_grouped_with_kopecks_only_when_there_are_some(amount: str, text: str) -> None:
    assert format_money(Decimal(amount), "RUB") == text


def test_counts_agree_with_their_noun() -> None:
    assert [count_of(n, "item") for n in (0, 1, 2, 21)] == [
        "0 items",
        "1 item",
        "2 items",
        "21 items",
    ]


def _event(kind: str, **fields: object) -> EventFact:
    return EventFact("pos", "m1", kind, T0, "pos", **fields)  # type: ignore[arg-type]


def test_event_summaries() -> None:
    order = _event(
        ev.ORDER_PLACED, currency="RUB", amount=Decimal("4200.000000000"), items=1, order_id="1042"
    )
    assert order.summary() == "order 1042: 1 item, 4 200 RUB"
    ret = _event(ev.ORDER_RETURNED, currency="RUB", amount=Decimal("1249.5"), items=3)
    assert ret.summary() == "return: 3 items, 1 249.50 RUB"
    no_lines = _event(ev.ORDER_PLACED, currency="RUB", amount=Decimal("700"), order_id="7")
    assert no_lines.summary() == "order 7: 700 RUB"
    assert _event(ev.LOYALTY_ACCRUED, loyalty_points=1).summary() == "accrued 1 point"
    assert _event(ev.LOYALTY_REDEEMED, loyalty_points=20).summary() == "redeemed 20 points"
    opened = _event(ev.CAMPAIGN_OPENED, contact_channel="email", reference_id="spring")
    assert opened.summary() == "opened email spring"
    assert _event(ev.CAMPAIGN_OPENED).summary() == "opened"
    assert _event(ev.SESSION_STARTED).summary() == "session started"


def _format_money_by_digits(amount: Decimal, currency: str) -> str:
    """format_money as it was first written (grouping the Decimal's digits by hand)."""
    rounded = amount.quantize(Decimal("0.01"), rounding="ROUND_HALF_UP")
    sign = "-" if rounded < 0 else ""
    whole, _, fraction = f"{abs(rounded):f}".partition(".")
    groups: list[str] = []
    while len(whole) > 3:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    groups.insert(0, whole)
    text = sign + " ".join(groups)
    if fraction.strip("0"):
        text += "." + fraction
    return f"{text} {currency}".strip()


def test_money_reads_as_the_digits_grouped_by_hand_did() -> None:
    rng = random.Random(5)
    amounts = [Decimal(rng.randrange(0, 10**20)).scaleb(-9) for _ in range(3000)]
    amounts += [-a for a in amounts[:300]]
    amounts += [Decimal(s) for s in ("0.004", "-0.004", "0.005", "-0.005", "999999.995", "1e3")]
    for amount in amounts:
        for currency in ("RUB", ""):
            assert format_money(amount, currency) == _format_money_by_digits(amount, currency)
