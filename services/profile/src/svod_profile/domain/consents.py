"""Consents per contact channel: which statement of the person stands."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from svod_profile.domain.events import CAMPAIGN_UNSUBSCRIBED, EventFact

CHANNELS = ("email", "sms", "push", "messenger", "phone_call", "personal_data_processing")


class ConsentStatus(StrEnum):
    """A person's answer for a channel (the proto's ConsentStatus)."""

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


# How far ahead of the receiving clock a consent's time may be (clocks of tills and forms
# drift by seconds to minutes); a time further ahead is refused, not stored.
CLOCK_TOLERANCE = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Consent:
    channel: str
    status: str
    source: str
    # When the person gave the answer (as the source says).
    at: dt.datetime
    legal_basis: str = ""
    # When Svod received it; None for statements recorded before this was kept.
    received_at: dt.datetime | None = None


def too_far_ahead(at: dt.datetime, now: dt.datetime) -> bool:
    return at > now + CLOCK_TOLERANCE


def supersedes(new: Consent, current: Consent | None) -> bool:
    """Whether ``new``, received after ``current``, stands instead of it.

    The newer statement stands; at the same moment an opt-out wins over an opt-in. An opt-out
    also wins over an opt-in that is not in effect yet when the opt-out is received (dated
    ahead of it): nobody is contacted on the strength of an answer they withdrew.
    """
    if current is None:
        return True
    if new.status == ConsentStatus.OPTED_OUT and current.status == ConsentStatus.OPTED_IN:
        received = new.received_at or new.at
        if current.at > received:
            return True
    if new.at != current.at:
        return new.at > current.at
    return new.status == ConsentStatus.OPTED_OUT and current.status == ConsentStatus.OPTED_IN


def _arrival(consent: Consent) -> tuple[dt.datetime, dt.datetime]:
    return (consent.received_at or consent.at, consent.at)


def merge_consents(consents: Iterable[Consent]) -> list[Consent]:
    """The standing consent per channel among several people's (used when they merge): the
    statements are taken in the order they were received, as if one person had made them."""
    standing: dict[str, Consent] = {}
    for consent in sorted(consents, key=_arrival):
        if supersedes(consent, standing.get(consent.channel)):
            standing[consent.channel] = consent
    return [standing[channel] for channel in sorted(standing)]


def consent_from_event(event: EventFact, received_at: dt.datetime | None = None) -> Consent | None:
    """An unsubscribe is an opt-out of that channel, as of the moment it happened."""
    if event.type != CAMPAIGN_UNSUBSCRIBED:
        return None
    channel = CONTACT_TO_CONSENT.get(event.contact_channel)
    if channel is None:
        return None
    return Consent(
        channel,
        ConsentStatus.OPTED_OUT,
        event.source,
        event.occurred_at,
        "unsubscribe",
        received_at=received_at,
    )
