"""Phone numbers in E.164, read the same way by every service.

A value is a phone number when ``phonenumbers`` parses it (Russia, ``DEFAULT_REGION``, for
national formats such as ``8 (916) 123-45-67``) and calls it *possible* (a length the country's
numbering plan allows). Whether a possible number is also *valid* (assigned by the plan) is a
data-quality verdict, not a reason to refuse an identifier: a till's placeholder
(+7 000 000-00-00) must still be recognised as that placeholder.
"""

from __future__ import annotations

import re
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
