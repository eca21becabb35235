"""What the profile service tells others through its outbox: topics and payloads."""

from __future__ import annotations

import json

from svod_profile.domain.contacts import failed_contacts
from svod_profile.domain.events import EventFact

__all__ = ["CHANGED_TOPIC", "CONTACT_FAILED_TOPIC", "contact_failure_payload"]

# A profile changed (segmentation reads these).
CHANGED_TOPIC = "profile.changed"

# Delivery failures of a customer's contacts, reported to the quality service.
CONTACT_FAILED_TOPIC = "quality.contact_failed"


def contact_failure_payload(event: EventFact) -> bytes | None:
    contacts = failed_contacts(event)
    if not contacts:
        return None
    return json.dumps({"contacts": contacts, "at": event.occurred_at.isoformat()}).encode()
