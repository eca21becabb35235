"""Ingestion's vocabulary."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from svod_ingestion.domain.attribution import GraceClock, Issue


class MessageKind(StrEnum):
    """What a stored message is: an identify call (a record) or a track call (an event)."""

    IDENTIFY = "identify"
    TRACK = "track"

    @property
    def topic(self) -> str:
        """The outbox topic its deliveries go through."""
        return f"record.{self.value}"


RECORD_TOPICS = tuple(kind.topic for kind in MessageKind)


class RecordState(StrEnum):
    """Where a stored message stands (the proto's ``RecordStatus.State``)."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    # an event held until identity knows whom it is about
    UNATTRIBUTED = "unattributed"


# Built for every streamed message (issue #20: about 10,000 a second): slotted, not frozen - a
# frozen dataclass sets each field through object.__setattr__, three times slower to build.
# Nothing changes it after it is built.
@dataclass(slots=True)
class Incoming:
    """A checked message about to be stored."""

    kind: MessageKind
    source: str
    message_id: str
    channel: str
    # The request as the client sent it: a retry has the same one.
    fingerprint: bytes
    # What is stored and delivered (the standardised request for identify).
    payload: bytes
    # False for an identify call accepted while quality could not be asked: checked by quality
    # before it is delivered (its outbox message says so).
    quality_checked: bool = True


@dataclass(frozen=True)
class Accepted:
    """The answer to an accepted message (or to its retry)."""

    record_id: str
    duplicate: bool
    received_at: dt.datetime


@dataclass(frozen=True)
class StoredRecord:
    record_pk: int
    record_id: str
    payload_hash: bytes
    received_at: dt.datetime


@dataclass(frozen=True)
class RecordStatus:
    record_id: str
    source: str
    message_id: str
    state: RecordState
    customer_id: str | None
    attempts: int
    last_error: str | None
    received_at: dt.datetime
    delivered_at: dt.datetime | None
    # For an event not attributed (yet): why, who it may be, grace used so far.
    issue: Issue | None = None
    candidates: tuple[str, ...] = ()
    unknown_for_s: float = 0.0


# The outbox payload of an identify call accepted while quality could not be asked: quality
# checks it before it is delivered (``service_layer.delivery.RecordDelivery.identify``).
UNCHECKED = b"quality-unchecked"


@dataclass(frozen=True)
class StoredPayload:
    """A stored message as delivery reads it: the request, when it came, its grace clock."""

    payload: bytes
    received_at: dt.datetime
    clock: GraceClock
