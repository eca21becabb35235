"""The profile's vocabulary."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from svod_profile.domain.consents import Consent
from svod_profile.domain.events import Metrics


@dataclass(frozen=True)
class Provenance:
    source: str
    channel: str
    observed_at: dt.datetime


@dataclass(frozen=True)
class TraitObservation:
    """One value of one trait as one source saw it."""

    field: str
    value: str
    provenance: Provenance


@dataclass(frozen=True)
class NameVariant:
    """One spelling of a name field as sources wrote it (a profile keeps every one)."""

    field: str
    value: str
    # The latest observation of this spelling.
    latest: TraitObservation
    first_seen: dt.datetime
    count: int


@dataclass(frozen=True)
class IdentifierObservation:
    type: str
    value: str
    namespace: str
    provenance: Provenance


@dataclass(frozen=True)
class RecordApplication:
    """A resolved customer record to apply to a profile."""

    customer_id: str
    source: str
    message_id: str
    provenance: Provenance
    traits: tuple[TraitObservation, ...]
    identifiers: tuple[IdentifierObservation, ...]


@dataclass(frozen=True)
class SourceSummary:
    source: str
    channel: str
    first_seen: dt.datetime
    last_seen: dt.datetime
    record_count: int


@dataclass(frozen=True)
class ProfileView:
    customer_id: str
    shown: dict[str, TraitObservation]
    identifiers: tuple[IdentifierObservation, ...]
    sources: tuple[SourceSummary, ...]
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int
    metrics: Metrics = field(default_factory=Metrics)
    consents: tuple[Consent, ...] = ()
    # Every spelling of the name fields ever observed, newest first per field.
    name_variants: tuple[NameVariant, ...] = ()


@dataclass(frozen=True)
class AnnouncedProfile:
    """What a change announcement tells segmentation of a profile: what its read model keeps
    (shown values, identifier types, source names, consents, metrics, times). Identifier
    values, provenance and name variants stay here: reading and serialising them for every
    announced change was a seventh of the profile process's CPU on an identify stream
    (docs/performance.md, "Profile and segmentation CPU per message")."""

    customer_id: str
    # Field -> shown value.
    shown: dict[str, str]
    identifier_types: tuple[str, ...]
    sources: tuple[str, ...]
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int
    metrics: Metrics = field(default_factory=Metrics)
    consents: tuple[Consent, ...] = ()
