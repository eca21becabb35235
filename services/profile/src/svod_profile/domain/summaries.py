"""One-line descriptions of events for people reading a timeline.

Summaries are English (like the event type names), so money is written the way an English
text about roubles reads: thousands grouped by a space ("4 200 RUB", the SI style that reads
the same in Russian), kopecks only when there are some ("1 249.90 RUB"), and counts agree
with their noun ("1 item", "3 items").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Protocol


class ShownEvent(Protocol):
    """What a timeline entry shows of an event: an EventFact has it, and so has a row of the
    event store read for a change announcement (no EventFact built for each of an import's
    events; see adapters/event_storage.announced_events)."""

    @property
    def source(self) -> str: ...
    @property
    def message_id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def occurred_at(self) -> dt.datetime: ...
    @property
    def channel(self) -> str: ...
    @property
    def currency(self) -> str: ...
    @property
    def amount(self) -> Decimal: ...
    @property
    def discount(self) -> Decimal: ...
    @property
    def items(self) -> int: ...
    @property
    def categories(self) -> Sequence[str]: ...
    @property
    def order_id(self) -> str: ...
    @property
    def reference_id(self) -> str: ...
    @property
    def contact_channel(self) -> str: ...
    @property
    def loyalty_points(self) -> int: ...
    @property
    def properties(self) -> Mapping[str, str]: ...


_KOPECKS = Decimal("0.01")
# Between groups of thousands: a plain space (the summary is plain text, copied into
# spreadsheets and messages as it is).
THOUSANDS = " "


def format_money(amount: Decimal, currency: str) -> str:
    """``Decimal("4200.000000000")`` -> "4 200 RUB"; ``Decimal("1249.9")`` -> "1 249.90 RUB".

    In whole kopecks (an int) and Python's own grouping: every order an import announces
    is summarised, and grouping the digits of the Decimal's text by hand was a sixth of
    building its timeline entry (py-spy, 200,000 order events)."""
    kopecks = int(amount.quantize(_KOPECKS, rounding=ROUND_HALF_UP).scaleb(2))
    whole, cents = divmod(abs(kopecks), 100)
    text = ("-" if kopecks < 0 else "") + f"{whole:,}".replace(",", THOUSANDS)
    if cents:
        text += f".{cents:02d}"
    return f"{text} {currency}".strip()


def count_of(n: int, noun: str, plural: str | None = None) -> str:
    """ "1 item", "0 items", "21 items" (English: only exactly one is singular)."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


def summarize(event: ShownEvent) -> str:
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
