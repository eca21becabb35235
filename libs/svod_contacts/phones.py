"""Phone numbers in E.164, read the same way by every service.

A value is a phone number when ``phonenumbers`` parses it (Russia, ``DEFAULT_REGION``, for
national formats such as ``8 (916) 123-45-67``) and calls it *possible* (a length the country's
numbering plan allows). Whether a possible number is also *valid* (assigned by the plan) is a
data-quality verdict, not a reason to refuse an identifier: a till's placeholder
(+7 000 000-00-00) must still be recognised as that placeholder.
"""

from __future__ import annotations

import re
from enum import StrEnum
from functools import lru_cache
from typing import Final

import phonenumbers

DEFAULT_REGION: Final = "RU"


def parse_phone(raw: str) -> phonenumbers.PhoneNumber | None:
    """The number as ``phonenumbers`` reads it, possible or not; None when it does not parse."""
    try:
        return phonenumbers.parse(raw.strip(), DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return None


def e164(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# "+7" and ten ASCII digits: the E.164 spelling of every Russian (and Kazakh) number, and
# what most sources send. phonenumbers reads each such value as itself, possible (tests compare
# it with phonenumbers for every two-digit prefix), so it is answered without parsing: issue
# #20, phonenumbers.parse was 9% of ingestion's samples while it accepted a TrackStream load
# (the cache below misses on every new customer's number).
_RU_E164 = re.compile(r"\+7[0-9]{10}")


def normalize_phone(raw: str) -> str | None:
    """E.164 ("8 (916) 123-45-67" -> "+79161234567"), or None when it is not a phone number."""
    if len(raw) == 12 and _RU_E164.fullmatch(raw):
        return raw
    return _parsed_phone(raw)


@lru_cache(maxsize=65536)
def _parsed_phone(raw: str) -> str | None:
    number = parse_phone(raw)
    if number is None or not phonenumbers.is_possible_number(number):
        return None
    return e164(number)


class NumberKind(StrEnum):
    """What a valid number is for, as ``phonenumbers.number_type`` says, in three kinds."""

    MOBILE = "mobile"
    LANDLINE = "landline"  # FIXED_LINE alone: a household's shared line
    OTHER = "other"  # toll-free, premium, personal, FIXED_LINE_OR_MOBILE ...


# A Russian national number's kind straight from the RU metadata phonenumbers carries, compiled
# once: ``phonenumbers.number_type`` matches the same patterns but costs 10-15 us a number in
# Python (region look-up, a pattern cache per call) against about 1 us here (timeit, 20,000
# random +79 numbers). Issue #20: at a million customers identity's phone checks missed their
# cache on most candidates and were 10% of its CPU; quality's standardising had the same path.
_NATIONAL_LENGTH: Final = 10


def _ru_metadata() -> phonenumbers.PhoneMetadata:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(DEFAULT_REGION)
    assert metadata is not None, "phonenumbers always carries Russia's metadata"
    return metadata


def _pattern_for_ten_digits(desc: phonenumbers.PhoneNumberDesc | None) -> str:
    if desc is None or not desc.national_number_pattern:
        return ""
    if desc.possible_length and _NATIONAL_LENGTH not in desc.possible_length:
        return ""
    return desc.national_number_pattern


def _compiled(*patterns: str) -> re.Pattern[str] | None:
    alternatives = [f"(?:{p})" for p in patterns if p]
    return re.compile("|".join(alternatives)) if alternatives else None


_RU: Final = _ru_metadata()
_RU_LEADING: Final = re.compile(_RU.leading_digits or ".")
_RU_GENERAL: Final = _compiled(_pattern_for_ten_digits(_RU.general_desc))
# The special types phonenumbers checks before fixed line and mobile, folded in one alternation.
_RU_SPECIAL: Final = _compiled(
    *(
        _pattern_for_ten_digits(getattr(_RU, name))
        for name in (
            "premium_rate",
            "toll_free",
            "shared_cost",
            "voip",
            "personal_number",
            "pager",
            "uan",
            "voicemail",
        )
    )
)
_RU_FIXED: Final = _compiled(_pattern_for_ten_digits(_RU.fixed_line))
_RU_MOBILE: Final = _compiled(_pattern_for_ten_digits(_RU.mobile))


def _full(pattern: re.Pattern[str] | None, national: str) -> bool:
    return pattern is not None and pattern.fullmatch(national) is not None


def russian_number_kind(national: str) -> NumberKind | None:
    """The kind of a valid 10-digit Russian national number (digits only, no trunk prefix),
    exactly as ``phonenumbers.number_type`` would say; None when phonenumbers must decide
    (not valid in Russia's plan, or a +7 number of Kazakhstan's)."""
    if len(national) != _NATIONAL_LENGTH or not _RU_LEADING.match(national):
        return None
    if not _full(_RU_GENERAL, national):
        return None
    if _full(_RU_SPECIAL, national):
        return NumberKind.OTHER
    fixed, mobile = _full(_RU_FIXED, national), _full(_RU_MOBILE, national)
    if fixed:
        # Both patterns matching is phonenumbers' FIXED_LINE_OR_MOBILE.
        mixed = mobile or _RU.same_mobile_and_fixed_line_pattern
        return NumberKind.OTHER if mixed else NumberKind.LANDLINE
    return NumberKind.MOBILE if mobile else None
