"""Person names: spacing and case, a comparison form, splitting a full name, gender.

``ё`` is kept as written (it is part of the name); :func:`name_key` folds it to ``е`` for
comparisons only. Splitting and gender use patronymic suffixes and the shared first-name table
(``svod_names``: passport names, their other spellings and diminutives, Latin spellings too);
when they do not settle the question the answer is "don't know", never a guess.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final, NamedTuple

from svod_names.first_names import read_first_name

_SPACES: Final = re.compile(r"\s+")
# Any dash, with or without spaces around it, joins a double name: "Римский - Корсаков".
_DASHES: Final = re.compile(r"\s*[-\u2010-\u2015]\s*")
_EDGE_JUNK: Final = " .,;:_*/\\\"'`-"
# Turkic patronymic markers ("Гасан оглы") stay lower-case and mark the patronymic's end.
_PATRONYMIC_MARKERS: Final = {"оглы": "male", "улы": "male", "кызы": "female", "гызы": "female"}
_MALE_PATRONYMIC: Final = ("ович", "евич", "ич")
_FEMALE_PATRONYMIC: Final = ("овна", "евна", "ична", "инична")
# Suffixes that make a token look like a Russian surname; used only to break 2-token ties.
_SURNAME_SUFFIXES: Final = (
    "ов",
    "ев",
    "ёв",
    "ин",
    "ын",
    "ова",
    "ева",
    "ёва",
    "ина",
    "ына",
    "ский",
    "ская",
    "цкий",
    "цкая",
    "енко",
    "ук",
    "юк",
    "ян",
    "швили",
    "дзе",
)


def name_key(name: str) -> str:
    """Comparison form: case-folded, ``ё`` as ``е``, single spaces."""
    return _SPACES.sub(" ", name.strip()).casefold().replace("ё", "е")


def _case_segment(seg: str) -> str:
    if seg.lower() in _PATRONYMIC_MARKERS:
        return seg.lower()
    first, rest = seg[:1], seg[1:]
    # Already "Capitalised" or deliberate inner capitals ("McDonald"): leave alone.
    if first.isupper() and (not rest or rest[0].islower()):
        return seg
    return first.upper() + rest.lower()


@lru_cache(maxsize=65536)
def normalize_name(raw: str) -> str:
    """Trim, single spaces, one dash style, and name case per word and per double-name part."""
    text = _DASHES.sub("-", _SPACES.sub(" ", raw)).strip(_EDGE_JUNK)
    if not text:
        return ""
    return " ".join(
        "-".join(_case_segment(seg) for seg in word.split("-")) for word in text.split(" ")
    )


def first_name_gender(word: str) -> str:
    """``male``/``female`` when the word is a first name of that gender only, else ``unknown``.

    A diminutive shared by a man's and a woman's name (Саша, Женя, Валя) settles nothing, so it
    does not count as a first name here.
    """
    genders = {name.gender for name in read_first_name(word).names}
    return genders.pop() if len(genders) == 1 else "unknown"


def is_first_name(word: str) -> bool:
    return first_name_gender(word) != "unknown"


def patronymic_gender(word: str) -> str:
    """``male``/``female`` if the word is a patronymic (by suffix), else ``unknown``."""
    key = name_key(word)
    last = key.rsplit(" ", 1)[-1]
    if last in _PATRONYMIC_MARKERS and " " in key:
        return _PATRONYMIC_MARKERS[last]
    # Require a stem of 2+ letters so short words ("Бич") are not taken for patronymics.
    for suffix in _FEMALE_PATRONYMIC:
        if key.endswith(suffix) and len(key) >= len(suffix) + 2:
            return "female"
    for suffix in _MALE_PATRONYMIC:
        if key.endswith(suffix) and len(key) >= len(suffix) + 3:
            return "male"
    return "unknown"


def is_patronymic(word: str) -> bool:
    return patronymic_gender(word) != "unknown"


def _looks_like_surname(word: str) -> bool:
    key = name_key(word)
    return len(key) >= 4 and key.endswith(_SURNAME_SUFFIXES)


class NameParts(NamedTuple):
    last: str
    first: str
    middle: str


def _split_two(a: str, b: str) -> NameParts | None:
    if is_patronymic(b) and is_first_name(a):
        return NameParts("", a, b)  # "Мария Петровна"
    first_a, first_b = is_first_name(a), is_first_name(b)
    if first_b and not first_a:
        return NameParts(a, b, "")  # "Иванова Мария"
    if first_a and not first_b:
        return NameParts(b, a, "")  # "Мария Иванова"
    surname_a, surname_b = _looks_like_surname(a), _looks_like_surname(b)
    if first_a and first_b and surname_a != surname_b:
        # Both are names ("Роман Максимов" is fine, "Максим Роман" is not): the surname-like wins.
        return NameParts(a, b, "") if surname_a else NameParts(b, a, "")
    return None


def _split_three(a: str, b: str, c: str) -> NameParts | None:
    patr_b, patr_c = is_patronymic(b), is_patronymic(c)
    if patr_c and not patr_b:
        return NameParts(a, b, c)  # Фамилия Имя Отчество
    if patr_b and not patr_c:
        return NameParts(c, a, b)  # Имя Отчество Фамилия
    if patr_b and patr_c:
        # "Роман Аркадьевич Абрамович" vs "Абрамович Роман Аркадьевич": the first name decides.
        return NameParts(c, a, b) if is_first_name(a) else NameParts(a, b, c)
    return None


@lru_cache(maxsize=32768)
def split_full_name(full_name: str) -> NameParts | None:
    """Last/first/middle of a normalised full name, or None when the order is not certain.

    Russian order "Фамилия Имя Отчество" and also "Имя Отчество Фамилия", "Имя Фамилия",
    "Фамилия Имя" and Turkic patronymics ("Алиев Рашид Гасан оглы") are recognised.
    """
    words = full_name.split()
    if len(words) == 1:
        return NameParts("", words[0], "") if is_first_name(words[0]) else None
    if len(words) == 2:
        return _split_two(*words)
    if len(words) == 3:
        return _split_three(*words)
    if len(words) == 4 and words[3].lower() in _PATRONYMIC_MARKERS:
        head = _split_two(words[0], words[1]) or NameParts(words[0], words[1], "")
        return NameParts(head.last, head.first, f"{words[2]} {words[3]}")
    return None


@lru_cache(maxsize=32768)
def infer_gender(first_name: str, middle_name: str) -> tuple[str, str]:
    """(gender, basis): from the patronymic if it is one, else from a listed first name.

    ``basis`` is ``"patronymic"``, ``"first_name"`` or ``""`` (gender ``unknown``).
    """
    if middle_name:
        gender = patronymic_gender(middle_name)
        if gender != "unknown":
            return gender, "patronymic"
    if first_name:
        # A double first name counts only if its first part is listed ("Анна-Мария").
        gender = first_name_gender(first_name.split(" ")[0].split("-")[0])
        if gender != "unknown":
            return gender, "first_name"
    return "unknown", ""


_PLACEHOLDER_NAMES: Final = frozenset(
    {
        "тест",
        "тестов",
        "тестовый",
        "test",
        "testov",
        "xxx",
        "ххх",
        "нет",
        "нету",
        "не указано",
        "неизвестно",
        "неизвестный",
        "unknown",
        "клиент",
        "покупатель",
        "гость",
        "guest",
        "user",
        "пользователь",
        "абв",
        "абвгд",
        "asdf",
        "qwerty",
        "йцукен",
        "фыва",
        "имя",
        "фамилия",
        "отчество",
        "name",
        "firstname",
        "lastname",
        "none",
        "null",
        "nil",
        "n/a",
        "na",
        "аноним",
        "anonymous",
        "noname",
        "без имени",
    }
)
_NAME_CHARS: Final = re.compile(r"[^\W\d_]+(?:[ '.\-][^\W\d_]*)*")
_CYRILLIC: Final = re.compile(r"[\u0400-\u04ff]")
_LATIN: Final = re.compile(r"[a-zA-Z]")


@lru_cache(maxsize=65536)
def name_problem(name: str) -> str:
    """Why a name value is not a plausible person's name, or "" when it may be one."""
    key = name_key(name)
    if not key:
        return ""
    if any(ch.isdigit() for ch in key):
        return "contains digits"
    if key in _PLACEHOLDER_NAMES:
        return "is a placeholder, not a name"
    letters = [ch for ch in key if ch.isalpha()]
    if len(letters) >= 2 and len(set(letters)) == 1:
        return "is one letter repeated"
    if not _NAME_CHARS.fullmatch(key):
        return "contains characters that do not belong in a name"
    # Latin look-alikes typed into a Cyrillic word ("Ивaнов") break matching and sorting.
    if any(_CYRILLIC.search(word) and _LATIN.search(word) for word in key.split()):
        return "mixes Cyrillic and Latin letters in one word"
    return ""
