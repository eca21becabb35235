"""City and street address forms for comparison.

Sources spell the same place differently ("г. Москва", "москва", "Moscow"; "ул. Ленина, д. 5"
and "улица Ленина дом 5"); these helpers give one form per place.
"""

from __future__ import annotations

import re
from functools import lru_cache

from svod_identity.domain.matching.text import fold, latin_skeleton

_CITY_PREFIX = re.compile(r"^(г|гор|город|пгт|пос|поселок|с|село|ст|станица|дер|деревня|city)\s+")
_PARENTHESES = re.compile(r"\(.*?\)")
# Spellings of big cities that transliteration alone does not unify (English names, slang).
_CITY_ALIASES_RAW = {
    "Moscow": "Москва",
    "Мск": "Москва",
    "Saint Petersburg": "Санкт-Петербург",
    "St Petersburg": "Санкт-Петербург",
    "St. Petersburg": "Санкт-Петербург",
    "Sankt-Peterburg": "Санкт-Петербург",
    "С-Петербург": "Санкт-Петербург",
    "С.-Петербург": "Санкт-Петербург",
    "Петербург": "Санкт-Петербург",
    "Питер": "Санкт-Петербург",
    "СПб": "Санкт-Петербург",
    "Rostov-on-Don": "Ростов-на-Дону",
    "Nizhny Novgorod": "Нижний Новгород",
    "Yekaterinburg": "Екатеринбург",
}
_CITY_ALIASES = {latin_skeleton(k): latin_skeleton(v) for k, v in _CITY_ALIASES_RAW.items()}

# Long and short spellings of address words, folded to the short form.
_ADDRESS_WORDS = {
    "улица": "ул",
    "проспект": "пр",
    "пркт": "пр",
    "просп": "пр",
    "пр-т": "пр",
    "переулок": "пер",
    "бульвар": "бул",
    "б-р": "бул",
    "шоссе": "ш",
    "набережная": "наб",
    "аллея": "алл",
    "площадь": "пл",
    "проезд": "пр-д",
    "дом": "д",
    "корпус": "к",
    "корп": "к",
    "строение": "стр",
    "квартира": "кв",
    "г": "",
    "город": "",
}
_ADDRESS_TOKEN = re.compile(r"[0-9]+[а-яa-z]?|[а-яёa-z-]+")


@lru_cache(maxsize=65536)
def city_key(raw: str) -> str:
    """One spelling per city: "г. Москва", "МОСКВА", "Moskva" and "Moscow" give "moskva"."""
    value = fold(_PARENTHESES.sub(" ", raw))
    value = _CITY_PREFIX.sub("", value)
    skeleton = latin_skeleton(value)
    return _CITY_ALIASES.get(skeleton, skeleton)


@lru_cache(maxsize=65536)
def address_key(raw: str) -> str:
    """Street address tokens with the usual abbreviations folded, e.g. "ул ленина д 5 кв 12"."""
    value = raw.casefold().replace("ё", "е")
    tokens = []
    for token in _ADDRESS_TOKEN.findall(value):
        token = _ADDRESS_WORDS.get(token, token)
        if token:
            tokens.append(token)
    return " ".join(tokens)


_NUMBER = re.compile(r"^[0-9]+[а-яa-z]?$")


def house_number(key: str) -> str:
    """The first number of an ``address_key`` (the house number in "ул ленина д 5 кв 12")."""
    for token in key.split():
        if _NUMBER.match(token):
            return token
    return ""


# Letters of the street name a blocking key keeps: enough to tell streets apart near one house
# number, few enough to survive a slip later in the name.
_STREET_PREFIX = 3
_WORD = re.compile(r"^[^0-9]{3,}$")


@lru_cache(maxsize=65536)
def street_key(key: str) -> str:
    """House number and the street name's first letters of an ``address_key`` ("12:pro" for
    "ул профсоюзная д 12 кв 45"); "" without a house number or a street name."""
    number = house_number(key)
    words = [w for w in key.split() if _WORD.match(w) and w not in _ADDRESS_WORDS.values()]
    if not number or not words:
        return ""
    return f"{number}:{latin_skeleton(words[0])[:_STREET_PREFIX]}"
