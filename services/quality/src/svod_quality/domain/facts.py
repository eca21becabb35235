"""What the report and the score need to know about one profile (:class:`ProfileFacts`), learnt
from the profile as the profile service shows it (:class:`ProfileSnapshot`).

* a valid phone: valid, not a placeholder, and not failed delivery since it was last confirmed;
* a valid e-mail: valid, not disposable, not a role address, and not bounced since confirmed;
* contact confirmation: the latest time a source gave one of the profile's phones or e-mails;
* open flags: what the validation rules for every source (source "") find in the shown data.

Bounces and delivery failures are looked up by :func:`identifier_hash` so that the quality
service never has to keep the addresses themselves: an HMAC under the deployment's secret
(SVOD_HASH_SECRET), so that the hashes of phone numbers cannot be found by trying them all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from svod_contacts.identifiers import IdentifierType
from svod_quality.domain.dates import birth_date_problem
from svod_quality.domain.emails import analyse_email
from svod_quality.domain.model import Address, FindingAction, Identifier, RawRecord
from svod_quality.domain.phones import analyse_phone
from svod_quality.domain.rules import RuleSet
from svod_quality.domain.scoring import ProfileFacts
from svod_quality.domain.standardize import standardize_and_validate
from svod_runtime.hashing import DEVELOPMENT_SECRET, keyed_hash

# The identifiers quality checks as contacts (reachable, valid, duplicated).
CONTACT_TYPES: Final = (IdentifierType.PHONE, IdentifierType.EMAIL)
# Rules of this "source" are the ones for every source.
ALL_SOURCES = ""


@dataclass(frozen=True, slots=True)
class ObservedIdentifier:
    type: str
    value: str
    namespace: str = ""
    observed_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class ProfileSnapshot:
    """A profile's shown values (proto ``svod.profile.v1.Profile``), as plain data."""

    customer_id: str
    identifiers: tuple[ObservedIdentifier, ...] = ()
    first_name: str = ""
    last_name: str = ""
    middle_name: str = ""
    birth_date: dt.date | None = None
    gender: str = "unknown"
    addresses: tuple[Address, ...] = ()
    sources: tuple[str, ...] = ()
    attributes: Mapping[str, str] = field(default_factory=dict)


def normalized_contact(id_type: str, raw: str) -> str:
    """The normalised form of a phone (E.164) or e-mail, or "" when it is not a valid one."""
    if id_type == IdentifierType.PHONE:
        return analyse_phone(raw).e164
    if id_type == IdentifierType.EMAIL:
        info = analyse_email(raw)
        return info.normalized if info.valid else ""
    return ""


def identifier_hash(
    id_type: str, value: str, namespace: str = "", secret: bytes = DEVELOPMENT_SECRET
) -> bytes:
    """A stable key for a normalised identifier that does not reveal it (HMAC-SHA-256)."""
    return keyed_hash(secret, f"{id_type}\x1f{namespace}\x1f{value}")


def as_record(profile: ProfileSnapshot) -> RawRecord:
    return RawRecord(
        identifiers=[Identifier(i.type, i.value, i.namespace) for i in profile.identifiers],
        first_name=profile.first_name,
        last_name=profile.last_name,
        middle_name=profile.middle_name,
        birth_date=profile.birth_date,
        gender=profile.gender,
        addresses=list(profile.addresses),
        attributes=dict(profile.attributes),
    )


def _deliverable(
    ident: ObservedIdentifier, failures: Mapping[bytes, dt.datetime], secret: bytes
) -> bool:
    failed_at = failures.get(identifier_hash(ident.type, ident.value, ident.namespace, secret))
    if failed_at is None:
        return True
    return ident.observed_at is not None and ident.observed_at > failed_at


def collect_facts(
    profile: ProfileSnapshot,
    rules: RuleSet,
    failures: Mapping[bytes, dt.datetime],
    today: dt.date,
    secret: bytes = DEVELOPMENT_SECRET,
) -> ProfileFacts:
    """The facts of one profile; ``failures`` maps identifier hashes (keyed with ``secret``)
    to their last failure."""
    contacts = [i for i in profile.identifiers if i.type in CONTACT_TYPES]
    deliverable = {i: _deliverable(i, failures, secret) for i in contacts}
    valid_phone = valid_email = False
    for ident in contacts:
        if not deliverable[ident]:
            continue
        if ident.type == IdentifierType.PHONE:
            phone = analyse_phone(ident.value)
            valid_phone = valid_phone or (phone.valid and not phone.placeholder)
        else:
            email = analyse_email(ident.value)
            valid_email = valid_email or (email.valid and not email.disposable and not email.role)
    present: set[str] = {str(t) for t in CONTACT_TYPES if any(i.type == t for i in contacts)}
    present |= {name for name in ("first_name", "last_name") if getattr(profile, name).strip()}
    if profile.birth_date is not None:
        present.add("birth_date")
    if any(a.city or a.address_line or a.postal_code for a in profile.addresses):
        present.add("address")
    confirmed = [i.observed_at for i in contacts if i.observed_at is not None]
    result = standardize_and_validate(as_record(profile), rules, ALL_SOURCES, today)
    return ProfileFacts(
        customer_id=profile.customer_id,
        sources=profile.sources,
        has_valid_phone=valid_phone,
        has_valid_email=valid_email,
        fields_present=frozenset(present),
        birth_date_plausible=profile.birth_date is not None
        and not birth_date_problem(profile.birth_date, today),
        address_complete=any(a.city and a.address_line for a in profile.addresses),
        contact_confirmed_at=max(confirmed) if confirmed else None,
        open_flags=sum(1 for f in result.findings if f.action is not FindingAction.CORRECTED),
        undeliverable=not all(deliverable.values()),
    )
