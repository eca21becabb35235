"""Ad-audience files: identifiers normalised and SHA-256 hashed as ad platforms expect.

Every platform here (VK Ads user lists, Yandex Audiences CRM uploads, Meta customer lists)
matches on the same normal form before hashing: an e-mail trimmed and lower-cased, a phone as
its E.164 digits without the "+" (country code first: 79161234567). The hash is the
lower-case hex SHA-256 of the UTF-8 normal form. Meta publishes two test vectors
(John_Smith@gmail.com and a US (650)555-1212); the unit tests check both.
"""

from __future__ import annotations

import hashlib

from svod_contacts import emails, phones
from svod_segmentation.domain.activation import AdPlatform, Contact


def normalize_email(value: str) -> str:
    """The address as every Svod service spells it (``svod_contacts``): trimmed, lower-cased;
    "" for a value not shaped like an address (nothing to match on)."""
    return emails.normalize_email(value) or ""


def normalize_phone(value: str) -> str:
    """E.164 digits without "+" (the platforms' form) of the number every Svod service reads
    (``svod_contacts``: national numbers as Russian ones); "" when it is not a phone number."""
    return (phones.normalize_phone(value) or "").lstrip("+")


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def hashed_email(value: str) -> str:
    normal = normalize_email(value)
    return sha256_hex(normal) if normal else ""


def hashed_phone(value: str) -> str:
    normal = normalize_phone(value)
    return sha256_hex(normal) if normal else ""


def audience_files(
    platform: AdPlatform, contacts: list[Contact]
) -> dict[str, tuple[list[str] | None, list[list[str]]]]:
    """The files of an audience: suffix -> (header or None, rows). Each person appears once
    (their e-mail and phone as shown on the profile); rows without any hash are left out."""
    pairs = [(hashed_email(c.email), hashed_phone(c.phone)) for c in contacts]
    if platform is AdPlatform.VK_ADS:
        # VK Ads takes one identifier kind per list: one hash per line, no header.
        return {
            "email.txt": (None, [[e] for e, _ in pairs if e]),
            "phone.txt": (None, [[p] for _, p in pairs if p]),
        }
    if platform is AdPlatform.YANDEX_AUDIENCES:
        return {"csv": (["phone", "email"], [[p, e] for e, p in pairs if e or p])}
    return {"csv": (["email", "phone"], [[e, p] for e, p in pairs if e or p])}
