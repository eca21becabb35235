"""Phone numbers: E.164, kind (mobile/landline/other), validity and placeholder detection.

Reading a number is the shared rule (``svod_contacts.phones``: ``phonenumbers`` with RU as the
default region for national formats); validity is ``phonenumbers``'. Parsing with
``phonenumbers`` costs ~45 µs a number, too slow for every record of a batch, so plain Russian
numbers (the bulk of the data) take a fast path: the punctuation is stripped with one regex and
the 10-digit national number is classified against the *same* ``phonenumbers`` RU metadata,
compiled once (``svod_contacts.phones.russian_number_kind``, shared with identity).
Everything else (other countries, extensions, letters, anything the fast path does not accept
outright) goes through the shared parse. Unit tests check that both paths
agree, and that a valid number's E.164 is the shared ``normalize_phone``'s. Results are cached
per raw string as repeated numbers are common in a batch.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final, NamedTuple

import phonenumbers
from phonenumbers import PhoneNumberType

from svod_contacts.phones import e164, parse_phone, russian_number_kind

_NON_DIGITS: Final = re.compile(r"\D+")
# Digits with the usual separators and an optional leading plus; nothing else.
_PLAIN: Final = re.compile(r"\+?[\d\s().\-]+")
_MIN_RUN: Final = 8  # this many digits in a row up or down (12345678) mean a made-up number

_KINDS: Final = {
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE: "landline",
}
_LENGTH_REASONS: Final = {
    phonenumbers.ValidationResult.TOO_SHORT: "too short",
    phonenumbers.ValidationResult.TOO_LONG: "too long",
    phonenumbers.ValidationResult.INVALID_LENGTH: "wrong length",
    phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
}


class PhoneInfo(NamedTuple):
    """What is known about one phone value."""

    e164: str  # "" unless valid
    valid: bool  # a valid number per phonenumbers (placeholders may still be valid)
    placeholder: bool  # 0000000000, 9999999999, 1234567890, +7 916 000-00-00 ...
    kind: str  # "mobile", "landline", "other"; "" when invalid
    reason: str  # why it is invalid or a placeholder; "" when fine


def _runs(length: int) -> tuple[str, ...]:
    # Every run of `length` digits going up or down, 9 -> 0 wrapping ("1234567890").
    cycle = "0123456789" * 2
    up = {cycle[i : i + length] for i in range(10)}
    return tuple(sorted(up | {run[::-1] for run in up}))


_RUNS: Final = re.compile("|".join(_runs(_MIN_RUN)))


def placeholder_reason(digits: str) -> str:
    """Why a national number (digits only) looks made up, or ""."""
    if len(digits) < 5:
        return ""
    if digits.count(digits[0]) == len(digits):
        return "one repeated digit"
    if len(digits) >= 10 and digits.endswith("0000000"):
        return "subscriber number is all zeros"
    if len(digits) >= _MIN_RUN and _RUNS.search(digits):
        return "a run of consecutive digits"
    return ""


def _ru_kind(national: str) -> str:
    """The kind of a valid 10-digit RU national number, or "" if not a valid RU number."""
    kind = russian_number_kind(national)
    return "" if kind is None else kind.value


def _fast_national(text: str) -> str:
    """The 10-digit RU national number of a plainly written RU number, or ""."""
    if not _PLAIN.fullmatch(text):
        return ""
    digits = _NON_DIGITS.sub("", text)
    if text.startswith("+"):
        return digits[1:] if len(digits) == 11 and digits[0] == "7" else ""
    if len(digits) == 11 and digits[0] in "78":
        return digits[1:]  # 8 is the trunk prefix, 7 the country code typed without "+"
    return digits if len(digits) == 10 else ""


def _fast_path(text: str) -> PhoneInfo | None:
    national = _fast_national(text)
    if not national:
        return None
    kind = _ru_kind(national)
    if not kind:
        return None  # invalid or not RU: let phonenumbers explain
    reason = placeholder_reason(national)
    return PhoneInfo("+7" + national, True, bool(reason), kind, reason)


def _full_path(text: str) -> PhoneInfo:
    number = parse_phone(text)
    if number is None:
        reason = placeholder_reason(_NON_DIGITS.sub("", text))
        return PhoneInfo("", False, bool(reason), "", reason or "not a phone number")
    reason = placeholder_reason(phonenumbers.national_significant_number(number))
    if not phonenumbers.is_valid_number(number):
        possible = phonenumbers.is_possible_number_with_reason(number)
        why = _LENGTH_REASONS.get(possible, "not a valid number")
        return PhoneInfo("", False, bool(reason), "", reason or why)
    kind = _KINDS.get(phonenumbers.number_type(number), "other")
    return PhoneInfo(e164(number), True, bool(reason), kind, reason)


# Bounded like identity's caches (record.CACHED_RECORDS): at 65,536 entries the cache was still
# filling after an 8-minute soak of the issue #20 kind (26,513 entries, quality's RSS +11.7% after
# the warm-up); phones are mostly distinct per customer, so a larger cache buys few hits, and a
# miss on an E.164 number takes the fast path.
@lru_cache(maxsize=16_384)
def analyse_phone(raw: str) -> PhoneInfo:
    """Validity, E.164 form, kind and placeholder status of a phone as a source wrote it."""
    text = raw.strip()
    if not text:
        return PhoneInfo("", False, False, "", "empty")
    return _fast_path(text) or _full_path(text)
