"""Russian surnames and patronymics: gender forms, stems and a phonetic key.

Russian surnames inflect for gender (Иванов/Иванова, Петровский/Петровская, Толстой/Толстая),
so a husband and wife share a stem but not a spelling. Knowing this keeps "Иванова" from being
read as a typo of "Иванов" (it is a different person or a gender error, never a typo), and lets
a woman's new surname after marriage be recognised as a change rather than noise.

Everything works on Latin skeletons (``text.latin_skeleton``) so Cyrillic and transliterated
spellings share stems.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from svod_identity.domain.matching.text import latin_skeleton

# (ending, replacement) on the skeleton; the first matching rule wins, longest endings first.
_FEMININE_ENDINGS = (
    ("skaia", "sk"),  # Петровская, Новицкая (ц -> "ts" keeps "tskaia" under this rule)
    ("ova", "ov"),  # Иванова
    ("eva", "ev"),  # Соловьёва, Андреева
    ("ina", "in"),  # Ильина, Никитина (also Ы: "Рыбына" -> "ribina")
    ("aia", ""),  # Толстая, Белая: adjective surnames
)
_MASCULINE_ENDINGS = (
    ("ski", "sk"),  # Петровский / Petrovsky / Petrovskiy
    ("ov", "ov"),
    ("ev", "ev"),
    ("in", "in"),
    ("oi", ""),  # Толстой
    ("i", ""),  # Белый (ый -> "i" in the skeleton)
)
_MIN_STEM = 3

_PATRONYMIC_FEMININE = (("ovna", "ov"), ("evna", "ev"), ("ichna", "ich"))
_PATRONYMIC_MASCULINE = (("ovich", "ov"), ("evich", "ev"), ("ich", "ich"))
_PATRONYMIC_GENDER_WORDS = {"kizi": "female", "kizy": "female", "ogli": "male", "ogly": "male"}

_VOWELS = re.compile(r"[aeiou]")
# Voiced consonants merge with their voiceless pairs, as Russian final devoicing and careless
# spelling do ("Дроздов"/"Дроздоф").
_DEVOICE = str.maketrans({"b": "p", "v": "f", "g": "k", "d": "t", "z": "s"})


@dataclass(frozen=True)
class GenderForm:
    """A surname or patronymic split into a gender-neutral stem and the gender of its ending."""

    skeleton: str
    stem: str
    gender: str | None  # None for endings that do not inflect (Шевченко, Ким, Черных)


def _split(
    skeleton: str, feminine: tuple[tuple[str, str], ...], masculine: tuple[tuple[str, str], ...]
) -> GenderForm:
    for endings, gender in ((feminine, "female"), (masculine, "male")):
        for ending, replacement in endings:
            if skeleton.endswith(ending):
                stem = skeleton[: len(skeleton) - len(ending)] + replacement
                if len(stem) >= _MIN_STEM:
                    return GenderForm(skeleton, stem, gender)
    return GenderForm(skeleton, skeleton, None)


@lru_cache(maxsize=65536)
def surname_form(raw: str) -> GenderForm | None:
    """Stem and gender of a surname; None for an empty field.

    ``surname_form("Иванова").stem == surname_form("Ivanov").stem == "ivanov"``.
    Double surnames ("Римская-Корсакова") are read as written, without splitting.
    """
    skeleton = latin_skeleton(raw)
    if not skeleton:
        return None
    return _split(skeleton, _FEMININE_ENDINGS, _MASCULINE_ENDINGS)


def surname_gender(raw: str) -> str | None:
    form = surname_form(raw)
    return form.gender if form else None


# Surname endings that say a sex in Russian naming (Latin skeletons: Иванова -> "ivanova"); a
# surname that does not inflect (Ким, Шевченко) or reads as a masculine form only by default
# (Wheatley, Coffey: "-i", Rayn: "-in" in FEBRL) says none (``russian_surname_gender``).
_FEMININE_SURNAME_ENDINGS = ("skaia", "ova", "eva", "ina", "aia")
_MASCULINE_SURNAME_ENDINGS = ("ski", "ov", "ev")


def russian_surname_gender(raw: str) -> str | None:
    """The sex a surname's Russian ending says (Иванова, Петровская; Иванов, Петровский), or
    None: ``surname_gender`` read strictly. Read by any ending, Wheatley and Coffey come out
    men's (FEBRL3 F1 0.9932 -> 0.9925 when the two-sexes check read them so)."""
    form = surname_form(raw)
    if form is None or form.gender is None:
        return None
    endings = _FEMININE_SURNAME_ENDINGS if form.gender == "female" else _MASCULINE_SURNAME_ENDINGS
    return form.gender if form.skeleton.endswith(endings) else None


@lru_cache(maxsize=65536)
def patronymic_form(raw: str) -> GenderForm | None:
    """Stem and gender of a patronymic: Ивановна and Иванович share the stem "ivanov"."""
    skeleton = latin_skeleton(raw)
    if not skeleton:
        return None
    for word, gender in _PATRONYMIC_GENDER_WORDS.items():
        # Turkic patronymics: "Ахмед кызы", "Алиев оглы".
        if skeleton.endswith(word) and len(skeleton) > len(word):
            return GenderForm(skeleton, skeleton[: -len(word)], gender)
    return _split(skeleton, _PATRONYMIC_FEMININE, _PATRONYMIC_MASCULINE)


def patronymic_gender(raw: str) -> str | None:
    form = patronymic_form(raw)
    return form.gender if form else None


@lru_cache(maxsize=65536)
def surname_key(raw: str) -> str:
    """A short gender-neutral phonetic key for blocking: first letter + devoiced consonants.

    Иванов, Иванова, Ivanov, Ivanova and a vowel typo such as "Ивонов" all give "ifnf".
    Consonant typos change the key; blocking covers those with other keys (first name + birth
    date, phone, e-mail).
    """
    form = surname_form(raw)
    if form is None:
        return ""
    stem = form.stem
    tail = _VOWELS.sub("", stem[1:]).replace("zh", "sh").translate(_DEVOICE)
    tail = re.sub(r"(.)\1+", r"\1", tail)
    return stem[0] + tail[:6]
