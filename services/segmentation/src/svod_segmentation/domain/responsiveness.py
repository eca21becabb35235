"""Channel responsiveness: how a customer answers campaigns on each contact channel.

Per channel (the campaign events' contact channel): deliveries, opens, clicks, the last
response (an open or a click), deliveries since it ("ignored in a row") and the response
rate (max(opens, clicks) per delivery, capped at 1: a click usually comes with an open, and an
SMS has clicks only). The preferred channel is the one with the highest rate among those
that got a response; ties go to the most recent response. Segment rules test the same values
(rule_sql computes them in SQL); this module defines them for one customer's answer.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from svod_segmentation.domain.fields import RESPONSIVENESS_CHANNELS as CHANNELS

__all__ = ["CHANNELS", "ChannelStats", "preferred_channel"]


@dataclass(frozen=True)
class ChannelStats:
    channel: str
    delivered: int = 0
    opened: int = 0
    clicked: int = 0
    ignored_in_a_row: int = 0
    last_response_at: dt.datetime | None = None

    @property
    def response_rate(self) -> float:
        if not self.delivered:
            return 0.0
        return min(1.0, max(self.opened, self.clicked) / self.delivered)


def preferred_channel(stats: list[ChannelStats]) -> str:
    answered = [s for s in stats if s.last_response_at is not None]
    if not answered:
        return ""
    best = max(answered, key=lambda s: (s.response_rate, s.last_response_at))
    return best.channel
