"""Campaign reports (attribution) and per-customer channel responsiveness."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from svod_runtime.errors import NotFound, ViolationCollector
from svod_runtime.ids import parse_customer_id
from svod_segmentation.domain import attribution
from svod_segmentation.domain.responsiveness import ChannelStats, preferred_channel
from svod_segmentation.service_layer.ports import ActivationRepository

Clock = Callable[[], dt.datetime]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class CampaignService:
    def __init__(self, store: ActivationRepository, clock: Clock = _utc_now) -> None:
        self.store = store
        self.clock = clock

    async def report(
        self,
        start: dt.datetime | None,
        end: dt.datetime | None,
        window_days: int,
        touch_types: list[str],
        campaign_ids: list[str],
    ) -> tuple[dt.datetime, dt.datetime, int, attribution.Report]:
        errors = ViolationCollector()
        end = end or self.clock()
        start = start or end - dt.timedelta(days=30)
        if start >= end:
            errors.add("start_time", "must be before end_time")
        elif end - start > dt.timedelta(days=attribution.MAX_PERIOD_DAYS):
            errors.add("end_time", f"at most {attribution.MAX_PERIOD_DAYS} days after start_time")
        window_days = window_days or attribution.DEFAULT_WINDOW_DAYS
        if not attribution.MIN_WINDOW_DAYS <= window_days <= attribution.MAX_WINDOW_DAYS:
            errors.add(
                "window_days",
                f"{attribution.MIN_WINDOW_DAYS} to {attribution.MAX_WINDOW_DAYS} days",
            )
        for index, kind in enumerate(touch_types):
            if kind not in attribution.TOUCH_TYPES:
                errors.add(f"touch_types[{index}]", f"one of {', '.join(attribution.TOUCH_TYPES)}")
        if len(campaign_ids) > attribution.MAX_CAMPAIGN_FILTER:
            errors.add("campaign_ids", f"at most {attribution.MAX_CAMPAIGN_FILTER}")
        errors.raise_if_any()
        window = dt.timedelta(days=window_days)
        async with self.store.transaction() as tx:
            orders, touches = await tx.orders_and_touches(
                start,
                end,
                window,
                list(dict.fromkeys(touch_types)) or list(attribution.TOUCH_TYPES),
                campaign_ids,
            )
        return start, end, window_days, attribution.attribute(orders, touches, window)

    async def responsiveness(self, customer_id: str) -> tuple[str, list[ChannelStats], str]:
        customer_id = parse_customer_id(customer_id)
        async with self.store.transaction() as tx:
            current = await tx.current_id(customer_id)
            if current is None:
                raise NotFound(f"customer {customer_id} not found")
            stats = await tx.responsiveness(current)
        return current, stats, preferred_channel(stats)
