"""Validation of incoming messages: what the front door refuses, field by field.

Nothing refused here is stored. Checks are about shape (is this a phone number at all, is the
source named); judging plausible-but-wrong data is the quality service's work.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import phonenumbers

from svod_ingestion.domain.attributes import validate_attributes
from svod_runtime.errors import ViolationCollector

SOURCE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MAX_MESSAGE_ID = 128
MAX_VALUE = 256
MAX_NAME = 200
MAX_IDENTIFIERS = 50
MAX_ATTRIBUTES = 100
FUTURE_TOLERANCE = dt.timedelta(minutes=5)
IDENTIFIER_TYPES = (
    "email",
    "phone",
    "loyalty_card",
    "external_id",
    "device_id",
    "analytics_client_id",
    "custom",
)
NAMESPACED = ("external_id", "custom")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")


@dataclass(frozen=True)
class IdentifyMessage:
    source: str
    message_id: str
    channel: str
    observed_at: dt.datetime | None
    identifiers: list[tuple[str, str, str]]
    names: dict[str, str] = field(default_factory=dict)
    birth_date: tuple[int, int, int] | None = None
    attributes: dict[str, str] = field(default_factory=dict)


def validate_ref(source: str, message_id: str, errors: ViolationCollector) -> None:
    if not source:
        errors.add("record_ref.source", "required")
    elif not SOURCE_PATTERN.match(source):
        errors.add("record_ref.source", "1-64 characters of [a-z0-9._-], starting alphanumeric")
    if not message_id:
        errors.add("record_ref.message_id", "required")
    elif len(message_id) > MAX_MESSAGE_ID:
        errors.add("record_ref.message_id", f"longer than {MAX_MESSAGE_ID} characters")


def _phone_is_parseable(value: str) -> bool:
    try:
        number = phonenumbers.parse(value, "RU")
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_possible_number(number)


def validate_identifiers(
    identifiers: list[tuple[str, str, str]], errors: ViolationCollector, path: str
) -> None:
    if not identifiers:
        errors.add(path, "at least one identifier is required")
    if len(identifiers) > MAX_IDENTIFIERS:
        errors.add(path, f"at most {MAX_IDENTIFIERS} identifiers")
    for index, (id_type, value, namespace) in enumerate(identifiers):
        here = f"{path}[{index}]"
        if id_type not in IDENTIFIER_TYPES:
            errors.add(f"{here}.type", "unknown or unspecified identifier type")
        elif not value.strip():
            errors.add(f"{here}.value", "required")
        elif len(value) > MAX_VALUE:
            errors.add(f"{here}.value", f"longer than {MAX_VALUE} characters")
        elif id_type == "phone" and not _phone_is_parseable(value):
            errors.add(f"{here}.value", "not a phone number")
        elif id_type == "email" and not _EMAIL.match(value.strip()):
            errors.add(f"{here}.value", "not an e-mail address")
        elif id_type in NAMESPACED and not namespace.strip():
            errors.add(f"{here}.namespace", f"required for {id_type} identifiers")


def validate_identify(
    message: IdentifyMessage, now: dt.datetime, declared: Mapping[str, str] | None = None
) -> None:
    """Raises InvalidArgument naming every bad field of an identify call."""
    errors = ViolationCollector()
    validate_ref(message.source, message.message_id, errors)
    if message.channel in ("", "unspecified"):
        errors.add("channel", "required")
    if message.observed_at is not None and message.observed_at > now + FUTURE_TOLERANCE:
        errors.add("observed_time", "in the future")
    validate_identifiers(message.identifiers, errors, "record.identifiers")
    for name, value in message.names.items():
        if len(value) > MAX_NAME:
            errors.add(f"record.name.{name}", f"longer than {MAX_NAME} characters")
    if message.birth_date is not None:
        try:
            born = dt.date(*message.birth_date)
        except ValueError:
            errors.add("record.birth_date", "not a calendar date")
        else:
            if born > now.date():
                errors.add("record.birth_date", "in the future")
    if len(message.attributes) > MAX_ATTRIBUTES:
        errors.add("record.attributes", f"at most {MAX_ATTRIBUTES} attributes")
    validate_attributes(message.attributes, declared or {}, errors, "record.attributes")
    errors.raise_if_any()


EVENT_TYPES = (
    "order_placed",
    "order_returned",
    "cart_updated",
    "cart_abandoned",
    "page_viewed",
    "product_viewed",
    "campaign_delivered",
    "campaign_opened",
    "campaign_clicked",
    "campaign_unsubscribed",
    "support_ticket_opened",
    "support_ticket_resolved",
    "loyalty_accrued",
    "loyalty_redeemed",
    "survey_answered",
    "session_started",
    "contact_failed",
)
MONEY_EVENTS = ("order_placed", "order_returned", "cart_updated", "cart_abandoned")
CONTACT_CHANNELS = ("email", "sms", "push", "messenger", "call")


@dataclass(frozen=True)
class Amount:
    """A money amount as sent: currency code and value (units + nanos, both signed alike)."""

    currency: str
    units: int
    nanos: int

    @property
    def negative(self) -> bool:
        return self.units < 0 or self.nanos < 0

    @property
    def empty(self) -> bool:
        return not self.currency and self.units == 0 and self.nanos == 0


@dataclass(frozen=True)
class Line:
    quantity: int
    unit_price: Amount
    discount: Amount


@dataclass(frozen=True)
class TrackMessage:
    source: str
    message_id: str
    channel: str
    event_type: str
    occurred_at: dt.datetime | None
    identifiers: list[tuple[str, str, str]]
    total: Amount
    lines: list[Line] = field(default_factory=list)
    contact_channel: str = ""
    loyalty_points: int = 0


def _check_amount(amount: Amount, path: str, currency: str, errors: ViolationCollector) -> None:
    if amount.empty:
        return
    if amount.negative:
        errors.add(path, "must not be negative")
    if amount.currency != currency:
        errors.add(f"{path}.currency_code", f"must be {currency}, the currency of this deployment")


def validate_track(message: TrackMessage, now: dt.datetime, currency: str) -> None:
    """Raises InvalidArgument naming every bad field of a track call."""
    errors = ViolationCollector()
    validate_ref(message.source, message.message_id, errors)
    if message.channel in ("", "unspecified"):
        errors.add("channel", "required")
    if message.event_type not in EVENT_TYPES:
        errors.add("event.type", "unknown or unspecified event type")
    if message.occurred_at is None:
        errors.add("event.occurred_time", "required")
    elif message.occurred_at > now + FUTURE_TOLERANCE:
        errors.add("event.occurred_time", "in the future")
    validate_identifiers(message.identifiers, errors, "event.identifiers")
    _check_amount(message.total, "event.total", currency, errors)
    for index, line in enumerate(message.lines):
        path = f"event.lines[{index}]"
        if line.quantity <= 0:
            errors.add(f"{path}.quantity", "must be positive")
        _check_amount(line.unit_price, f"{path}.unit_price", currency, errors)
        _check_amount(line.discount, f"{path}.discount", currency, errors)
    if message.event_type in ("order_placed", "order_returned") and message.total.empty:
        errors.add("event.total", f"required for {message.event_type}")
    if (message.event_type.startswith("campaign_") or message.event_type == "contact_failed") and (
        message.contact_channel not in CONTACT_CHANNELS
    ):
        errors.add("event.contact_channel", f"one of {', '.join(CONTACT_CHANNELS)}")
    if message.event_type.startswith("loyalty_") and message.loyalty_points <= 0:
        errors.add("event.loyalty_points", "must be positive")
    errors.raise_if_any()
