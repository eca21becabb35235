"""Phones, e-mails and cards as evidence: which values identify a person and which do not.

A till placeholder (+7 000 000-00-00) is shared by thousands of unrelated customers and a
landline by a whole family; neither may count as "same phone, same person".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache

import phonenumbers

# One spelling of phones and e-mails for every service; re-exported under the names the
# matcher has always used.
from svod_contacts.emails import normalize_email
from svod_contacts.phones import DEFAULT_REGION, NumberKind, normalize_phone, russian_number_kind

__all__ = [
    "DEFAULT_REGION",
    "GENERIC_LOCAL_PARTS",
    "PORTABLE_LOGIN_MIN_LENGTH",
    "EmailAddress",
    "email_address",
    "is_dummy_phone",
    "is_landline",
    "is_placeholder_phone",
    "normalize_card",
    "normalize_email",
    "normalize_phone",
]

# Counting runs cashiers and operators type when the customer gives no number (123-45-67).
_COUNTING = "0123456789"
_PLACEHOLDER_SUBSCRIBERS = frozenset(
    run
    for digits in (_COUNTING, _COUNTING[::-1])
    for run in (digits[i : i + 7] for i in range(len(digits) - 6))
)
_PLACEHOLDER_NATIONAL = frozenset({"1234567890", "9123456789", "9876543210", "9001234567"})

# Mailbox names that say nothing about who owns the address.
GENERIC_LOCAL_PARTS = frozenset(
    {
        "info",
        "mail",
        "email",
        "admin",
        "office",
        "sales",
        "support",
        "noreply",
        "no-reply",
        "test",
        "shop",
        "order",
        "orders",
        "manager",
        "contact",
        "hello",
        "post",
        "none",
        "nomail",
        "net",
        "no",
    }
)
# Domains that deliver to the same mailbox (Yandex serves one login under all of these).
_DOMAIN_ALIASES = {
    "ya.ru": "yandex.ru",
    "yandex.com": "yandex.ru",
    "yandex.by": "yandex.ru",
    "yandex.kz": "yandex.ru",
    "yandex.ua": "yandex.ru",
    "narod.ru": "yandex.ru",
    "googlemail.com": "gmail.com",
}
# Shortest login (separators aside) whose reuse at another provider says something.
PORTABLE_LOGIN_MIN_LENGTH = 6
_CARD_SEPARATORS = re.compile(r"[\s\-.]+")
_LOCAL_SEPARATORS = re.compile(r"[._-]+")
# A login ending in a year after a letter: "maksim.sergeev60", "ivan1981" (not "irina553", not a
# run of digits a provider appended).
_LOGIN_YEAR = re.compile(r"[a-z](\d{2}|(?:19|20)\d{2})$")


_E164 = re.compile(r"\+([1-9]\d{3,19})")
_RU_E164_LENGTH = 12


def _from_e164(e164: str) -> phonenumbers.PhoneNumber | None:
    """The number ``phonenumbers.parse`` would give for a plain E.164 string, built directly;
    None when the string is anything else (then ``parse`` decides). Stored phones are E.164,
    and every candidate's phone is looked at once: ``parse`` (its national-prefix and format
    handling, needless here) was a fifth of a bulk resolve's CPU.
    """
    match = _E164.fullmatch(e164)
    if match is None:
        return None
    digits = match.group(1)
    # Country codes are prefix-free: at most one of the first 1-3 digits is one.
    for size in (1, 2, 3):
        code = int(digits[:size])
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            national = digits[size:]
            # Leading zeros (Italy), lengths parse refuses and anything that could start with
            # a national prefix parse might strip (+7 8..., +1 1...) are left to parse.
            prefix = _national_prefix(code)
            if (
                national.startswith("0")
                or not 2 <= len(national) <= 17
                or (prefix is not None and prefix.match(national))
            ):
                return None
            return phonenumbers.PhoneNumber(country_code=code, national_number=int(national))
    return None


@cache
def _national_prefix(code: int) -> re.Pattern[str] | None:
    """The national prefix ``parse`` strips for a country code's numbers, if it has one."""
    region = phonenumbers.region_code_for_country_code(code)
    metadata = (
        phonenumbers.PhoneMetadata.metadata_for_nongeo_region(code)
        if region == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY
        else phonenumbers.PhoneMetadata.metadata_for_region(region)
    )
    pattern = metadata.national_prefix_for_parsing if metadata is not None else None
    return re.compile(pattern) if pattern else None


# Parsed phones and e-mails kept: about 300 B each (tracemalloc); 262,144 phones and 65,536
# e-mails still filled over the issue #20 soak (see record.CACHED_RECORDS, which this matches:
# the views that use them are kept as long).
CACHED_CONTACTS = 16_384


@lru_cache(maxsize=CACHED_CONTACTS)
def _phone_facts(e164: str) -> tuple[bool, bool, str] | None:
    """(valid, fixed line, national number) from one parse; None when it does not parse.

    Parsing and matching against the numbering plan is the costly part of looking at a phone,
    and every check below needs it: done once per number. A Russian number ("+7" and ten
    digits) is typed from the same metadata without phonenumbers' own calls (10 -> 1 us a
    number): at a million customers most candidates' phones miss this cache.
    """
    if len(e164) == _RU_E164_LENGTH and e164.startswith("+7") and e164.isascii():
        national = e164[2:]
        russian = russian_number_kind(national) if national.isdigit() else None
        if russian is not None:
            return True, russian is NumberKind.LANDLINE, national
    number = _from_e164(e164)
    if number is None:
        try:
            number = phonenumbers.parse(e164, None)
        except phonenumbers.NumberParseException:
            return None
    kind = phonenumbers.number_type(number)
    valid = kind != phonenumbers.PhoneNumberType.UNKNOWN
    return valid, kind == phonenumbers.PhoneNumberType.FIXED_LINE, str(number.national_number)


def _one_digit(subscriber: str) -> bool:
    """All seven subscriber digits the same (000-00-00, 999-99-99): nobody's number.

    Only that, not "two distinct digits": 212-22-12 or 500-50-05 are ordinary numbers that
    about 0.06% of subscribers have (10 + 45 * 126 of the 10^7 seven-digit strings), and
    flagging them would keep those customers' events from ever being attributed by phone. A
    shared value that is no placeholder by its pattern is caught by the frequency blocklist.
    """
    return len(set(subscriber)) == 1


def is_placeholder_phone(e164: str) -> bool:
    """True for numbers that identify nobody by their pattern alone: invalid, the subscriber
    digits all one digit, a counting run (123-45-67, 765-43-21), a known dummy number."""
    facts = _phone_facts(e164)
    if facts is None or not facts[0]:
        return True
    national = facts[2]
    subscriber = national[-7:]
    return (
        _one_digit(subscriber)
        or subscriber in _PLACEHOLDER_SUBSCRIBERS
        or national in _PLACEHOLDER_NATIONAL
    )


def is_dummy_phone(e164: str) -> bool:
    """The placeholders no real customer can have: invalid numbers, the subscriber digits all
    one digit (+7 999 999-99-99), known dummy national numbers. Counting runs (123-45-67) are
    left out: they are also real numbers, and the frequency blocklist catches them when
    shared."""
    facts = _phone_facts(e164)
    if facts is None or not facts[0]:
        return True
    national = facts[2]
    return _one_digit(national[-7:]) or national in _PLACEHOLDER_NATIONAL


def is_landline(e164: str) -> bool:
    """Fixed-line numbers are shared by a household, so they are weaker evidence."""
    facts = _phone_facts(e164)
    return facts is not None and facts[1]


@dataclass(frozen=True)
class EmailAddress:
    """An address split for comparison, with provider aliases folded."""

    local: str
    domain: str

    @property
    def address(self) -> str:
        return f"{self.local}@{self.domain}"

    @property
    def mailbox_name(self) -> str:
        """The local part without separators, comparable across providers: Gmail ignores dots,
        Yandex equates dots and hyphens, and people swap "." and "_" between accounts."""
        return _LOCAL_SEPARATORS.sub("", self.local)

    @property
    def distinctive_local(self) -> bool:
        """Whether the mailbox name alone says who it is ("ivan.petrov85", not "info")."""
        return len(self.mailbox_name) >= 4 and self.local not in GENERIC_LOCAL_PARTS

    @property
    def login_year(self) -> str:
        """The year a login ends in after a letter ("60" of maksim.sergeev60, "1981" of
        ivan1981), "" if none: Russians often put their birth year in a login, as a 2- or
        4-digit number."""
        found = _LOGIN_YEAR.search(self.mailbox_name)
        return found.group(1) if found else ""

    @property
    def portable_login(self) -> bool:
        """Whether the same login at another provider is evidence of the same owner: Russians
        keep one login across mail.ru, Yandex, Gmail and bk.ru, but a short one ("olga",
        "ivan7") is taken by someone else at every provider."""
        return len(self.mailbox_name) >= PORTABLE_LOGIN_MIN_LENGTH and self.distinctive_local


@lru_cache(maxsize=CACHED_CONTACTS)
def email_address(raw: str) -> EmailAddress | None:
    """Comparison form: provider aliases folded, "+tags" dropped, Gmail dots ignored."""
    value = normalize_email(raw)
    if value is None:
        return None
    local, _, domain = value.rpartition("@")
    domain = _DOMAIN_ALIASES.get(domain, domain)
    if domain in {"gmail.com", "yandex.ru"}:
        local = local.split("+", 1)[0]
    if domain == "gmail.com":
        local = local.replace(".", "")
    if domain == "yandex.ru":
        # Yandex treats "ivan-petrov" and "ivan.petrov" as one login.
        local = local.replace("-", ".")
    return EmailAddress(local, domain)


def normalize_card(raw: str) -> str | None:
    """Card number without separators; None for empty or one-digit fillers ("0000")."""
    value = _CARD_SEPARATORS.sub("", raw).upper()
    if not value or len(set(value)) == 1:
        return None
    return value
