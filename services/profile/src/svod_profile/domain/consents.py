"""Consents per contact channel: which statement of the person stands."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from svod_profile.domain.events import CAMPAIGN_UNSUBSCRIBED, EventFact

CHANNELS = ("email", "sms", "push", "messenger", "phone_call", "personal_data_processing")
OPTED_IN = "opted_in"
OPTED_OUT = "opted_out"
# Campaign contact channels as events name them -> consent channels.
CONTACT_TO_CONSENT = {
    "email": "email",
    "sms": "sms",
    "push": "push",
    "messenger": "messenger",
    "call": "phone_call",
}


@dataclass(frozen=True)
class Consent:
    channel: str
    status: str
    source: str
    at: dt.datetime
    legal_basis: str = ""


def supersedes(new: Consent, current: Consent | None) -> bool:
    """The newer statement stands; at the same moment an opt-out wins over an opt-in."""
    if current is None:
        return True
    if new.at != current.at:
        return new.at > current.at
    return new.status == OPTED_OUT and current.status == OPTED_IN


def merge_consents(consents: Iterable[Consent]) -> list[Consent]:
    """The standing consent per channel among several people's (used when they merge)."""
    standing: dict[str, Consent] = {}
    for consent in consents:
        if supersedes(consent, standing.get(consent.channel)):
            standing[consent.channel] = consent
    return [standing[channel] for channel in sorted(standing)]


def consent_from_event(event: EventFact) -> Consent | None:
    """An unsubscribe is an opt-out of that channel, as of the moment it happened."""
    if event.type != CAMPAIGN_UNSUBSCRIBED:
        return None
    channel = CONTACT_TO_CONSENT.get(event.contact_channel)
    if channel is None:
        return None
    return Consent(channel, OPTED_OUT, event.source, event.occurred_at, "unsubscribe")
