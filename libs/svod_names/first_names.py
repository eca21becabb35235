"""What a written first name stands for: the passport names it can be, and whether it is one.

"Маша", "Masha" and "Машенька" stand for Мария; "Мария", "Maria" and "Mariya" are Мария
written in full (the last two transliterated); "Наталия" is a full name of its own, a spelling
of Наталья. A name the table does not know stands for itself.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from svod_names.text import fold, is_latin, latin_skeleton

_GENDERS = {"m": "male", "f": "female"}


@dataclass(frozen=True)
class FullName:
    """One passport name a written first name can stand for."""

    name: str  # as the table writes it: "Мария"
    gender: str  # "female" | "male"


@dataclass(frozen=True)
class Reading:
    """How a written first name reads."""

    # The passport names it can stand for (empty: the table does not know it).
    names: tuple[FullName, ...]
    # Written in full (a passport name or another full spelling, in any script), not as a
    # diminutive.
    full: bool


class _Table:
    def __init__(self) -> None:
        # skeleton of a written form -> the passport names it stands for
        self.names: dict[str, set[FullName]] = defaultdict(set)
        # skeletons of full forms (passport names and their other full spellings)
        self.full: set[str] = set()
        # skeleton of another full spelling -> the spelling as the table writes it
        self.spellings: dict[str, str] = {}


@dataclass(frozen=True)
class TableEntry:
    """One passport name as the table lists it, with the forms that stand for it."""

    name: str  # "Мария"
    gender: str  # "female" | "male"
    spellings: tuple[str, ...]  # other full spellings: ("Марья",)
    diminutives: tuple[str, ...]  # ("Маша", "Машенька", ...)


def _rows(name: str) -> list[list[str]]:
    text = resources.files("svod_names").joinpath("data", name).read_text(encoding="utf-8")
    return [
        [part.strip() for part in line.split("|")]
        for line in (raw.strip() for raw in text.splitlines())
        if line and not line.startswith("#")
    ]


def _listed(field: str) -> tuple[str, ...]:
    return tuple(part for part in (p.strip() for p in field.split(",")) if part)


@lru_cache(maxsize=1)
def table_entries() -> tuple[TableEntry, ...]:
    """The passport names of the table (``data/first_names.txt``), in its order."""
    return tuple(
        TableEntry(name, _GENDERS[code], _listed(spellings), _listed(diminutives))
        for name, code, spellings, diminutives in _rows("first_names.txt")
    )


@lru_cache(maxsize=1)
def latin_spellings() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """English-style Latin spellings the transliteration skeleton cannot reach, each with the
    passport names it stands for (``data/latin_first_names.txt``): ("Michael", ("Михаил",))."""
    return tuple((latin, _listed(targets)) for latin, targets in _rows("latin_first_names.txt"))


@lru_cache(maxsize=1)
def _table() -> _Table:
    table = _Table()
    by_name: dict[str, FullName] = {}
    for entry in table_entries():
        full = FullName(entry.name, entry.gender)
        by_name[fold(entry.name)] = full
        for written in (entry.name, *entry.spellings):
            key = latin_skeleton(written)
            table.names[key].add(full)
            table.full.add(key)
            table.spellings.setdefault(key, written)
        for written in entry.diminutives:
            table.names[latin_skeleton(written)].add(full)
    for latin, targets in latin_spellings():
        for target in targets:
            known = by_name.get(fold(target))
            if known is not None:
                table.names[latin_skeleton(latin)].add(known)
    return table


@lru_cache(maxsize=65536)
def read_first_name(written: str, gender: str | None = None) -> Reading:
    """The passport names a written first name can stand for (a gender narrows diminutives
    shared by a man's and a woman's name, unless it contradicts every reading)."""
    table = _table()
    key = latin_skeleton(written)
    names = table.names.get(key, set())
    if gender in ("female", "male"):
        names = {n for n in names if n.gender == gender} or names
    ordered = tuple(sorted(names, key=lambda n: (n.name, n.gender)))
    return Reading(ordered, key in table.full or not names)


def full_spelling(written: str) -> str | None:
    """The Cyrillic spelling of a full form written in Latin letters ("Maria" -> "Мария",
    "Natalia" -> "Наталья"); None when the table does not know it as a full form."""
    table = _table()
    key = latin_skeleton(written)
    if key not in table.full:
        return None
    return table.spellings.get(key)


def is_cyrillic(written: str) -> bool:
    folded = fold(written)
    return bool(folded) and not is_latin(folded)


def search_forms(written: str, first_name: bool = False) -> set[str]:
    """The script-neutral forms a written name is found by: its own skeleton ("Маша" and
    "Masha" alike) and, for a first name, those of the passport names it stands for (so a
    search for "Мария" finds a Маша). Empty for a value without letters."""
    skeleton = latin_skeleton(written)
    if not skeleton:
        return set()
    forms = {skeleton}
    if first_name:
        forms |= {latin_skeleton(n.name) for n in read_first_name(written).names}
    return forms
