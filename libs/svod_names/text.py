"""Script-neutral text forms for comparing names written by different people and systems.

(The same rules as identity's matcher, services/identity/.../matching/text.py, kept here so that
every service reads names alike without importing another service; identity moves onto this
module when the vocabularies are unified.)

Two forms are used throughout the matcher:

* ``fold`` - casefolded Cyrillic/Latin letters only, ``ё`` folded to ``е``: the form used for
  dictionary look-ups of Cyrillic names.
* ``latin_skeleton`` - one Latin spelling that the common transliteration systems (GOST 7.79,
  ICAO 9303 passports, the 1997 passport rules, BGN/PCGN and informal web spellings) collapse
  onto, and that Cyrillic text maps onto as well. ``Мария``, ``Mariya``, ``Maria`` and ``Marija``
  all become ``maria``; ``Дмитрий``, ``Dmitriy``, ``Dmitry`` and ``Dmitrii`` become ``dmitri``.
  Comparing skeletons makes transliteration a non-event instead of a typo.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_CYRILLIC_TO_LATIN = {
    "а": "a",
    "б": "b",
    "в": "v",
    "г": "g",
    "д": "d",
    "е": "e",
    "ё": "e",
    "ж": "zh",
    "з": "z",
    "и": "i",
    "й": "i",
    "к": "k",
    "л": "l",
    "м": "m",
    "н": "n",
    "о": "o",
    "п": "p",
    "р": "r",
    "с": "s",
    "т": "t",
    "у": "u",
    "ф": "f",
    "х": "h",
    "ц": "ts",
    "ч": "ch",
    "ш": "sh",
    # Щ and Ш share a skeleton: "shch", "sch", "shh" and plain "sh" all occur for Щ.
    "щ": "sh",
    "ъ": "",
    "ы": "i",
    "ь": "",
    "э": "e",
    "ю": "iu",
    "я": "ia",
    # Ukrainian/Belarusian letters seen in Russian data.
    "і": "i",
    "ї": "i",
    "є": "e",
    "ў": "u",
}

# Latin letters that look like Cyrillic ones: "Мaрия" typed with a Latin "a" is common in
# hand-entered data and must not read as a different name.
_LATIN_HOMOGLYPHS = str.maketrans(
    {
        "a": "а",
        "e": "е",
        "o": "о",
        "p": "р",
        "c": "с",
        "x": "х",
        "y": "у",
        "k": "к",
        "m": "м",
        "t": "т",
        "h": "н",
        "b": "в",
    }
)

# Applied in order to casefolded Latin text. Each rule folds variants of one Cyrillic sound.
_LATIN_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"shch|sch|shh", "sh"),  # Щ: BGN/ICAO "shch", German-style "sch", GOST-B "shh"
        (r"tch", "ch"),
        (r"ck", "k"),
        (r"ch", "C"),  # protect "ch" from the bare-"c" rule below
        (r"c(?=[eiy])", "ts"),  # "Kuznecov" (ц written c) ...
        (r"c", "k"),  # ... but "Victoria", "Nicolai"
        (r"kh", "h"),  # Х: "Mikhail" / "Mihail"
        (r"ph", "f"),
        (r"w", "v"),
        (r"q", "k"),
        (r"x", "ks"),  # "Xenia", "Alexey", "Maxim"
        (r"tz", "ts"),
        (r"ou", "u"),  # French-style "Youri", "Lioudmila"
        (r"j", "y"),  # "Julia", "Marija", "Sergej", "Jelena"
        (r"ye|yo", "e"),  # "Yevgeny", "Fyodor", "Solovyov", "Andreyev", "Semyon"
        (r"y", "i"),  # Й, Ы and the iotated vowels: "Dmitriy", "Yulia", "Natalya"
        (r"i+", "i"),  # "Dmitrii"/"Dmitriy", "Mariia"/"Mariya"
        (r"(.)\1+", r"\1"),  # double letters: "Filipp", "Anna", "Gennady"
        (r"C", "ch"),
        (r"[^a-z]", ""),
    )
)

_NON_LETTER = re.compile(r"[^\w\s-]|[\d_]")
_SPACES = re.compile(r"[\s-]+")


def _has_cyrillic(text: str) -> bool:
    return any("\u0400" <= ch <= "\u04ff" for ch in text)


def _has_latin(text: str) -> bool:
    return any("a" <= ch <= "z" for ch in text)


@lru_cache(maxsize=65536)
def fold(text: str) -> str:
    """Casefolded letters and single spaces; ``ё``→``е``; accents and punctuation dropped.

    Hyphens become spaces ("Анна-Мария" → "анна мария"); apostrophes used for Ь in
    transliteration ("Natal'ya") disappear without a space.
    """
    value = unicodedata.normalize("NFKC", text).casefold().replace("ё", "е")
    # Strip combining accents ("é", stress marks) but keep Й, which NFD would split in two.
    value = value.replace("й", "\x00")
    value = "".join(
        ch for ch in unicodedata.normalize("NFD", value) if not unicodedata.combining(ch)
    )
    value = unicodedata.normalize("NFC", value).replace("\x00", "й")
    value = value.replace("'", "").replace("\u2019", "").replace("`", "")
    value = _NON_LETTER.sub(" ", value)
    return _SPACES.sub(" ", value).strip()


def _fix_homoglyphs(value: str) -> str:
    """Reads mixed-script words as Cyrillic when Cyrillic letters are present at all."""
    if _has_cyrillic(value) and _has_latin(value):
        return value.translate(_LATIN_HOMOGLYPHS)
    return value


@lru_cache(maxsize=131072)
def latin_skeleton(text: str) -> str:
    """The script-neutral spelling of a name (see the module docstring); "" for no letters."""
    value = _fix_homoglyphs(fold(text))
    value = "".join(_CYRILLIC_TO_LATIN.get(ch, ch) for ch in value)
    for pattern, replacement in _LATIN_RULES:
        value = pattern.sub(replacement, value)
    return value


def is_latin(text: str) -> bool:
    """True when the text has Latin letters and no Cyrillic ones."""
    value = fold(text)
    return _has_latin(value) and not _has_cyrillic(value)


# Latin → Cyrillic, longest match first. Only used to show a Cyrillic form of names the
# dictionary does not know; matching itself compares skeletons, which is not lossy this way.
_LATIN_TO_CYRILLIC = (
    ("shch", "щ"),
    ("sch", "щ"),
    ("iya", "ия"),
    ("iia", "ия"),
    ("zh", "ж"),
    ("kh", "х"),
    ("ts", "ц"),
    ("tz", "ц"),
    ("ch", "ч"),
    ("sh", "ш"),
    ("yu", "ю"),
    ("iu", "ю"),
    ("ju", "ю"),
    ("ya", "я"),
    ("ja", "я"),
    ("yo", "ё"),
    ("jo", "ё"),
    ("ye", "е"),
    ("je", "е"),
    ("iy", "ий"),
    ("ij", "ий"),
    ("ii", "ий"),
    ("ey", "ей"),
    ("ay", "ай"),
    ("oy", "ой"),
    ("uy", "уй"),
    ("a", "а"),
    ("b", "б"),
    ("v", "в"),
    ("w", "в"),
    ("g", "г"),
    ("d", "д"),
    ("e", "е"),
    ("z", "з"),
    ("i", "и"),
    ("j", "й"),
    ("k", "к"),
    ("q", "к"),
    ("c", "к"),
    ("l", "л"),
    ("m", "м"),
    ("n", "н"),
    ("o", "о"),
    ("p", "п"),
    ("r", "р"),
    ("s", "с"),
    ("t", "т"),
    ("u", "у"),
    ("f", "ф"),
    ("h", "х"),
    ("x", "кс"),
    ("y", "ы"),
)


@lru_cache(maxsize=16384)
def to_cyrillic(text: str) -> str:
    """A best-effort Cyrillic reading of Latin text (folded); Cyrillic text is only folded."""
    value = fold(text)
    if not _has_latin(value):
        return value
    if _has_cyrillic(value):
        return _fix_homoglyphs(value)
    # Word-final "ia"/"iia"/"ija" is "-ия" in Russian names ("Maria", "Mariia", "Marija").
    value = re.sub(r"i+[jy]?a\b", "iya", value)
    value = re.sub(r"ei\b", "ey", value)  # "Sergei", "Aleksei"
    out: list[str] = []
    i = 0
    while i < len(value):
        for latin, cyrillic in _LATIN_TO_CYRILLIC:
            if value.startswith(latin, i):
                # A word-final "y" after a consonant is "-ий" in Russian names ("Dmitry").
                if latin == "y" and (i + 1 == len(value) or value[i + 1] == " "):
                    cyrillic = "ий"
                out.append(cyrillic)
                i += len(latin)
                break
        else:
            out.append(value[i])
            i += 1
    return "".join(out)
