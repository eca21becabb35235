"""Which of an event's identifiers a delivery failure is about."""

from __future__ import annotations

from svod_profile.domain.events import EventFact

CONTACT_FAILED = "contact_failed"
_KIND_OF_CHANNEL = {"email": "email", "sms": "phone", "call": "phone", "messenger": "phone"}


def failed_contacts(event: EventFact) -> list[tuple[str, str, str]]:
    """The (type, value, namespace) of the contacts that failed; empty for other events."""
    if event.type != CONTACT_FAILED:
        return []
    kind = _KIND_OF_CHANNEL.get(event.contact_channel)
    return [i for i in event.identifiers if i[0] == kind]
