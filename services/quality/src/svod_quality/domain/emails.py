"""E-mail addresses: syntax and normal form (the shared rule, ``svod_contacts.emails``:
``email-validator``, no network, lower case), typo suggestions, disposable and role addresses.

Typos are never applied: the caller gets a suggestion to confirm with the customer.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final, NamedTuple

from rapidfuzz.distance import OSA

from svod_contacts.emails import check_email
from svod_quality.domain.datafiles import read_rows, read_words

ROLE_LOCAL_PARTS: Final = frozenset(
    {
        "abuse",
        "admin",
        "administrator",
        "billing",
        "buh",
        "buhgalter",
        "buhgalteria",
        "contact",
        "contacts",
        "do-not-reply",
        "donotreply",
        "feedback",
        "hello",
        "help",
        "hostmaster",
        "hr",
        "info",
        "job",
        "jobs",
        "mail",
        "manager",
        "marketing",
        "newsletter",
        "no-reply",
        "no_reply",
        "noreply",
        "office",
        "order",
        "orders",
        "postmaster",
        "pr",
        "press",
        "reception",
        "reklama",
        "root",
        "sales",
        "secretary",
        "security",
        "service",
        "shop",
        "support",
        "team",
        "webmaster",
        "zakaz",
    }
)

DISPOSABLE_DOMAINS: Final = read_words("disposable_email_domains.txt")


def _load_domains() -> tuple[frozenset[str], frozenset[str], dict[str, str]]:
    popular: set[str] = set()
    legit: set[str] = set()
    typos: dict[str, str] = {}
    for row in read_rows("email_domains.txt"):
        if row[0] == "popular":
            popular.add(row[1])
        elif row[0] == "legit":
            legit.add(row[1])
        elif row[0] == "typo":
            typos[row[1]] = row[2]
    return frozenset(popular), frozenset(legit), typos


POPULAR_DOMAINS, LEGIT_DOMAINS, DOMAIN_TYPOS = _load_domains()
_POPULAR_LIST: Final = sorted(POPULAR_DOMAINS)


class EmailInfo(NamedTuple):
    """What is known about one e-mail value."""

    normalized: str  # lower case; email-validator's normalised form when valid
    valid: bool
    reason: str  # why it is invalid; "" when valid
    suggestion: str  # the address with a known domain typo fixed; "" if none
    disposable: bool
    role: bool


@lru_cache(maxsize=4096)
def suggest_domain(domain: str) -> str:
    """The domain the writer probably meant, or "" when the domain looks intended."""
    if domain in DOMAIN_TYPOS:
        return DOMAIN_TYPOS[domain]
    if domain in POPULAR_DOMAINS or domain in LEGIT_DOMAINS or len(domain) < 6:
        return ""  # short domains are one edit away from too many real ones
    # One edit (incl. swapping two letters, "gmial") from a big provider.
    for candidate in _POPULAR_LIST:
        if OSA.distance(domain, candidate, score_cutoff=1) <= 1:
            return candidate
    return ""


def is_disposable(domain: str) -> bool:
    if domain in DISPOSABLE_DOMAINS:
        return True
    # Subdomains of a throw-away service ("abc.mailinator.com") are throw-away too.
    parts = domain.split(".")
    return any(".".join(parts[i:]) in DISPOSABLE_DOMAINS for i in range(1, len(parts) - 1))


def is_role(local: str) -> bool:
    return local.split("+", 1)[0] in ROLE_LOCAL_PARTS


@lru_cache(maxsize=65536)
def analyse_email(raw: str) -> EmailInfo:
    """Validity, lower-case form, typo suggestion, disposable and role flags of an address."""
    text = raw.strip().lower()
    if not text:
        return EmailInfo("", False, "empty", "", False, False)
    normalized, error = check_email(text)
    if error:
        # "ivan@rambler.r" may be invalid and still have an obvious fix.
        return EmailInfo(text, False, error, _suggestion(text), False, False)
    local, _, domain = normalized.rpartition("@")
    return EmailInfo(
        normalized, True, "", _suggestion(normalized), is_disposable(domain), is_role(local)
    )


def _suggestion(address: str) -> str:
    local, _, domain = address.rpartition("@")
    fixed = suggest_domain(domain) if local else ""
    if not fixed:
        return ""
    candidate = f"{local}@{fixed}"
    return candidate if not check_email(candidate).error else ""
