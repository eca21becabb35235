"""Protobuf <-> domain conversions of activation, attribution and responsiveness."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from svod.segmentation.v1 import segmentation_pb2 as pb
from svod_runtime.errors import FieldViolation, InvalidArgument
from svod_runtime.money import decimal_to_money
from svod_runtime.protoconv import datetime_to_timestamp
from svod_segmentation.domain import attribution
from svod_segmentation.domain.activation import (
    DEFAULT_MAX_ATTEMPTS,
    AdPlatform,
    Binding,
    BindingMode,
    Delivery,
    DeliveryKind,
    DeliveryState,
    Destination,
    DestinationKind,
    FileFormat,
    Sync,
    SyncState,
)
from svod_segmentation.domain.responsiveness import ChannelStats

_KIND = {
    pb.Destination.KIND_FILE: DestinationKind.FILE,
    pb.Destination.KIND_WEBHOOK: DestinationKind.WEBHOOK,
    pb.Destination.KIND_AD_AUDIENCE: DestinationKind.AD_AUDIENCE,
}
_FORMAT = {
    pb.FileSettings.FORMAT_CSV: FileFormat.CSV,
    pb.FileSettings.FORMAT_JSONL: FileFormat.JSONL,
}
_PLATFORM = {
    pb.AdAudienceSettings.PLATFORM_VK_ADS: AdPlatform.VK_ADS,
    pb.AdAudienceSettings.PLATFORM_YANDEX_AUDIENCES: AdPlatform.YANDEX_AUDIENCES,
    pb.AdAudienceSettings.PLATFORM_META: AdPlatform.META,
}
_MODE = {pb.Binding.MODE_FULL: BindingMode.FULL, pb.Binding.MODE_LIVE: BindingMode.LIVE}
_SYNC_STATE = {
    SyncState.RUNNING: pb.Sync.STATE_RUNNING,
    SyncState.DONE: pb.Sync.STATE_DONE,
    SyncState.FAILED: pb.Sync.STATE_FAILED,
}
_DELIVERY_STATE = {
    DeliveryState.PENDING: pb.Delivery.STATE_PENDING,
    DeliveryState.DELIVERED: pb.Delivery.STATE_DELIVERED,
    DeliveryState.DEAD_LETTER: pb.Delivery.STATE_DEAD_LETTER,
}
_DELIVERY_KIND = {
    DeliveryKind.CHANGES: pb.Delivery.KIND_CHANGES,
    DeliveryKind.FULL_SYNC_PAGE: pb.Delivery.KIND_FULL_SYNC_PAGE,
}


def _reverse(mapping: dict) -> dict:
    return {v: k for k, v in mapping.items()}


def destination_from_proto(d: pb.Destination) -> Destination:

    kind = _KIND.get(d.kind)
    if kind is None:
        raise InvalidArgument(
            [FieldViolation("destination.kind", "required: file, webhook or ad_audience")]
        )
    return Destination(
        destination_id=d.destination_id,
        kind=kind,
        consent_channel=d.consent_channel,
        display_name=d.display_name,
        file_format=_FORMAT.get(d.file.format) if kind is DestinationKind.FILE else None,
        url=d.webhook.url if kind is DestinationKind.WEBHOOK else "",
        secret=d.webhook.secret if kind is DestinationKind.WEBHOOK else "",
        max_attempts=d.webhook.max_attempts or DEFAULT_MAX_ATTEMPTS,
        platform=_PLATFORM.get(d.ad_audience.platform)
        if kind is DestinationKind.AD_AUDIENCE
        else None,
    )


def destination_to_proto(d: Destination, shown_secret: str = "") -> pb.Destination:
    out = pb.Destination(
        destination_id=d.destination_id,
        display_name=d.display_name,
        kind=_reverse(_KIND)[d.kind],
        consent_channel=d.consent_channel,
        create_time=datetime_to_timestamp(d.created_at),
    )
    if d.kind is DestinationKind.FILE and d.file_format is not None:
        out.file.format = _reverse(_FORMAT)[d.file_format]
    elif d.kind is DestinationKind.WEBHOOK:
        out.webhook.CopyFrom(
            pb.WebhookSettings(
                url=d.url,
                secret=shown_secret,
                secret_set=bool(d.secret),
                max_attempts=d.max_attempts,
            )
        )
    elif d.platform is not None:
        out.ad_audience.platform = _reverse(_PLATFORM)[d.platform]
    return out


def binding_from_proto(b: pb.Binding) -> Binding:

    mode = _MODE.get(b.mode)
    if mode is None:
        raise InvalidArgument([FieldViolation("binding.mode", "required: full or live")])
    return Binding(
        binding_id="",
        segment_id=b.segment_id,
        destination_id=b.destination_id,
        mode=mode,
        schedule_seconds=b.schedule_seconds,
    )


def binding_to_proto(b: Binding) -> pb.Binding:
    out = pb.Binding(
        binding_id=b.binding_id,
        segment_id=b.segment_id,
        destination_id=b.destination_id,
        mode=_reverse(_MODE)[b.mode],
        schedule_seconds=b.schedule_seconds,
        create_time=datetime_to_timestamp(b.created_at),
        synced_count=b.synced_count,
    )
    if b.next_sync_at is not None:
        out.next_sync_time.CopyFrom(datetime_to_timestamp(b.next_sync_at))
    return out


def sync_to_proto(s: Sync) -> pb.Sync:
    out = pb.Sync(
        sync_id=s.sync_id,
        binding_id=s.binding_id,
        segment_id=s.segment_id,
        destination_id=s.destination_id,
        state=_SYNC_STATE[s.state],
        start_time=datetime_to_timestamp(s.started_at),
        member_count=s.member_count,
        delivered_count=s.delivered_count,
        skipped_no_consent_count=s.skipped_no_consent,
        skipped_no_contact_count=s.skipped_no_contact,
        file_paths=list(s.file_paths),
        error=s.error,
    )
    if s.ended_at is not None:
        out.end_time.CopyFrom(datetime_to_timestamp(s.ended_at))
    return out


def delivery_state_from_proto(state: int) -> DeliveryState | None:
    return _reverse(_DELIVERY_STATE).get(state)


def delivery_to_proto(d: Delivery) -> pb.Delivery:
    out = pb.Delivery(
        delivery_id=d.delivery_id,
        binding_id=d.binding_id,
        destination_id=d.destination_id,
        sequence=d.sequence,
        kind=_DELIVERY_KIND[d.kind],
        state=_DELIVERY_STATE[d.state],
        attempts=d.attempts,
        last_http_status=d.last_http_status,
        last_error=d.last_error,
        item_count=len(d.items),
        sync_id=d.sync_id,
        create_time=datetime_to_timestamp(d.created_at),
    )
    if d.delivered_at is not None:
        out.deliver_time.CopyFrom(datetime_to_timestamp(d.delivered_at))
    return out


def _money(amount: Decimal, currency: str) -> object:
    return decimal_to_money(amount.quantize(Decimal("0.01")), currency)


def report_to_proto(
    start: dt.datetime,
    end: dt.datetime,
    window_days: int,
    report: attribution.Report,
    currency: str,
) -> pb.CampaignReport:
    return pb.CampaignReport(
        start_time=datetime_to_timestamp(start),
        end_time=datetime_to_timestamp(end),
        window_days=window_days,
        order_count=report.order_count,
        attributed_order_count=report.attributed_orders,
        revenue=_money(report.revenue, currency),
        attributed_revenue=_money(report.attributed_revenue, currency),
        rows=[
            pb.CampaignAttribution(
                campaign_id=c.campaign_id,
                channel=c.channel,
                touch_count=c.touches,
                touched_order_count=c.touched_orders,
                first_touch_orders=float(c.first_orders),
                last_touch_orders=float(c.last_orders),
                linear_orders=float(c.linear_orders),
                first_touch_revenue=_money(c.first_revenue, currency),
                last_touch_revenue=_money(c.last_revenue, currency),
                linear_revenue=_money(c.linear_revenue, currency),
            )
            for c in report.rows()
        ],
    )


def responsiveness_to_proto(
    customer_id: str, stats: list[ChannelStats], preferred: str, now: dt.datetime
) -> pb.Responsiveness:
    channels = []
    for s in stats:
        item = pb.ChannelResponsiveness(
            channel=s.channel,
            delivered_count=s.delivered,
            opened_count=s.opened,
            clicked_count=s.clicked,
            ignored_in_a_row=s.ignored_in_a_row,
            response_rate=s.response_rate,
        )
        if s.last_response_at is not None:
            item.last_response_time.CopyFrom(datetime_to_timestamp(s.last_response_at))
            item.seconds_since_last_response = max(
                0, int((now - s.last_response_at).total_seconds())
            )
        channels.append(item)
    return pb.Responsiveness(
        customer_id=customer_id, channels=channels, preferred_channel=preferred
    )
