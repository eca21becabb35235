"""Thin gRPC adapter of the profile service."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from google.type import money_pb2
from opentelemetry import trace

from svod.common.v1 import common_pb2
from svod.profile.v1 import profile_pb2, profile_pb2_grpc
from svod_profile.adapters.event_imports import plain_copy_line, staged_event
from svod_profile.adapters.segment_membership import SegmentMembership
from svod_profile.domain.consents import Consent
from svod_profile.domain.events import EventFact, Metrics
from svod_profile.domain.imports import (
    MAX_FOLD_RECORDS,
    MAX_STAGE_EVENTS,
    EventImport,
    StagedEvent,
    check_import_id,
)
from svod_profile.domain.model import (
    AnnouncedProfile,
    IdentifierObservation,
    ProfileView,
    Provenance,
    RecordApplication,
    TraitObservation,
)
from svod_profile.domain.summaries import ShownEvent, summarize
from svod_profile.entrypoints.metrics import ProfileMetrics
from svod_profile.service_layer.customer_import import CustomerImports
from svod_profile.service_layer.event_import import EventImports
from svod_profile.service_layer.personal_data import PersonalDataExport
from svod_profile.service_layer.use_cases import ProfileService
from svod_runtime import bounds
from svod_runtime.auth import acting_as, current_principal
from svod_runtime.dead_letters import DeadLetterRpcs
from svod_runtime.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    SvodError,
    ViolationCollector,
)
from svod_runtime.ids import parse_customer_id
from svod_runtime.interceptors import status_proto_for
from svod_runtime.money import NANO, decimal_to_money, money_to_decimal
from svod_runtime.priority import step_aside
from svod_runtime.protoconv import (
    checked_timestamp,
    datetime_to_timestamp,
    enum_short_name,
    enum_short_names,
    enum_value,
    proto_date_parts,
    timestamp_to_datetime,
)
from svod_runtime.telemetry import current_trace_carrier, item_span, trace_carrier_of

_ID_TYPE = common_pb2.IdentifierType.DESCRIPTOR
_CHANNEL = common_pb2.SourceChannel.DESCRIPTOR
_GENDER = common_pb2.Gender.DESCRIPTOR
NAME_FIELDS = ("first_name", "last_name", "middle_name", "full_name")


def _check_record(request: profile_pb2.ApplyRequest) -> None:
    """The bounds of every service (svod_runtime.bounds) on a record to apply."""
    errors = ViolationCollector()
    bounds.check_record_ref(
        request.record_ref.source, request.record_ref.message_id, "record_ref", errors
    )
    bounds.check_identifier_texts(
        [(i.type, i.value, i.namespace) for i in request.identifiers], "identifiers", errors
    )
    bounds.check_name({n: getattr(request.name, n) for n in NAME_FIELDS}, "name", errors)
    bounds.check_addresses(
        [{p: getattr(a, p) for p in bounds.ADDRESS_PARTS} for a in request.addresses],
        "addresses",
        errors,
    )
    bounds.check_attributes(request.attributes, "attributes", errors)
    errors.raise_if_any()


def _surely_in_bounds(request: profile_pb2.ApplyRequest) -> bool:
    """True when every bound ``_check_record`` checks surely holds, found in one pass that
    builds no field paths (the usual record); False sends the record to ``_check_record``,
    which names what is wrong (or finds nothing). Records with addresses or attributes always
    go there. ``_check_record`` of every record was 9% of profile's CPU in a customer
    import's fold in process (cProfile, probe), most of it the paths of fields that were
    fine."""
    ref = request.record_ref
    message_id = ref.message_id
    if (
        not message_id
        or len(message_id) > bounds.MAX_MESSAGE_ID
        or "\x00" in message_id
        or not bounds.SOURCE_PATTERN.fullmatch(ref.source)
        or request.addresses
        or request.attributes
    ):
        return False
    identifiers = request.identifiers
    if len(identifiers) > bounds.MAX_IDENTIFIERS:
        return False
    for i in identifiers:
        value, namespace = i.value, i.namespace
        if (
            len(value) > bounds.MAX_IDENTIFIER_VALUE
            or len(namespace) > bounds.MAX_NAMESPACE
            or "\x00" in value
            or "\x00" in namespace
        ):
            return False
    name = request.name
    for part in NAME_FIELDS:
        value = getattr(name, part)
        if len(value) > bounds.MAX_NAME or "\x00" in value:
            return False
    return True


_CHANNEL_NAMES = enum_short_names(_CHANNEL, "SOURCE_CHANNEL_")
_ID_TYPE_NAMES = enum_short_names(_ID_TYPE, "IDENTIFIER_TYPE_")


def application(request: profile_pb2.ApplyRequest, now: dt.datetime) -> RecordApplication:
    if not _surely_in_bounds(request):
        _check_record(request)
    provenance = Provenance(
        source=request.record_ref.source,
        channel=_CHANNEL_NAMES.get(request.channel, "") or "unspecified",
        observed_at=timestamp_to_datetime(request.observed_time, "observed_time") or now,
    )
    traits: list[TraitObservation] = []
    for name in NAME_FIELDS:
        value = " ".join(getattr(request.name, name).split())
        if value:
            traits.append(TraitObservation(name, value, provenance))
    parts = proto_date_parts(request.birth_date)
    if parts is not None:
        try:
            traits.append(TraitObservation("birth_date", dt.date(*parts).isoformat(), provenance))
        except ValueError:
            raise InvalidArgument([FieldViolation("birth_date", "not a calendar date")]) from None
    gender = enum_short_name(_GENDER, request.gender, "GENDER_")
    if gender and gender != "unspecified":
        traits.append(TraitObservation("gender", gender, provenance))
    if request.addresses:
        addresses = [
            {
                "country_code": a.country_code,
                "postal_code": a.postal_code,
                "region": a.region,
                "city": a.city,
                "address_line": a.address_line,
            }
            for a in request.addresses
        ]
        traits.append(
            TraitObservation("addresses", json.dumps(addresses, ensure_ascii=False), provenance)
        )
    for key, value in sorted(request.attributes.items()):
        traits.append(TraitObservation(f"attributes.{key}", value, provenance))
    identifiers = tuple(
        IdentifierObservation(_ID_TYPE_NAMES.get(i.type, ""), i.value, i.namespace, provenance)
        for i in request.identifiers
    )
    return RecordApplication(
        customer_id=request.customer_id,
        source=request.record_ref.source,
        message_id=request.record_ref.message_id,
        provenance=provenance,
        traits=tuple(traits),
        identifiers=identifiers,
    )


MAX_EVENT_BATCH = 1000
MAX_RECORD_BATCH = 1000
ApplyResult = profile_pb2.ApplyBatchResponse.Result
MAX_LEGAL_BASIS = 100
BatchResult = profile_pb2.ApplyEventBatchResponse.Result
_EVENT_TYPE = common_pb2.EventType.DESCRIPTOR
_CONSENT_CHANNEL = profile_pb2.ConsentChannel.DESCRIPTOR
_CONSENT_STATUS = profile_pb2.ConsentStatus.DESCRIPTOR


def _amounts(
    total: money_pb2.Money, lines: list[common_pb2.LineItem]
) -> Iterator[tuple[str, money_pb2.Money]]:
    yield "event.total", total
    for i, line in enumerate(lines):
        yield f"event.lines[{i}].unit_price", line.unit_price
        yield f"event.lines[{i}].discount", line.discount


def _check_lines(lines: list[common_pb2.LineItem], errors: ViolationCollector) -> None:
    if not bounds.check_count(len(lines), "event.lines", bounds.MAX_LINES, errors):
        return
    for index, line in enumerate(lines):
        path = f"event.lines[{index}]"
        if abs(line.quantity) > bounds.MAX_QUANTITY:
            errors.add(f"{path}.quantity", f"at most {bounds.MAX_QUANTITY:,}")
        bounds.check_line_texts(line.sku, line.product_name, line.category, path, errors)


def event_fact(request: profile_pb2.ApplyEventRequest, currency: str) -> EventFact:
    """The profile's view of an event; money must be non-negative and in one currency, and
    everything within the bounds ingestion applies (svod_runtime.bounds)."""
    fact = _valid_event_fact(request, currency)
    return fact if fact is not None else _checked_event_fact(request, currency)


_EVENT_TYPES = enum_short_names(_EVENT_TYPE, "EVENT_TYPE_")
_CHANNELS = enum_short_names(_CHANNEL, "SOURCE_CHANNEL_")
_ID_TYPES = enum_short_names(_ID_TYPE, "IDENTIFIER_TYPE_")
_MAX_UNITS = bounds.MAX_AMOUNT_UNITS
_MAX_NANOS = bounds.MAX_NANOS
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_NAIVE_EPOCH = dt.datetime(1970, 1, 1)
# Short channel names -> SourceChannel numbers (enum_number's, without its per-call look-up).
_CHANNEL_NUMBERS = {name: number for number, name in _CHANNELS.items()}


def _fits(value: str, max_length: int) -> bool:
    return len(value) <= max_length and "\x00" not in value


def _money_fits(money: money_pb2.Money, currency: str) -> bool:
    """bounds.amount_violation and the currency check of ``_checked_event_fact``, as a test."""
    units, nanos = money.units, money.nanos
    return (
        units >= 0
        and 0 <= nanos <= _MAX_NANOS
        and (units < _MAX_UNITS or (units == _MAX_UNITS and not nanos))
        and (not money.currency_code or money.currency_code == currency)
    )


def _lines_fit(
    lines: Sequence[common_pb2.LineItem], currency: str
) -> tuple[Decimal, int, tuple[str, ...]] | None:
    """The lines' discount (bounds.order_discount's sum, term by term in the same order),
    items and categories when every line is within its bounds, else None."""
    discount = Decimal(0)
    items = 0
    categories: set[str] = set()
    if len(lines) > bounds.MAX_LINES:
        return None
    for line in lines:
        quantity = line.quantity
        category = line.category
        if not (
            abs(quantity) <= bounds.MAX_QUANTITY
            and _fits(line.sku, bounds.MAX_SKU)
            and _fits(line.product_name, bounds.MAX_PRODUCT_NAME)
            and _fits(category, bounds.MAX_CATEGORY)
            and _money_fits(line.unit_price, currency)
        ):
            return None
        if line.HasField("discount"):
            line_discount = line.discount
            if not _money_fits(line_discount, currency):
                return None
            discount += money_to_decimal(line_discount) * max(quantity, 1)
        items += max(quantity, 0)
        if category:
            categories.add(category)
    if discount > bounds.MAX_AMOUNT:
        return None
    return discount, items, tuple(sorted(categories))


def _identifiers_fit(
    identifiers: Sequence[common_pb2.Identifier],
) -> tuple[tuple[str, str, str], ...] | None:
    if len(identifiers) > bounds.MAX_IDENTIFIERS:
        return None
    named = []
    for i in identifiers:
        value, namespace = i.value, i.namespace
        if not (
            _fits(value, bounds.MAX_IDENTIFIER_VALUE) and _fits(namespace, bounds.MAX_NAMESPACE)
        ):
            return None
        named.append((_ID_TYPES.get(i.type, ""), value, namespace))
    return tuple(named)


def _properties_fit(properties: dict[str, str]) -> bool:
    return len(properties) <= bounds.MAX_PROPERTIES and all(
        key and _fits(key, bounds.MAX_PROPERTY_NAME) and _fits(value, bounds.MAX_PROPERTY_VALUE)
        for key, value in properties.items()
    )


def _texts_fit(event: common_pb2.Event) -> bool:
    return (
        _fits(event.order_id, bounds.MAX_ORDER_ID)
        and _fits(event.reference_id, bounds.MAX_REFERENCE_ID)
        and _fits(event.contact_channel, bounds.MAX_CONTACT_CHANNEL)
        and 0 <= event.loyalty_points <= bounds.MAX_LOYALTY_POINTS
    )


def _head_fits(request: profile_pb2.ApplyEventRequest) -> tuple[str, str, str, int, int] | None:
    """The event's kind, source, message id and time (seconds, nanos) when its type, time,
    reference and texts are within bounds, else None: the checks ``_valid_event_fact`` and
    ``quick_staged_event`` both begin with."""
    event = request.event
    ref = request.record_ref
    kind = _EVENT_TYPES.get(event.type, "")
    stamp = event.occurred_time
    seconds, nanos = stamp.seconds, stamp.nanos
    if (
        not kind
        or kind == "unspecified"
        or (seconds == 0 and nanos == 0)
        or not bounds.timestamp_in_range(seconds, nanos)
    ):
        return None
    source, message_id = ref.source, ref.message_id
    if not (
        source
        and bounds.SOURCE_PATTERN.fullmatch(source)
        and message_id
        and _fits(message_id, bounds.MAX_MESSAGE_ID)
        and _texts_fit(event)
    ):
        return None
    return kind, source, message_id, seconds, nanos


def _valid_event_fact(request: profile_pb2.ApplyEventRequest, currency: str) -> EventFact | None:
    """The event's EventFact when it is surely within every bound ``_checked_event_fact``
    checks (and then equal to what that returns), else None: that one then says precisely
    what is wrong. Every field is read once and tested, with no violation texts, paths or
    collector built for an event that has nothing to report: the checked way cost 30-35 us
    of CPU per order event, this one 14-19 (probe over bench_event_import's events, load 10;
    it runs for every event StageEventImport and ApplyEventBatch take)."""
    head = _head_fits(request)
    if head is None:
        return None
    kind, source, message_id, seconds, nanos = head
    event = request.event
    has_total = event.HasField("total")
    total = event.total
    if has_total and not _money_fits(total, currency):
        return None
    lines = event.lines
    summed = _lines_fit(lines, currency) if lines else (Decimal(0), 0, ())
    identifiers = _identifiers_fit(event.identifiers) if event.identifiers else ()
    properties = dict(event.properties) if event.properties else {}
    if summed is None or identifiers is None or not _properties_fit(properties):
        return None
    discount, items, categories = summed
    return EventFact(
        source=source,
        message_id=message_id,
        type=kind,
        occurred_at=_EPOCH + dt.timedelta(seconds=seconds, microseconds=nanos // 1000),
        channel=_CHANNELS.get(request.channel, "") or "unspecified",
        currency=currency if has_total or lines else "",
        amount=money_to_decimal(total),
        discount=discount,
        items=items,
        categories=categories,
        order_id=event.order_id,
        reference_id=event.reference_id,
        contact_channel=event.contact_channel,
        loyalty_points=event.loyalty_points,
        properties=properties,
        identifiers=identifiers,
    )


def _amount_text(money: money_pb2.Money) -> str:
    """str(money_to_decimal(money)) of an amount within bounds: "units.nnnnnnnnn" from one
    unit up (a Decimal of exponent -9 and at least one whole digit prints so); below that the
    Decimal's own text (0E-9, 5E-9, 0.000123000)."""
    units = money.units
    if units > 0:
        return f"{units}.{money.nanos:09d}"
    return str(money_to_decimal(money))


def staged_event_of(
    customer_id: str, request: profile_pb2.ApplyEventRequest, currency: str
) -> StagedEvent:
    """The event staged for ``customer_id`` (a canonical id): ``quick_staged_event``'s row, or
    the checked way's (``event_fact``, InvalidArgument naming every bad field)."""
    quick = quick_staged_event(customer_id, request, currency)
    return quick if quick is not None else staged_event(customer_id, event_fact(request, currency))


def quick_staged_event(
    customer_id: str, request: profile_pb2.ApplyEventRequest, currency: str
) -> StagedEvent | None:
    """``staged_event(customer_id, event_fact(request, currency))`` made from the request's
    fields directly when ``_valid_event_fact`` would vouch for the event and its row needs no
    escaping, else None (the caller goes the EventFact way, which names what is wrong). The same
    checks, read once, with no EventFact, datetime, Decimal or dict built for it: event_fact
    and _copy_line were 15.4% of profile's py-spy samples of a 200,000-event import
    (bench_events_path --paths batch); 30.7-40.4 us of CPU an order event against 18.2 this
    way (probe, 2,000 of its events, process_time, load 35-56). tests/unit/test_event_fact.py
    holds the two rows equal."""
    # _head_fits and _texts_fit inline, the texts' NUL looked for once in the row (none of
    # them is escaped on its way there, and any other text with one is refused before or
    # escaped into the row with a backslash, which plain_copy_line declines), the
    # identifiers checked and written in one pass, the time written from a cache of day
    # texts: 11.3-11.4 -> 8.5-9.8 us of CPU an order event, the rows the same (probe,
    # 20,000 bench_events_path events, old and new worktrees alternated; session 34).
    event = request.event
    kind = _EVENT_TYPES.get(event.type, "")
    stamp = event.occurred_time
    seconds, nanos = stamp.seconds, stamp.nanos
    if (
        not kind
        or kind == "unspecified"
        or (seconds == 0 and nanos == 0)
        or not bounds.timestamp_in_range(seconds, nanos)
    ):
        return None
    ref = request.record_ref
    source, message_id = ref.source, ref.message_id
    order_id, reference_id = event.order_id, event.reference_id
    contact_channel, points = event.contact_channel, event.loyalty_points
    if not (
        source
        and _SOURCE_FITS(source)
        and message_id
        and len(message_id) <= bounds.MAX_MESSAGE_ID
        and len(order_id) <= bounds.MAX_ORDER_ID
        and len(reference_id) <= bounds.MAX_REFERENCE_ID
        and len(contact_channel) <= bounds.MAX_CONTACT_CHANNEL
        and 0 <= points <= bounds.MAX_LOYALTY_POINTS
    ):
        return None
    has_total = event.HasField("total")
    total = event.total
    if has_total and not _money_fits(total, currency):
        return None
    lines = event.lines
    if lines:
        summed = _lines_fit(lines, currency)
        if summed is None:
            return None
        discount, items, categories = summed
        discount_text, items_text = str(discount), str(items)
        categories_text = "{" + ",".join(f'"{v}"' for v in categories) + "}" if categories else "{}"
    else:
        discount_text, items_text, categories, categories_text = "0", "0", (), "{}"
    identifiers = event.identifiers
    if identifiers:
        identifiers_text = _plain_identifiers_json(identifiers)
        if identifiers_text is None:
            return None
    else:
        identifiers_text = "[]"
    if event.properties:
        properties = dict(event.properties)
        if not _properties_fit(properties):
            return None
        properties_text = json.dumps(properties, ensure_ascii=False)
    else:
        properties_text = "{}"
    line = plain_copy_line(
        (
            customer_id,
            source,
            message_id,
            kind,
            _time_text(seconds, nanos),
            _CHANNELS.get(request.channel, "") or "unspecified",
            currency if has_total or lines else "",
            _amount_text(total),
            discount_text,
            items_text,
            categories_text,
            order_id,
            reference_id,
            contact_channel,
            str(points),
            properties_text,
            identifiers_text,
        ),
        categories,
    )
    if line is None or "\x00" in line:
        return None
    return StagedEvent(source, message_id, line)


_SOURCE_FITS = bounds.SOURCE_PATTERN.fullmatch
# Texts json.dumps(ensure_ascii=False) writes as they are, between quotes.
_JSON_PLAIN = re.compile(r'[^"\\\x00-\x1f]*')
_EPOCH_DATE = dt.date(1970, 1, 1)
# Day texts kept by _time_text (about 3 MB at most; ten years of days is 3,653).
_DAYS_KEPT = 40_000
_DAY_TEXTS: dict[int, str] = {}


def _time_text(seconds: int, nanos: int) -> str:
    """``(_EPOCH + dt.timedelta(seconds=seconds, microseconds=nanos // 1000)).isoformat()``
    for a time within bounds (nanos 0 to 999,999,999), the date's text from a cache: an
    import's events share their days (test_event_fact holds the two equal)."""
    days, rest = divmod(seconds, 86400)
    date = _DAY_TEXTS.get(days)
    if date is None:
        date = (_EPOCH_DATE + dt.timedelta(days=days)).isoformat()
        if len(_DAY_TEXTS) < _DAYS_KEPT:
            _DAY_TEXTS[days] = date
    hours, rest = divmod(rest, 3600)
    minutes, second = divmod(rest, 60)
    micros = nanos // 1000
    if micros:
        return f"{date}T{hours:02d}:{minutes:02d}:{second:02d}.{micros:06d}+00:00"
    return f"{date}T{hours:02d}:{minutes:02d}:{second:02d}+00:00"


def _plain_identifiers_json(identifiers: Sequence[common_pb2.Identifier]) -> str | None:
    """``json.dumps([list(i) for i in _identifiers_fit(identifiers)], ensure_ascii=False)``,
    written directly, when every identifier is within bounds and no text needs escaping in
    JSON (json.dumps was a fifth of quick_staged_event's CPU, probe); None otherwise
    (json.dumps would escape it with a backslash, which the quick row declines anyway)."""
    if len(identifiers) > bounds.MAX_IDENTIFIERS:
        return None
    plain = _JSON_PLAIN.fullmatch
    parts = []
    for i in identifiers:
        value, namespace = i.value, i.namespace
        if (
            len(value) > bounds.MAX_IDENTIFIER_VALUE
            or len(namespace) > bounds.MAX_NAMESPACE
            or plain(value) is None
            or plain(namespace) is None
        ):
            return None
        parts.append(f'["{_ID_TYPES.get(i.type, "")}", "{value}", "{namespace}"]')
    return "[" + ", ".join(parts) + "]"


def _checked_event_fact(request: profile_pb2.ApplyEventRequest, currency: str) -> EventFact:
    """``event_fact`` checking every bound and naming each one broken (InvalidArgument)."""
    # Runs per event of every batch: sub-messages are read once.
    event = request.event
    ref = request.record_ref
    total = event.total
    lines = list(event.lines)
    errors = ViolationCollector()
    kind = enum_short_name(_EVENT_TYPE, event.type, "EVENT_TYPE_")
    if not kind or kind == "unspecified":
        errors.add("event.type", "required")
    occurred = checked_timestamp(event.occurred_time, "event.occurred_time", errors)
    if occurred is None and not errors.violations:
        errors.add("event.occurred_time", "required")
    for path, money in _amounts(total, lines):
        bounds.check_amount(money.units, money.nanos, path, errors)
        if money.currency_code and money.currency_code != currency:
            errors.add(f"{path}.currency_code", f"must be {currency}")
    bounds.check_record_ref(ref.source, ref.message_id, "record_ref", errors)
    _check_lines(lines, errors)
    bounds.check_identifier_texts(
        [(i.type, i.value, i.namespace) for i in event.identifiers], "event.identifiers", errors
    )
    bounds.check_event_texts(
        event.order_id,
        event.reference_id,
        event.contact_channel,
        event.properties,
        event.loyalty_points,
        "event",
        errors,
    )
    errors.raise_if_any()
    discount = bounds.order_discount(
        (money_to_decimal(line.discount), line.quantity)
        for line in lines
        if line.HasField("discount")
    )
    if discount > bounds.MAX_AMOUNT:
        errors.add(
            "event.lines",
            f"the lines' discounts add up to more than {bounds.MAX_AMOUNT_UNITS:,} units",
        )
        errors.raise_if_any()
    items = 0
    categories: set[str] = set()
    for line in lines:
        items += max(line.quantity, 0)
        if line.category:
            categories.add(line.category)
    return EventFact(
        source=ref.source,
        message_id=ref.message_id,
        type=kind,
        occurred_at=occurred,  # type: ignore[arg-type]
        channel=enum_short_name(_CHANNEL, request.channel, "SOURCE_CHANNEL_") or "unspecified",
        currency=currency if event.HasField("total") or lines else "",
        amount=money_to_decimal(total),
        discount=discount,
        items=items,
        categories=tuple(sorted(categories)),
        order_id=event.order_id,
        reference_id=event.reference_id,
        contact_channel=event.contact_channel,
        loyalty_points=event.loyalty_points,
        properties=dict(event.properties) if event.properties else {},
        identifiers=tuple(
            (enum_short_name(_ID_TYPE, i.type, "IDENTIFIER_TYPE_"), i.value, i.namespace)
            for i in event.identifiers
        ),
    )


def _failed_item(span: trace.Span | None, error: SvodError) -> BatchResult:
    """One refused item of a batch: its span, if it has one, ends marked failed."""
    if span is not None:
        span.set_status(trace.StatusCode.ERROR, error.code)
        span.end()
    return BatchResult(error_code=error.code, error_message=error.message)


def _failed_record(span: trace.Span | None, error: SvodError) -> ApplyResult:
    """One refused record of an ApplyBatch: its span, if it has one, ends marked failed."""
    if span is not None:
        span.set_status(trace.StatusCode.ERROR, error.code)
        span.end()
    return ApplyResult(error_code=error.code, error_message=error.message)


def _money_fields(amount: Decimal, currency: str) -> dict[str, Any]:
    """decimal_to_money's fields (units truncated, nanos of the same sign), as a dict a
    message's constructor takes."""
    quantized = amount.quantize(NANO)
    units = int(quantized)
    return {
        "currency_code": currency,
        "units": units,
        "nanos": int(quantized.scaleb(9)) - units * 1_000_000_000,
    }


def timeline_entry(event: ShownEvent, currency: str) -> profile_pb2.TimelineEntry:
    """The entry of an EventFact or an event store row (``ShownEvent``)."""
    return profile_pb2.TimelineEntry(**timeline_fields(event, currency))


def timeline_fields(event: ShownEvent, currency: str) -> dict[str, Any]:
    """A TimelineEntry's fields, only those that are set, the nested messages as dicts: what
    its constructor (or ``entries.add``, building it in place in a request) takes in one call.
    Every event an import announces passes here; building each nested message apart and
    copying it in cost 14.6 us an order event against 12.7 (probe, load 10)."""
    occurred = event.occurred_at
    delta = occurred - (_EPOCH if occurred.tzinfo is not None else _NAIVE_EPOCH)
    fields: dict[str, Any] = {
        "event_type": event.type,
        "occurred_time": {
            "seconds": delta.days * 86_400 + delta.seconds,
            "nanos": delta.microseconds * 1000,
        },
        "source": event.source,
        "channel": _CHANNEL_NUMBERS.get(event.channel, 0),
        "summary": summarize(event),
        "record_ref": {"source": event.source, "message_id": event.message_id},
    }
    if event.categories:
        fields["categories"] = event.categories
    if event.properties or event.contact_channel:
        properties = dict(event.properties)
        if event.contact_channel:
            properties["contact_channel"] = event.contact_channel
        fields["properties"] = properties
    if event.reference_id:
        fields["reference_id"] = event.reference_id
    if event.order_id:
        fields["order_id"] = event.order_id
    if event.currency:
        fields["amount"] = _money_fields(event.amount, event.currency)
        fields["discount"] = _money_fields(event.discount, event.currency)
    return fields


def _time_or_none(value: dt.datetime | None) -> Timestamp | None:
    return None if value is None else datetime_to_timestamp(value)


def metrics_proto(m: Metrics, currency: str) -> profile_pb2.Metrics:
    cur = m.currency or currency
    proto = profile_pb2.Metrics(
        order_count=m.order_count,
        total_spent=decimal_to_money(m.total_spent, cur),
        average_order_value=decimal_to_money(m.average_order_value, cur),
        return_count=m.return_count,
        total_returned=decimal_to_money(m.total_returned, cur),
        channels=sorted(m.channels),
        items_bought=m.items_bought,
        abandoned_cart_count=m.abandoned_cart_count,
        campaign_delivered_count=m.campaign_delivered_count,
        campaign_opened_count=m.campaign_opened_count,
        campaign_clicked_count=m.campaign_clicked_count,
        session_count=m.session_count,
        support_ticket_count=m.support_ticket_count,
        loyalty_points_balance=m.loyalty_points_balance,
    )
    for name, value in (
        ("first_order_time", m.first_order_at),
        ("last_order_time", m.last_order_at),
        ("last_contact_time", m.last_contact_at),
        ("last_support_ticket_time", m.last_support_ticket_at),
    ):
        if value is not None:
            getattr(proto, name).CopyFrom(datetime_to_timestamp(value))
    return proto


def consent_proto(c: Consent) -> profile_pb2.Consent:
    return profile_pb2.Consent(
        channel=enum_value(profile_pb2.ConsentChannel, c.channel, "CONSENT_CHANNEL_"),
        status=enum_value(profile_pb2.ConsentStatus, c.status, "CONSENT_STATUS_"),
        source=c.source,
        time=datetime_to_timestamp(c.at),
        legal_basis=c.legal_basis,
    )


def consent_from_proto(c: profile_pb2.Consent, now: dt.datetime) -> Consent:
    errors = ViolationCollector()
    bounds.check_text(c.source, "consent.source", bounds.MAX_SOURCE, errors)
    bounds.check_text(c.legal_basis, "consent.legal_basis", MAX_LEGAL_BASIS, errors)
    errors.raise_if_any()
    return Consent(
        channel=enum_short_name(_CONSENT_CHANNEL, c.channel, "CONSENT_CHANNEL_"),
        status=enum_short_name(_CONSENT_STATUS, c.status, "CONSENT_STATUS_"),
        source=c.source,
        at=timestamp_to_datetime(c.time, "consent.time") or now,
        legal_basis=c.legal_basis,
    )


def _provenance_proto(p: Provenance) -> common_pb2.Provenance:
    return common_pb2.Provenance(
        source=p.source,
        channel=enum_value(common_pb2.SourceChannel, p.channel, "SOURCE_CHANNEL_"),
        observed_time=datetime_to_timestamp(p.observed_at),
    )


def _trait(view: ProfileView, name: str) -> profile_pb2.TraitValue | None:
    obs = view.shown.get(name)
    if obs is None:
        return None
    return profile_pb2.TraitValue(value=obs.value, provenance=_provenance_proto(obs.provenance))


def profile_proto(view: ProfileView, currency: str = "RUB") -> profile_pb2.Profile:
    profile = profile_pb2.Profile(
        customer_id=view.customer_id,
        identifiers=[
            profile_pb2.ProfileIdentifier(
                identifier=common_pb2.Identifier(
                    type=enum_value(common_pb2.IdentifierType, i.type, "IDENTIFIER_TYPE_"),
                    value=i.value,
                    namespace=i.namespace,
                ),
                provenance=_provenance_proto(i.provenance),
            )
            for i in view.identifiers
        ],
        sources=[
            profile_pb2.ProfileSource(
                source=s.source,
                channel=enum_value(common_pb2.SourceChannel, s.channel, "SOURCE_CHANNEL_"),
                first_seen_time=datetime_to_timestamp(s.first_seen),
                last_seen_time=datetime_to_timestamp(s.last_seen),
                record_count=s.record_count,
            )
            for s in view.sources
        ],
        metrics=metrics_proto(view.metrics, currency),
        consents=[consent_proto(c) for c in view.consents],
        create_time=datetime_to_timestamp(view.created_at),
        update_time=datetime_to_timestamp(view.updated_at),
        version=view.version,
    )
    for name in ("first_name", "last_name", "middle_name"):
        trait = _trait(view, name)
        if trait is not None:
            getattr(profile, name).CopyFrom(trait)
    _other_shown_into(profile, {name: obs.value for name, obs in view.shown.items()})
    for variant in view.name_variants:
        profile.name_variants.add(
            field=variant.field,
            value=variant.value,
            provenance=_provenance_proto(variant.latest.provenance),
            first_seen_time=datetime_to_timestamp(variant.first_seen),
            observation_count=variant.count,
        )
    return profile


def _other_shown_into(profile: profile_pb2.Profile, shown: Mapping[str, str]) -> None:
    """The shown values but the names' (birth date, gender, addresses, attributes)."""
    if "birth_date" in shown:
        born = dt.date.fromisoformat(shown["birth_date"])
        profile.birth_date.year, profile.birth_date.month, profile.birth_date.day = (
            born.year,
            born.month,
            born.day,
        )
    if "gender" in shown:
        profile.gender = enum_value(common_pb2.Gender, shown["gender"], "GENDER_")
    if "addresses" in shown:
        for address in json.loads(shown["addresses"]):
            profile.addresses.add(**address)
    for name, value in shown.items():
        if name.startswith("attributes."):
            profile.attributes[name.removeprefix("attributes.")] = value


def announced_profile_proto(found: AnnouncedProfile, currency: str) -> profile_pb2.Profile:
    """A profile as a change announcement carries it (ApplyProfileChangeRequest.profile):
    profile_proto's fields that segmentation's read model keeps - shown values without their
    provenance, one identifier per type without its value, each source by name alone, the
    consents, metrics and times; no name variants."""
    profile = profile_pb2.Profile(
        customer_id=found.customer_id,
        identifiers=[
            profile_pb2.ProfileIdentifier(
                identifier=common_pb2.Identifier(
                    type=enum_value(common_pb2.IdentifierType, kind, "IDENTIFIER_TYPE_")
                )
            )
            for kind in found.identifier_types
        ],
        sources=[profile_pb2.ProfileSource(source=source) for source in found.sources],
        metrics=metrics_proto(found.metrics, currency),
        consents=[consent_proto(c) for c in found.consents],
        create_time=datetime_to_timestamp(found.created_at),
        update_time=datetime_to_timestamp(found.updated_at),
        version=found.version,
    )
    for name in ("first_name", "last_name", "middle_name"):
        value = found.shown.get(name)
        if value is not None:
            getattr(profile, name).value = value
    _other_shown_into(profile, found.shown)
    return profile


def _stamp(value: dt.datetime | None) -> Timestamp | None:
    return None if value is None else datetime_to_timestamp(value)


def export_proto(
    export: PersonalDataExport, currency: str
) -> profile_pb2.ExportPersonalDataResponse:
    reply = profile_pb2.ExportPersonalDataResponse(
        profile=profile_proto(export.profile, currency),
        timeline=[timeline_entry(e, currency) for e in export.events],
        records=[common_pb2.RecordRef(source=s, message_id=m) for s, m in export.records],
        observed_values=[
            profile_pb2.ObservedValue(
                field=obs.field,
                value=obs.value,
                provenance=_provenance_proto(obs.provenance),
                record_ref=common_pb2.RecordRef(source=source, message_id=message_id),
            )
            for obs, (source, message_id) in export.observations
        ],
        consent_history=[consent_proto(c) for c in export.consent_history],
    )
    peers = export.peers
    if peers is None:
        return reply
    reply.merged_customer_ids.extend(peers.merged_customer_ids)
    for id_type, value, namespace, source, first, last in peers.identifiers:
        reply.identifiers.add(
            identifier=common_pb2.Identifier(
                type=enum_value(common_pb2.IdentifierType, id_type, "IDENTIFIER_TYPE_"),
                value=value,
                namespace=namespace,
            ),
            source=source,
            first_seen_time=_stamp(first),
            last_seen_time=_stamp(last),
        )
    for item_id, source, message_id, state, score, created in peers.review_items:
        reply.review_items.add(
            review_item_id=item_id,
            record_ref=common_pb2.RecordRef(source=source, message_id=message_id),
            state=state,
            score=score,
            create_time=_stamp(created),
        )
    for segment_id, label, entered in peers.memberships:
        reply.segment_memberships.add(
            segment_id=segment_id, label=label, enter_time=_stamp(entered)
        )
    if peers.quality_score is not None:
        score, reasons, scored = peers.quality_score
        reply.quality_score.CopyFrom(
            profile_pb2.ExportedQualityScore(
                score=score, reasons=reasons, score_time=_stamp(scored)
            )
        )
    return reply


def _refused_event(
    index: int, ref: common_pb2.RecordRef, error: SvodError
) -> profile_pb2.RefusedImportEvent:
    return profile_pb2.RefusedImportEvent(
        index=index,
        record_ref=common_pb2.RecordRef(source=ref.source, message_id=ref.message_id),
        error=status_proto_for(error),
    )


# The most customer ids kept checked (about 10 MB), over every StageEventImport stream:
# ingestion sends each message in a stream of its own, so a stream's own memory never met a
# customer twice and every event's id was parsed (parse_customer_id 2.6-2.7% of profile's
# py-spy samples, bench_events_path 200,000 events).
_CHECKED_IDS = 100_000
_CHECKED: dict[str, str] = {}


def _checked_id(raw: str, checked: dict[str, str]) -> str:
    """``raw`` as a canonical customer id (INVALID_ARGUMENT if it is none), remembered."""
    customer_id = checked.get(raw)
    if customer_id is not None:
        return customer_id
    customer_id = parse_customer_id(raw, "customer_id")
    if len(checked) >= _CHECKED_IDS:
        checked.clear()
    checked[raw] = customer_id
    return customer_id


@dataclass(frozen=True)
class _CheckedMessage:
    """A StageEventImport message read and checked, waiting to be written."""

    import_id: str
    rows: list[StagedEvent]
    refused: list[profile_pb2.RefusedImportEvent]


def event_import_proto(found: EventImport) -> profile_pb2.EventImport:
    reply = profile_pb2.EventImport(
        import_id=found.import_id,
        state=profile_pb2.EventImport.State.ValueType(found.state),
        staged_count=found.staged,
        applied_count=found.applied,
        duplicate_count=found.duplicates,
        erased_count=found.erased,
        customer_count=found.customers,
    )
    for name, value in (
        ("create_time", found.created_at),
        ("commit_time", found.committed_at),
        ("finish_time", found.finished_at),
    ):
        if value is not None:
            getattr(reply, name).CopyFrom(datetime_to_timestamp(value))
    return reply


class ProfileServicer(DeadLetterRpcs, profile_pb2_grpc.ProfileServiceServicer):
    def __init__(
        self,
        service: ProfileService,
        currency: str,
        tracer: trace.Tracer | None = None,
        metrics: ProfileMetrics | None = None,
        memberships: SegmentMembership | None = None,
        imports: EventImports | None = None,
        customer_imports: CustomerImports | None = None,
    ) -> None:
        self.service = service
        self.imports = imports
        self.customer_imports = customer_imports
        self.currency = currency
        self.tracer = tracer or trace.get_tracer(__name__)
        self.metrics = metrics
        # What a principal limited to some segments may see: their members (docs/security.md).
        self.memberships = memberships

    async def _visible(self, customer_ids: list[str]) -> set[str]:
        """The ids the calling principal may see: all, or the members of its segments."""
        segments = current_principal().segments
        if segments is None:
            return set(customer_ids)
        if self.memberships is None:
            return set()
        return await self.memberships.members(customer_ids, segments)

    async def _require_visible(self, customer_id: str) -> None:
        """NOT_FOUND, as for a customer that does not exist, outside the caller's segments."""
        if customer_id not in await self._visible([customer_id]):
            raise NotFound(f"no profile for customer {customer_id}")

    async def ApplyEvent(
        self, request: profile_pb2.ApplyEventRequest, context: grpc.aio.ServicerContext
    ) -> profile_pb2.ApplyEventResponse:
        version, changed = await self.service.apply_event(
            request.customer_id, event_fact(request, self.currency)
        )
        if self.metrics is not None:
            self.metrics.event_applied(changed)
        return profile_pb2.ApplyEventResponse(version=version, changed=changed)

    async def ApplyEventBatch(
        self, request: profile_pb2.ApplyEventBatchRequest, context: grpc.aio.ServicerContext
    ) -> profile_pb2.ApplyEventBatchResponse:
        if not 1 <= len(request.events) <= MAX_EVENT_BATCH:
            raise InvalidArgument(
                [FieldViolation("events", f"1 to {MAX_EVENT_BATCH} events per call")]
            )

        # Each event gets a span in the trace of the call that accepted it (when the caller
        # sent one): the change announcement the batcher writes for it continues that trace.
        results: list[BatchResult | None] = [None] * len(request.events)
        accepted: list[tuple[int, trace.Span | None]] = []
        items: list[tuple[str, EventFact, dict[str, str]]] = []
        call_carrier = current_trace_carrier()
        for index, item in enumerate(request.events):
            # A long call must not hold up single calls, nor the batches being written.
            await step_aside()
            # An event continuing a trace of its own (one ingestion accepted) gets a span there;
            # the others belong to this call's span, which their announcements continue.
            span = (
                item_span(self.tracer, "profile apply event", item.trace_context)
                if item.trace_context
                else None
            )
            try:
                fact = event_fact(item, self.currency)
            except SvodError as error:
                results[index] = _failed_item(span, error)
                continue
            accepted.append((index, span))
            carrier = trace_carrier_of(span) if span is not None else call_carrier
            items.append((item.customer_id, fact, carrier))
        # Submitted together, the events share the batcher's transactions.
        outcomes = await self.service.apply_events(items)
        for (index, span), outcome in zip(accepted, outcomes, strict=True):
            if isinstance(outcome, SvodError):
                results[index] = _failed_item(span, outcome)
                continue
            if span is not None:
                span.end()
            if isinstance(outcome, Exception):
                raise outcome
            version, changed = outcome
            results[index] = BatchResult(
                applied=profile_pb2.ApplyEventResponse(version=version, changed=changed)
            )
        answered = [r for r in results if r is not None]
        assert len(answered) == len(results), "every item of the batch has its verdict"
        if self.metrics is not None:
            self.metrics.batch_answered(answered)
        return profile_pb2.ApplyEventBatchResponse(results=answered)

    def _event_imports(self) -> EventImports:
        if self.imports is None:
            raise FailedPrecondition("event imports are not enabled on this server")
        return self.imports

    async def _checked_messages(
        self,
        requests: AsyncIterator[profile_pb2.StageEventImportRequest],
        out: asyncio.Queue[_CheckedMessage | SvodError | None],
    ) -> None:
        """Reads and checks a stream's messages into ``out`` (None at the end, or the error
        that ends the stream)."""
        import_id = ""
        # Customer ids already checked (by any stream): an import names each customer about
        # ten times, and parsing the UUID was 50 of 678 py-spy samples of staging
        # (bench_event_import, 200,000 events). Bounded: cleared when it grows past the limit.
        checked_ids = _CHECKED
        currency = self.currency
        try:
            async for request in requests:
                if request.import_id and import_id and request.import_id != import_id:
                    raise InvalidArgument(
                        [FieldViolation("import_id", "one stream stages one import")]
                    )
                import_id = import_id or request.import_id
                if not import_id:
                    raise InvalidArgument(
                        [FieldViolation("import_id", "required in the stream's first message")]
                    )
                if len(request.events) > MAX_STAGE_EVENTS:
                    raise InvalidArgument(
                        [FieldViolation("events", f"at most {MAX_STAGE_EVENTS:,} per message")]
                    )
                rows: list[StagedEvent] = []
                refused: list[profile_pb2.RefusedImportEvent] = []
                for index, item in enumerate(request.events):
                    await step_aside()  # single calls run while a message is checked
                    try:
                        customer_id = _checked_id(item.customer_id, checked_ids)
                        rows.append(staged_event_of(customer_id, item, currency))
                    except SvodError as error:
                        refused.append(_refused_event(index, item.record_ref, error))
                await out.put(_CheckedMessage(import_id, rows, refused))
        except SvodError as error:
            await out.put(error)
            return
        await out.put(None)

    async def StageEventImport(
        self,
        request_iterator: AsyncIterator[profile_pb2.StageEventImportRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[profile_pb2.StageEventImportResponse]:
        imports = self._event_imports()
        # The next message is read and checked (Python) while the previous one is written
        # (PostgreSQL): the two overlap instead of taking turns.
        checked: asyncio.Queue[_CheckedMessage | SvodError | None] = asyncio.Queue(maxsize=2)
        reader = asyncio.create_task(self._checked_messages(request_iterator, checked))
        try:
            while (message := await checked.get()) is not None:
                if isinstance(message, SvodError):
                    raise message
                outcome = await imports.stage(message.import_id, message.rows)
                yield profile_pb2.StageEventImportResponse(
                    staged_count=outcome.staged,
                    duplicate_count=outcome.duplicates,
                    refused=message.refused,
                    import_staged_count=outcome.import_staged,
                )
        finally:
            reader.cancel()

    async def CommitEventImport(
        self, request: profile_pb2.CommitEventImportRequest, context: grpc.aio.ServicerContext
    ) -> profile_pb2.EventImport:
        return event_import_proto(await self._event_imports().commit(request.import_id))

    async def GetEventImport(
        self, request: profile_pb2.GetEventImportRequest, context: grpc.aio.ServicerContext
    ) -> profile_pb2.EventImport:
        return event_import_proto(await self._event_imports().get(request.import_id))

    async def GetTimeline(
        self, request: profile_pb2.GetTimelineRequest, context: grpc.aio.ServicerContext
    ) -> profile_pb2.GetTimelineResponse:
        await self._require_visible(request.customer_id)
        entries, token = await self.service.timeline(
            request.customer_id, request.page_size, request.page_token
        )
        return profile_pb2.GetTimelineResponse(
            entries=[timeline_entry(e, self.currency) for e in entries], next_page_token=token
        )

    async def BatchGetProfiles(
        self, request: profile_pb2.BatchGetProfilesRequest, context: grpc.aio.ServicerContext
    ) -> profile_pb2.BatchGetProfilesResponse:
        found, missing = await self.service.batch_get(list(request.customer_ids))
        if current_principal().segments is not None:
            visible = await self._visible([v.customer_id for v in found])
            missing += [v.customer_id for v in found if v.customer_id not in visible]
            found = [v for v in found if v.customer_id in visible]
        return profile_pb2.BatchGetProfilesResponse(
            profiles=[profile_proto(v, self.currency) for v in found],
            missing_customer_ids=missing,
        )

    async def SearchProfiles(
        self, request: profile_pb2.SearchProfilesRequest, context: grpc.aio.ServicerContext
    ) -> profile_pb2.SearchProfilesResponse:
        filters = {
            "first_name": request.first_name,
            "last_name": request.last_name,
            "city": request.city,
            "source": request.source,
        }
        views, token = await self.service.search(
            {k: v for k, v in filters.items() if v}, request.page_size, request.page_token
        )
        if current_principal().segments is not None:
            # A page may then hold fewer profiles than asked for; the token goes on.
            visible = await self._visible([v.customer_id for v in views])
            views = [v for v in views if v.customer_id in visible]
        return profile_pb2.SearchProfilesResponse(
            profiles=[profile_proto(v, self.currency) for v in views], next_page_token=token
        )

    async def StreamProfiles(
        self, request: profile_pb2.StreamProfilesRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[profile_pb2.Profile]:
        async for view in self.service.stream(timestamp_to_datetime(request.changed_after)):
            yield profile_proto(view, self.currency)

    async def ExportPersonalData(
        self, request: profile_pb2.ExportPersonalDataRequest, context: grpc.aio.ServicerContext
    ) -> profile_pb2.ExportPersonalDataResponse:
        await self._require_visible(request.customer_id)
        export = await self.service.personal_data.export(request.customer_id)
        return export_proto(export, self.currency)

    async def ErasePersonalData(
        self, request: profile_pb2.ErasePersonalDataRequest, context: grpc.aio.ServicerContext
    ) -> profile_pb2.ErasePersonalDataResponse:
        receipt = await self.service.personal_data.erase(
            request.customer_id, acting_as(request.actor), request.reason
        )
        return profile_pb2.ErasePersonalDataResponse(
            receipt_id=receipt.receipt_id,
            erase_time=datetime_to_timestamp(receipt.erased_at),
            erased_counts=receipt.counts,
        )

    async def GetErasureReceipt(
        self, request: profile_pb2.GetErasureReceiptRequest, context: grpc.aio.ServicerContext
    ) -> profile_pb2.ErasureReceipt:
        key = request.WhichOneof("key")
        stored = await self.service.personal_data.receipt(
            request.receipt_id if key == "receipt_id" else "",
            request.customer_id if key == "customer_id" else "",
        )
        return profile_pb2.ErasureReceipt(
            receipt_id=stored.receipt_id,
            customer_id=stored.customer_id,
            erased_customer_ids=stored.customer_ids,
            erase_time=datetime_to_timestamp(stored.erased_at),
            actor=stored.actor,
            reason=stored.reason,
            erased_counts=stored.counts,
        )

    async def UpdateConsent(
        self, request: profile_pb2.UpdateConsentRequest, context: grpc.aio.ServicerContext
    ) -> profile_pb2.Profile:
        consent = consent_from_proto(request.consent, dt.datetime.now(dt.UTC))
        await self._require_visible(request.customer_id)
        view = await self.service.update_consent(request.customer_id, consent)
        return profile_proto(view, self.currency)

    async def Apply(
        self, request: profile_pb2.ApplyRequest, context: grpc.aio.ServicerContext
    ) -> profile_pb2.ApplyResponse:
        version, changed = await self.service.apply(application(request, dt.datetime.now(dt.UTC)))
        if self.metrics is not None:
            self.metrics.record_applied(changed)
        return profile_pb2.ApplyResponse(version=version, changed=changed)

    async def ApplyBatch(
        self, request: profile_pb2.ApplyBatchRequest, context: grpc.aio.ServicerContext
    ) -> profile_pb2.ApplyBatchResponse:
        if not 1 <= len(request.records) <= MAX_RECORD_BATCH:
            raise InvalidArgument(
                [FieldViolation("records", f"1 to {MAX_RECORD_BATCH} records per call")]
            )
        return await self._apply_records(request.records, self.service.apply_many)

    async def FoldCustomerImport(
        self, request: profile_pb2.FoldCustomerImportRequest, context: grpc.aio.ServicerContext
    ) -> profile_pb2.ApplyBatchResponse:
        imports = self._customer_imports()
        check_import_id(request.import_id)
        if not 1 <= len(request.records) <= MAX_FOLD_RECORDS:
            raise InvalidArgument(
                [FieldViolation("records", f"1 to {MAX_FOLD_RECORDS:,} records per call")]
            )
        return await self._apply_records(
            request.records, lambda items: imports.fold(request.import_id, items)
        )

    async def FinishCustomerImport(
        self, request: profile_pb2.FinishCustomerImportRequest, context: grpc.aio.ServicerContext
    ) -> profile_pb2.FinishCustomerImportResponse:
        announced = await self._customer_imports().finish(request.import_id)
        return profile_pb2.FinishCustomerImportResponse(customers_announced=announced)

    def _customer_imports(self) -> CustomerImports:
        if self.customer_imports is None:
            raise FailedPrecondition("customer imports are not enabled on this server")
        return self.customer_imports

    async def _apply_records(
        self,
        records: Sequence[profile_pb2.ApplyRequest],
        apply: Callable[
            [list[tuple[RecordApplication, dict[str, str]]]],
            Awaitable[list[tuple[int, bool] | SvodError]],
        ],
    ) -> profile_pb2.ApplyBatchResponse:
        """ApplyBatch's (and a fold's) answers: each record checked, applied by ``apply``."""
        # Each record gets a span in the trace of the call that accepted it (when the caller
        # sent one), which the change announcement written for it continues.
        now = dt.datetime.now(dt.UTC)
        results: list[ApplyResult | None] = [None] * len(records)
        accepted: list[tuple[int, trace.Span | None]] = []
        items: list[tuple[RecordApplication, dict[str, str]]] = []
        call_carrier = current_trace_carrier()
        for index, item in enumerate(records):
            # A call's 500 records took up to 38 ms to check and convert in one stretch under
            # an import (loop probe, docs/performance.md, "Long stretches"): a GetProfile
            # waited for it.
            await step_aside()
            span = (
                item_span(self.tracer, "profile apply record", item.trace_context)
                if item.trace_context
                else None
            )
            try:
                app = application(item, now)
            except SvodError as error:
                results[index] = _failed_record(span, error)
                continue
            accepted.append((index, span))
            items.append((app, trace_carrier_of(span) if span is not None else call_carrier))
        outcomes = await apply(items) if items else []
        changed_count = 0
        for (index, span), outcome in zip(accepted, outcomes, strict=True):
            if isinstance(outcome, SvodError):
                results[index] = _failed_record(span, outcome)
                continue
            if span is not None:
                span.end()
            version, changed = outcome
            changed_count += changed
            results[index] = ApplyResult(
                applied=profile_pb2.ApplyResponse(version=version, changed=changed)
            )
        if self.metrics is not None:
            # Counted once per call: a counter's add per record was 5% of profile's py-spy
            # samples of FoldCustomerImport (2,000 records a call).
            applied = sum(1 for outcome in outcomes if not isinstance(outcome, SvodError))
            self.metrics.records_applied(changed_count, applied - changed_count)
        answered = [r for r in results if r is not None]
        assert len(answered) == len(results), "every item of the batch has its verdict"
        return profile_pb2.ApplyBatchResponse(results=answered)

    async def ApplyIdentityChange(
        self, request: profile_pb2.ApplyIdentityChangeRequest, context: grpc.aio.ServicerContext
    ) -> profile_pb2.ApplyIdentityChangeResponse:
        kind = request.WhichOneof("change")
        if kind == "split":
            split = request.split
            await self.service.identity_changes.split(
                request.change_id,
                split.source_customer_id,
                split.target_customer_id,
                [(r.source, r.message_id) for r in split.moved_records],
            )
            return profile_pb2.ApplyIdentityChangeResponse()
        if kind != "merge":
            raise InvalidArgument([FieldViolation("change", "a merge or a split is required")])
        await self.service.identity_changes.merge(
            request.change_id,
            request.merge.surviving_customer_id,
            list(request.merge.merged_customer_ids),
        )
        return profile_pb2.ApplyIdentityChangeResponse()

    async def GetProfile(
        self, request: profile_pb2.GetProfileRequest, context: grpc.aio.ServicerContext
    ) -> profile_pb2.Profile:
        key = request.WhichOneof("key")
        if key == "identifier":
            i = request.identifier
            view = await self.service.get_by_identifier(
                enum_short_name(_ID_TYPE, i.type, "IDENTIFIER_TYPE_"), i.value, i.namespace
            )
        elif key == "customer_id":
            view = await self.service.get_by_id(request.customer_id)
        else:
            raise InvalidArgument([FieldViolation("key", "give a customer_id or an identifier")])
        await self._require_visible(view.customer_id)
        return profile_proto(view, self.currency)
