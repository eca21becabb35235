"""Destinations, bindings, syncs and deliveries: what a segment is delivered to and how.

Pure: no SQL, no gRPC, no HTTP. Contact data lives in the profile service; here it is only
the shape it has while a delivery is being made (``Contact``), never stored.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import urlsplit

from svod_runtime.errors import FieldViolation, InvalidArgument
from svod_segmentation.domain.fields import CONSENT_CHANNELS, ConsentState

DESTINATION_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
MAX_DISPLAY_NAME = 200
MAX_URL = 2000
MIN_SECRET, MAX_SECRET = 16, 256
DEFAULT_MAX_ATTEMPTS, MAX_MAX_ATTEMPTS = 10, 100
MIN_SCHEDULE_S, MAX_SCHEDULE_S = 60, 30 * 24 * 3600
# People per webhook POST (a batch of changes or a page of a full sync): small enough for a
# receiver to take in one request, large enough that a 100,000-member sync is 200 POSTs.
PAGE_SIZE = 500


class DestinationKind(StrEnum):
    FILE = "file"
    WEBHOOK = "webhook"
    AD_AUDIENCE = "ad_audience"


class FileFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"


class AdPlatform(StrEnum):
    VK_ADS = "vk_ads"
    YANDEX_AUDIENCES = "yandex_audiences"
    META = "meta"


class BindingMode(StrEnum):
    FULL = "full"
    LIVE = "live"


class SyncState(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class DeliveryKind(StrEnum):
    CHANGES = "changes"
    FULL_SYNC_PAGE = "full_sync_page"


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD_LETTER = "dead_letter"


@dataclass(frozen=True)
class Destination:
    destination_id: str
    kind: DestinationKind
    consent_channel: str
    display_name: str = ""
    file_format: FileFormat | None = None
    url: str = ""
    secret: str = ""
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    platform: AdPlatform | None = None
    created_at: dt.datetime | None = None


@dataclass(frozen=True)
class Binding:
    binding_id: str
    segment_id: str
    destination_id: str
    mode: BindingMode
    schedule_seconds: int = 0
    next_sync_at: dt.datetime | None = None
    created_at: dt.datetime | None = None
    synced_count: int = 0


@dataclass(frozen=True)
class Sync:
    sync_id: str
    binding_id: str
    segment_id: str
    destination_id: str
    state: SyncState
    started_at: dt.datetime
    ended_at: dt.datetime | None = None
    member_count: int = 0
    delivered_count: int = 0
    skipped_no_consent: int = 0
    skipped_no_contact: int = 0
    file_paths: tuple[str, ...] = ()
    error: str = ""


@dataclass(frozen=True)
class Delivery:
    delivery_id: str
    binding_id: str
    destination_id: str
    segment_id: str
    sequence: int
    kind: DeliveryKind
    state: DeliveryState
    # changes: [customer id, MembershipKind value, label, time]; pages: [customer id, label]
    items: tuple[tuple[str, ...], ...]
    sync_id: str = ""
    page: int = 0
    last_page: bool = False
    attempts: int = 0
    failed_attempts: int = 0
    last_http_status: int = 0
    last_error: str = ""
    created_at: dt.datetime | None = None
    delivered_at: dt.datetime | None = None


@dataclass(frozen=True)
class Contact:
    """What a delivery sends about one person, fetched from the profile service at delivery
    time; never stored, never logged."""

    customer_id: str
    first_name: str = ""
    last_name: str = ""
    middle_name: str = ""
    email: str = ""
    phone: str = ""
    # channel -> "opted_in" / "opted_out" (the latest answer)
    consents: dict[str, str] = field(default_factory=dict)


class Eligibility(StrEnum):
    OK = "ok"
    NO_CONSENT = "no_consent"
    NO_CONTACT = "no_contact"


# Which contact a channel needs; None: any way to reach the person (ad audiences match on
# e-mail or phone) or none (push reaches an app install, not an address).
_CONTACT_OF_CHANNEL = {
    "email": "email",
    "sms": "phone",
    "messenger": "phone",
    "phone_call": "phone",
}


def eligibility(contact: Contact | None, destination: Destination) -> Eligibility:
    """Whether a person may be delivered to the destination now."""
    if (
        contact is None
        or contact.consents.get(destination.consent_channel) != ConsentState.OPTED_IN
    ):
        return Eligibility.NO_CONSENT
    if destination.kind is DestinationKind.AD_AUDIENCE:
        return Eligibility.OK if contact.email or contact.phone else Eligibility.NO_CONTACT
    needed = _CONTACT_OF_CHANNEL.get(destination.consent_channel)
    if needed is not None and not getattr(contact, needed):
        return Eligibility.NO_CONTACT
    return Eligibility.OK


def validate_destination(destination: Destination, path: str = "destination") -> None:
    """Raises InvalidArgument naming every bad field."""
    errors: list[FieldViolation] = []
    if not DESTINATION_ID.match(destination.destination_id):
        errors.append(
            FieldViolation(
                f"{path}.destination_id",
                "1-63 characters of [a-z0-9_-], starting with a letter or digit",
            )
        )
    if len(destination.display_name) > MAX_DISPLAY_NAME:
        errors.append(FieldViolation(f"{path}.display_name", f"at most {MAX_DISPLAY_NAME}"))
    if destination.consent_channel not in CONSENT_CHANNELS:
        errors.append(
            FieldViolation(f"{path}.consent_channel", f"one of {', '.join(CONSENT_CHANNELS)}")
        )
    kind = destination.kind
    if kind is DestinationKind.FILE and destination.file_format is None:
        errors.append(FieldViolation(f"{path}.file.format", "required: csv or jsonl"))
    elif kind is DestinationKind.AD_AUDIENCE and destination.platform is None:
        errors.append(
            FieldViolation(
                f"{path}.ad_audience.platform", "required: vk_ads, yandex_audiences, meta"
            )
        )
    elif kind is DestinationKind.WEBHOOK:
        url = destination.url
        if not _valid_url(url):
            errors.append(
                FieldViolation(
                    f"{path}.webhook.url", f"an http:// or https:// URL of at most {MAX_URL}"
                )
            )
        if destination.secret and not MIN_SECRET <= len(destination.secret) <= MAX_SECRET:
            errors.append(
                FieldViolation(f"{path}.webhook.secret", f"{MIN_SECRET} to {MAX_SECRET} characters")
            )
        if not 1 <= destination.max_attempts <= MAX_MAX_ATTEMPTS:
            errors.append(
                FieldViolation(f"{path}.webhook.max_attempts", f"1 to {MAX_MAX_ATTEMPTS}")
            )
    if errors:
        raise InvalidArgument(errors)


def _valid_url(url: str) -> bool:
    """http(s), a host, printable ASCII without spaces (what an HTTP request line can carry)."""
    if len(url) > MAX_URL or not re.fullmatch(r"https?://[!-~]+", url):
        return False
    try:
        return bool(urlsplit(url).hostname)
    except ValueError:
        return False


def validate_binding(binding: Binding, destination: Destination, path: str = "binding") -> None:
    errors: list[FieldViolation] = []
    if binding.mode is BindingMode.LIVE:
        if destination.kind is not DestinationKind.WEBHOOK:
            errors.append(
                FieldViolation(f"{path}.mode", "live sync goes to webhooks only; use full")
            )
        if binding.schedule_seconds:
            errors.append(
                FieldViolation(f"{path}.schedule_seconds", "only for full syncs (live is live)")
            )
    elif binding.schedule_seconds and not (
        MIN_SCHEDULE_S <= binding.schedule_seconds <= MAX_SCHEDULE_S
    ):
        errors.append(
            FieldViolation(
                f"{path}.schedule_seconds",
                f"0 (on demand) or {MIN_SCHEDULE_S} to {MAX_SCHEDULE_S} seconds",
            )
        )
    if errors:
        raise InvalidArgument(errors)


def pages(items: list[tuple[str, ...]], size: int = PAGE_SIZE) -> list[list[tuple[str, ...]]]:
    """Items cut into pages of ``size`` (one empty page when there are none: a full sync of an
    empty audience still tells the receiver it is empty)."""
    if not items:
        return [[]]
    return [items[i : i + size] for i in range(0, len(items), size)]
