"""One-line descriptions of events for people reading a timeline.

Summaries are English (like the event type names), so money is written the way an English
text about roubles reads: thousands grouped by a space ("4 200 RUB", the SI style that reads
the same in Russian), kopecks only when there are some ("1 249.90 RUB"), and counts agree
with their noun ("1 item", "3 items").
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from svod_profile.domain.events import EventFact

_KOPECKS = Decimal("0.01")
# Between groups of thousands: a plain space (the summary is plain text, copied into
# spreadsheets and messages as it is).
THOUSANDS = " "


def format_money(amount: Decimal, currency: str) -> str:
    """``Decimal("4200.000000000")`` -> "4 200 RUB"; ``Decimal("1249.9")`` -> "1 249.90 RUB"."""
    rounded = amount.quantize(_KOPECKS, rounding=ROUND_HALF_UP)
    sign = "-" if rounded < 0 else ""
    whole, _, fraction = f"{abs(rounded):f}".partition(".")
    groups: list[str] = []
    while len(whole) > 3:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    groups.insert(0, whole)
    text = sign + THOUSANDS.join(groups)
    if fraction.strip("0"):
        text += "." + fraction
    return f"{text} {currency}".strip()


def count_of(n: int, noun: str, plural: str | None = None) -> str:
    """ "1 item", "0 items", "21 items" (English: only exactly one is singular)."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


def summarize(event: EventFact) -> str:
    """A short description: "order 1042: 3 items, 4 200 RUB", "opened email spring-sale"."""
    kind = event.type
    if kind in ("order_placed", "order_returned"):
        what = _join("order" if kind == "order_placed" else "return", event.order_id)
        details = []
        if event.items:
            details.append(count_of(event.items, "item"))
        if event.currency:
            details.append(format_money(event.amount, event.currency))
        return f"{what}: {', '.join(details)}" if details else what
    if kind.startswith("campaign_"):
        return _join(kind.removeprefix("campaign_"), event.contact_channel, event.reference_id)
    if kind.startswith("loyalty_"):
        return f"{kind.removeprefix('loyalty_')} {count_of(event.loyalty_points, 'point')}"
    return kind.replace("_", " ")
