"""Webhook deliveries: the signed request and what an HTTP answer means for it."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from enum import StrEnum

from svod_segmentation.domain.activation import Contact, Delivery, DeliveryKind
from svod_segmentation.domain.fields import CONSENT_CHANNELS
from svod_segmentation.domain.model import MembershipKind

SIGNATURE_VERSION = "v1"
# Statuses that say "not now": retried for as long as it takes (an outage loses nothing).
_NOT_NOW = frozenset({408, 429, 502, 503, 504})


@dataclass(frozen=True)
class HttpAnswer:
    """What a receiver answered a webhook POST."""

    # 0 when there was no HTTP answer (refused, reset, timed out, DNS)
    status: int
    error: str = ""


class Outcome(StrEnum):
    DELIVERED = "delivered"
    # retried with backoff, never a dead letter (receiver down, overloaded, timing out)
    RETRY = "retry"
    # retried up to the destination's max_attempts (other 5xx), then a dead letter
    RETRY_COUNTED = "retry_counted"
    # a dead letter at once (4xx: the receiver refuses this request as it is)
    DEAD = "dead"


def outcome_of(status: int) -> Outcome:
    """``status`` is the HTTP status, or 0 when there was no answer (refused, reset, timeout)."""
    if 200 <= status < 300:
        return Outcome.DELIVERED
    if status == 0 or status in _NOT_NOW:
        return Outcome.RETRY
    if 400 <= status < 500:
        return Outcome.DEAD
    return Outcome.RETRY_COUNTED


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``v1=<hex HMAC-SHA256 of "<timestamp>.<body>">``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"{SIGNATURE_VERSION}={mac.hexdigest()}"


def verify(secret: str, timestamp: int, body: bytes, header: str) -> bool:
    """What a receiver does (used by the tests and documented for integrators)."""
    return hmac.compare_digest(signature(secret, timestamp, body), header)


def headers(delivery_id: str, secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "svod-webhook/1",
        "Svod-Delivery-Id": delivery_id,
        "Idempotency-Key": delivery_id,
        "Svod-Timestamp": str(timestamp),
        "Svod-Signature": signature(secret, timestamp, body),
    }


def contact_json(contact: Contact | None) -> dict[str, object]:
    if contact is None:  # erased or merged away since: the id is all there is
        return {}
    return {
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "middle_name": contact.middle_name,
        "email": contact.email,
        "phone": contact.phone,
        "consents": {c: contact.consents.get(c, "") for c in CONSENT_CHANNELS},
    }


@dataclass(frozen=True)
class Body:
    payload: bytes
    sent: int
    suppressed: int


def body(
    delivery: Delivery,
    contacts: dict[str, Contact],
    allowed: set[str],
) -> Body:
    """The JSON body of a delivery. ``allowed`` are the customers that may receive an entry
    (consent and contact checked at delivery time); an exit is always sent, so a receiver
    drops someone who opted out."""
    base: dict[str, object] = {
        "delivery_id": delivery.delivery_id,
        "destination_id": delivery.destination_id,
        "binding_id": delivery.binding_id,
        "segment_id": delivery.segment_id,
        "sequence": delivery.sequence,
    }
    suppressed = 0
    if delivery.kind is DeliveryKind.CHANGES:
        changes = []
        for customer_id, kind, label, at in delivery.items:
            if kind == MembershipKind.ENTERED and customer_id not in allowed:
                suppressed += 1
                continue
            changes.append(
                {
                    "kind": kind,
                    "customer_id": customer_id,
                    "label": label,
                    "time": at,
                    "contact": contact_json(contacts.get(customer_id)),
                }
            )
        payload = {**base, "type": "changes", "changes": changes}
        sent = len(changes)
    else:
        members = []
        for customer_id, label in delivery.items:
            if customer_id not in allowed:
                suppressed += 1
                continue
            members.append(
                {
                    "customer_id": customer_id,
                    "label": label,
                    "contact": contact_json(contacts.get(customer_id)),
                }
            )
        payload = {
            **base,
            "type": "full_sync",
            "sync": {
                "sync_id": delivery.sync_id,
                "page": delivery.page,
                "last_page": delivery.last_page,
            },
            "members": members,
        }
        sent = len(members)
    raw = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return Body(raw, sent, suppressed)
