"""Postal addresses: one spelling per abbreviation, tidy spacing and punctuation, the postcode.

Abbreviations become the short forms of Russian postal practice (``ул.``, ``д.``, ``кв.``,
``просп.``, ``корп.``, ``р-н`` ...), whatever the source wrote (``улица``, ``Ул``, ``пр-т``).
Single-letter ones (``г``, ``д``, ``к``, ``ш``) are touched only where they cannot be a person's
initial (``ул. К. Маркса``): before a number, or when written in lower case.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

from svod_quality.domain.model import Address

# Spelling (lower case, without the dot) -> canonical form.
_CANONICAL: Final = {
    "г": "г.",
    "гор": "г.",
    "город": "г.",
    "ул": "ул.",
    "улица": "ул.",
    "д": "д.",
    "дом": "д.",
    "кв": "кв.",
    "квартира": "кв.",
    "просп": "просп.",
    "проспект": "просп.",
    "пр-т": "просп.",
    "пр-кт": "просп.",
    "пркт": "просп.",
    "пер": "пер.",
    "переулок": "пер.",
    "к": "корп.",
    "корп": "корп.",
    "корпус": "корп.",
    "стр": "стр.",
    "строение": "стр.",
    "обл": "обл.",
    "область": "обл.",
    "р-н": "р-н",
    "р-он": "р-н",
    "район": "р-н",
    "наб": "наб.",
    "набережная": "наб.",
    "ш": "ш.",
    "шоссе": "ш.",
    "б-р": "б-р",
    "бул": "б-р",
    "бульв": "б-р",
    "бульвар": "б-р",
    "пл": "пл.",
    "площадь": "пл.",
    "мкр": "мкр.",
    "мкрн": "мкр.",
    "мкр-н": "мкр.",
    "микрорайон": "мкр.",
    "пр-д": "пр-д",
    "проезд": "пр-д",
    "оф": "оф.",
    "офис": "оф.",
    "пос": "пос.",
    "посёлок": "пос.",
    "поселок": "пос.",
    "респ": "респ.",
    "республика": "респ.",
}
# Abbreviations that precede a number and may be glued to it: "д5", "кв.12", "к2".
_NUMBERED: Final = frozenset({"д", "дом", "кв", "квартира", "к", "корп", "корпус", "стр", "оф"})
_SINGLE_LETTER: Final = frozenset({"г", "д", "к", "ш"})

_WORDS: Final = "|".join(sorted((re.escape(w) for w in _CANONICAL), key=len, reverse=True))
_FIRST_LETTERS: Final = "".join(sorted({w[0] for w in _CANONICAL}))
# A whole-word abbreviation with its dot, or without one when a digit or a non-letter follows.
# It runs on the lower-cased line: a case-insensitive pattern is 3x slower, and the lookahead on
# the first letter lets the engine skip most positions cheaply.
_ABBREVIATION: Final = re.compile(
    rf"(?=[{_FIRST_LETTERS}])(?<![\w-])({_WORDS})(?:(\.)\s*|\s*(?=\d|[^\w-]|$))"
)
_ABBREVIATION_ANY_CASE: Final = re.compile(_ABBREVIATION.pattern, re.IGNORECASE)
_NUMBER_SIGN: Final = re.compile(r"№\s*")
_SPACE_BEFORE_PUNCT: Final = re.compile(r"\s+([.])")
_COMMA: Final = re.compile(r"\s*[,;]+[\s,;]*")
_SPACES: Final = re.compile(r"\s+")
_ODD_SPACE: Final = re.compile(r"\s\s|[^\S ]")  # two spaces, or a tab, newline, NBSP ...
_POSTCODE: Final = re.compile(r"(?<!\d)\d{6}(?!\d)")
_POSTCODE_SPACED: Final = re.compile(r"(\d{3})\s(\d{3})")
_CITY_PREFIX: Final = re.compile(r"^(?:г\.?|гор\.|город)\s+", re.IGNORECASE)
_COUNTRY_ALIASES: Final = {
    "RUS": "RU",
    "РФ": "RU",
    "РОССИЯ": "RU",
    "RUSSIA": "RU",
    "РОССИЙСКАЯ ФЕДЕРАЦИЯ": "RU",
}
_EDGE: Final = " ,;"


def _canonical(text: str, start: int, end: int, key: str, dot: bool) -> str:
    """The replacement for the abbreviation ``key`` at ``text[start:end]``, or that text."""
    if key in _SINGLE_LETTER or key in _NUMBERED:
        before_number = text[end : end + 1].isdigit()
        if key in _SINGLE_LETTER and not before_number:
            if key in {"д", "к"} and not dot:
                return text[start:end]  # a bare "д"/"к" not before a number is too unsure
            if text[start].isupper() and text[:start].rstrip()[-1:] not in ("", ",", ";"):
                return text[start:end]  # "ул. К. Маркса": an initial, not "корпус"
    elif end - start == len(key) and text[end : end + 1].isdigit():
        return text[start:end]  # glued to a number ("ш1") but not a house-number prefix
    return _CANONICAL[key]


def _abbreviate(text: str) -> str:
    lower = text.lower()
    # A few characters change length when lower-cased; then spans would not line up.
    same = len(lower) == len(text)
    found = _ABBREVIATION.finditer(lower) if same else _ABBREVIATION_ANY_CASE.finditer(text)
    out: list[str] = []
    position = 0
    for match in found:
        start, end = match.span()
        key = match.group(1) if same else match.group(1).lower()
        out.append(text[position:start])
        out.append(_canonical(text, start, end, key, match.group(2) is not None))
        out.append(" ")
        position = end
    if not out:
        return text
    out.append(text[position:])
    return "".join(out)


def _needs_spacing(text: str) -> bool:
    return text[:1] in _EDGE or text[-1:] in _EDGE or _ODD_SPACE.search(text) is not None


def normalize_address_line(raw: str) -> str:
    """Canonical abbreviations, "д. 5", single spaces, ", " between parts, and word case when
    the whole line was typed in one case."""
    if not raw:
        return ""
    text = _name_case(_SPACES.sub(" ", raw).strip(_EDGE) if _needs_spacing(raw) else raw)
    if "№" in text:
        text = _NUMBER_SIGN.sub("", text)
    text = _abbreviate(text)
    if " ." in text:
        text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    if "," in text or ";" in text:
        text = _COMMA.sub(", ", text)
    if "  " in text:
        text = _SPACES.sub(" ", text)
    return text.strip(_EDGE)


def normalize_postal_code(raw: str) -> str:
    text = raw.strip()
    return _POSTCODE_SPACED.sub(r"\1\2", text) if len(text) == 7 else text


def extract_postcode(line: str) -> tuple[str, str]:
    """(postcode, line without it): the first standalone 6-digit number, or ("", line)."""
    match = _POSTCODE.search(line)
    if not match:
        return "", line
    rest = _COMMA.sub(", ", f"{line[: match.start()]}, {line[match.end() :]}")
    return match.group(0), _SPACES.sub(" ", rest).strip(_EDGE)


_SMALL_WORDS: Final = frozenset({"на", "де", "ла", "ле", "в", "под", "над"})
_CASE_PARTS: Final = re.compile(r"([\s\-.,]+)")


def _name_case(text: str) -> str:
    """Capitalise words of all-lower/all-upper input ("САНКТ-ПЕТЕРБУРГ"); keep mixed case as is.

    "на"/"де" inside ("Ростов-на-Дону") and ordinal endings ("1-я") stay lower case.
    """
    if text != text.lower() and text != text.upper():
        return text
    parts = _CASE_PARTS.split(text.lower())
    out: list[str] = []
    previous = ""
    for i, part in enumerate(parts):
        ordinal = previous[-1:].isdigit() and parts[i - 1] == "-"  # "1-я"
        if i % 2 == 1 or (out and part in _SMALL_WORDS) or ordinal:
            out.append(part)
        else:
            out.append(part[:1].upper() + part[1:])
        if i % 2 == 0 and part:
            previous = part
    return "".join(out)


@lru_cache(maxsize=8192)
def normalize_city(raw: str) -> str:
    text = _SPACES.sub(" ", raw).strip(_EDGE + ".")
    return _name_case(_CITY_PREFIX.sub("", text)) if text else ""


def normalize_country(raw: str) -> str:
    code = _SPACES.sub(" ", raw).strip().upper()
    return _COUNTRY_ALIASES.get(code, code)


def normalize_address(address: Address) -> Address:
    """A tidied copy; a postcode found in the line fills an empty ``postal_code``."""
    line = normalize_address_line(address.address_line)
    postal = normalize_postal_code(address.postal_code)
    found, rest = extract_postcode(line)
    if found and (not postal or postal == found):
        postal, line = found, rest
    return Address(
        country_code=normalize_country(address.country_code),
        postal_code=postal,
        region=normalize_address_line(address.region),
        city=normalize_city(address.city),
        address_line=line,
    )
