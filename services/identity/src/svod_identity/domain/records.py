"""Building an incoming record from what a source sent: validation and normalisation."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from svod_identity.domain.identifiers import normalize_identifiers
from svod_identity.domain.model import IncomingRecord, RecordRef
from svod_runtime import bounds
from svod_runtime.errors import InvalidArgument, ViolationCollector

MAX_MESSAGE_ID = bounds.MAX_MESSAGE_ID
GENDERS = ("", "unspecified", "female", "male")


@dataclass(frozen=True)
class RawRecord:
    """What the servicer hands over, still in the source's spelling."""

    source: str
    message_id: str
    channel: str
    observed_at: dt.datetime | None
    identifiers: list[tuple[str, str, str]]
    name: dict[str, str] = field(default_factory=dict)
    birth_date: tuple[int, int, int] | None = None
    gender: str = ""
    addresses: list[dict[str, str]] = field(default_factory=list)


def validate_ref(source: str, message_id: str, errors: ViolationCollector, prefix: str) -> None:
    bounds.check_record_ref(source, message_id, prefix, errors)


def build_record(raw: RawRecord, now: dt.datetime) -> IncomingRecord:
    errors = ViolationCollector()
    validate_ref(raw.source, raw.message_id, errors, "record_ref")
    # The bounds every service applies (svod_runtime.bounds), before anything is normalised.
    bounds.check_identifier_texts(raw.identifiers, "identifiers", errors)
    bounds.check_name(raw.name, "name", errors)
    bounds.check_addresses(raw.addresses, "addresses", errors)
    if raw.gender not in GENDERS:
        errors.add("gender", "unknown gender")
    if errors.violations:
        errors.raise_if_any()
    birth_date = None
    if raw.birth_date is not None:
        try:
            birth_date = dt.date(*raw.birth_date)
        except ValueError:
            errors.add("birth_date", "not a calendar date")
    try:
        identifiers = normalize_identifiers(raw.identifiers)
    except InvalidArgument as invalid:
        errors.violations.extend(invalid.violations)
        identifiers = ()
    errors.raise_if_any()
    attributes: dict[str, Any] = {
        key: " ".join(value.split()) for key, value in raw.name.items() if value.strip()
    }
    if birth_date is not None:
        attributes["birth_date"] = birth_date.isoformat()
    if raw.gender:
        attributes["gender"] = raw.gender
    if raw.addresses:
        attributes["addresses"] = [
            {k: v.strip() for k, v in address.items() if v.strip()} for address in raw.addresses
        ]
    return IncomingRecord(
        ref=RecordRef(raw.source, raw.message_id),
        channel=raw.channel or "unspecified",
        observed_at=raw.observed_at or now,
        identifiers=identifiers,
        attributes=attributes,
    )
