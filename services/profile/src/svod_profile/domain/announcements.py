"""What the profile service tells others through its outbox: topics and payloads."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from svod_profile.domain.contacts import failed_contacts
from svod_profile.domain.events import EventFact

__all__ = [
    "CHANGED_NO_EVENTS",
    "CHANGED_TOPIC",
    "CONTACT_FAILED_TOPIC",
    "EventRef",
    "ProfileChanged",
    "SplitPart",
    "contact_failure_payload",
    "metrics_only_payload",
]

# (source, message id) of an event.
EventRef = tuple[str, str]

# A profile changed (segmentation reads these).
CHANGED_TOPIC = "profile.changed"


@dataclass(frozen=True)
class SplitPart:
    """The source side of a split announced on the target (a very large split is announced
    in several parts, each moving some of the events)."""

    source: str
    moved: tuple[EventRef, ...]


@dataclass(frozen=True)
class ProfileChanged:
    """A ``CHANGED_TOPIC`` message: the profile changed, with the events it gained, the
    customers merged into it and, for a split, where the moved events came from.

    The JSON keeps the shape stored outbox rows have: ``events`` always, ``merged`` and
    ``split`` when there are any, ``metrics_only`` when set (rows written before it have none:
    whole profiles are announced for them).

    ``metrics_only``: the change applied events to a profile that existed before and touched
    nothing but its metrics (no consent, no new profile), so segmentation is told the metrics
    alone, not the whole profile: loading and serialising whole profiles was about a quarter of
    the profile service's CPU on an event stream (docs/performance.md)."""

    events: tuple[EventRef, ...] = ()
    merged: tuple[str, ...] = ()
    split: SplitPart | None = None
    metrics_only: bool = False

    def payload(self) -> bytes:
        body: dict[str, Any] = {"events": [list(r) for r in self.events]}
        if self.merged:
            body["merged"] = list(self.merged)
        if self.split is not None:
            body["split"] = {
                "source": self.split.source,
                "moved": [list(r) for r in self.split.moved],
            }
        if self.metrics_only:
            body["metrics_only"] = True
        return json.dumps(body).encode()

    @classmethod
    def parse(cls, payload: bytes) -> ProfileChanged:
        body = json.loads(payload)
        split = body.get("split")
        return cls(
            events=tuple((s, m) for s, m in body.get("events", [])),
            merged=tuple(body.get("merged", [])),
            split=None
            if split is None
            else SplitPart(split["source"], tuple((s, m) for s, m in split["moved"])),
            metrics_only=bool(body.get("metrics_only", False)),
        )


def metrics_only_payload(payload: bytes) -> bytes:
    """A ``CHANGED_TOPIC`` payload of events alone (``{"events": [...]}``, as an event import's
    fold writes it, built in SQL) marked ``metrics_only``: spliced in, so the import's
    thousands of references are not parsed and written again."""
    body = payload.rstrip()
    if not body.endswith(b"}") or b'"metrics_only"' in body:
        raise ValueError("not an announcement of events alone")
    return body[:-1] + b', "metrics_only": true}'


# What most changes say: the profile changed, no new events.
CHANGED_NO_EVENTS = ProfileChanged().payload()

# Delivery failures of a customer's contacts, reported to the quality service.
CONTACT_FAILED_TOPIC = "quality.contact_failed"


def contact_failure_payload(event: EventFact) -> bytes | None:
    contacts = failed_contacts(event)
    if not contacts:
        return None
    return json.dumps({"contacts": contacts, "at": event.occurred_at.isoformat()}).encode()
