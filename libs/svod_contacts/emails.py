"""E-mail addresses, read the same way by every service: trimmed, lower-cased, a ``mailto:``
(copied from a web link) dropped.

Two verdicts, as for phones (possible vs valid):

- ``normalize_email``: whether a value is shaped like an address (``local@domain.tld``, no
  spaces) and so may be an identifier. A typo such as ``ivan..petrov@mail.ru`` still names the
  customer's mailbox as the source wrote it: refusing it would refuse the whole record.
- ``check_email``: whether the address is valid by ``email-validator``'s syntax rules (no
  network) - the data-quality verdict. A valid address is spelled in email-validator's normal
  form (NFC local part, Unicode domain), so both verdicts give one spelling of it.

Speed: ``validate_email`` costs ~35 µs. Most addresses are plain ASCII ``local@domain``; for
those the local part is checked with the dot-atom rule email-validator itself applies first,
and the domain (few distinct values per batch) is validated by email-validator once and cached.
Anything else (punycode domains too, which email-validator spells in Unicode) goes to
``validate_email`` whole. A unit test checks both paths agree.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final, NamedTuple

from email_validator import EmailNotValidError, validate_email

_MAX_LENGTH: Final = 254  # RFC 5321 path limit, as email-validator enforces it
# RFC 5322 atext; the same set email-validator's DOT_ATOM_TEXT accepts (lower case only here,
# since input is lower-cased first).
_ATEXT: Final = r"a-z0-9!#$%&'*+/=?^_`{|}~\-"
_SIMPLE: Final = re.compile(rf"([{_ATEXT}]+(?:\.[{_ATEXT}]+)*)@([a-z0-9.\-]+)")
# An address's shape: one "@", a dot in the domain, a top-level domain, no spaces.
_SHAPE: Final = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")


class EmailCheck(NamedTuple):
    """An address as checked: its normal form when valid, else why it is not valid."""

    normalized: str  # "" unless valid
    error: str  # "" when valid


def _prepared(raw: str) -> str:
    return raw.strip().lower().removeprefix("mailto:")


@lru_cache(maxsize=4096)
def _domain_error(domain: str) -> str:
    """email-validator's verdict on a domain alone ("" when fine); few distinct domains."""
    try:
        validate_email("x@" + domain, check_deliverability=False)
    except EmailNotValidError as error:
        return str(error)
    return ""


@lru_cache(maxsize=65536)
def check_email(raw: str) -> EmailCheck:
    """The normal form of a valid address, or why the value is not a valid address."""
    text = _prepared(raw)
    if not text:
        return EmailCheck("", "empty")
    match = _SIMPLE.fullmatch(text)
    # A punycode domain ("xn--80a1acny.xn--p1ai") is spelled in Unicode by email-validator.
    if match and len(text) <= _MAX_LENGTH and "xn--" not in match.group(2):
        error = _domain_error(match.group(2))
        return EmailCheck(text, "") if not error else EmailCheck("", error)
    try:
        return EmailCheck(validate_email(text, check_deliverability=False).normalized.lower(), "")
    except EmailNotValidError as error:
        return EmailCheck("", str(error))


@lru_cache(maxsize=65536)
def normalize_email(raw: str) -> str | None:
    """The one spelling of an address ("  Ivan@Mail.RU " -> "ivan@mail.ru"): a valid one in
    its normal form, one merely shaped like an address as written (lower case); None when the
    value is not shaped like an address."""
    text = _prepared(raw)
    if not _SHAPE.fullmatch(text):
        return None
    return check_email(text).normalized or text
