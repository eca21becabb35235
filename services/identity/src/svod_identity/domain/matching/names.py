"""First-name knowledge: diminutives, spelling variants, transliterations and gender.

The names are the shared table's (``svod_names``: passport names, their other spellings and
diminutives, English-style Latin spellings), plus the less common names only the matcher needs
(``data/rare_first_names.txt``, to tell a rare first name from a surname). The tables are plain
text so that linguists can extend them without touching code. Everything is indexed by the
Latin skeleton (see ``text.py``), so "Маша", "Masha", "Мария", "Mariya" and "Maria" all land
on the same entries.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from rapidfuzz import process
from rapidfuzz.distance import JaroWinkler

from svod_identity.domain.matching.text import fold, is_latin, latin_skeleton, to_cyrillic
from svod_names.first_names import latin_spellings, table_entries

GENDERS = ("female", "male")
# A spelling not in the tables is read as a known name when this close (Jaro–Winkler on
# skeletons): "Мраия" → Мария, "Андрбша" → Андрюша. Short names are left alone: one letter
# turns Ира into Ия or Иза.
_CORRECTION_SIMILARITY = 0.9
_MIN_CORRECTABLE = 5
_GENDER_CODES = {"m": "male", "f": "female"}


@dataclass(frozen=True)
class NameSense:
    """One reading of a written first name: the passport name it stands for."""

    canonical: str  # folded Cyrillic full name, e.g. "мария"
    gender: str  # "female" | "male"


@dataclass(frozen=True)
class FirstName:
    """What the matcher knows about one written first name (see ``resolve_first_name``)."""

    skeleton: str  # script-neutral spelling of what was written
    keys: frozenset[str]  # skeletons of the candidate canonical names: the comparison keys
    canonicals: frozenset[str]  # the same candidates as folded Cyrillic names
    known: bool  # found in the name tables (so a mismatch is a different name, not a typo)
    genders: frozenset[str]  # genders of the candidates
    # Not in the tables but close to a known spelling: read as that name (a typo) as well as
    # itself. Comparisons treat such agreement as fuzzy, never as exact.
    corrected: bool = False


class NameTable:
    """Written-form skeleton → the passport names it can stand for."""

    def __init__(self) -> None:
        self._senses: dict[str, set[NameSense]] = defaultdict(set)
        self._choices: list[str] | None = None
        self._spellings: dict[str, set[str]] = defaultdict(set)

    def add(self, written: str, sense: NameSense) -> None:
        skeleton = latin_skeleton(written)
        if skeleton:
            self._senses[skeleton].add(sense)
            self._spellings[latin_skeleton(sense.canonical)].add(skeleton)

    def spellings(self, key: str) -> frozenset[str]:
        """Every known written form (full name, variants, diminutives) of a canonical name."""
        return frozenset(self._spellings.get(key, ()))

    def lookup(self, skeleton: str) -> frozenset[NameSense]:
        return frozenset(self._senses.get(skeleton, ()))

    def nearest(self, skeleton: str) -> frozenset[NameSense]:
        """Readings of the closest known spelling when it is only a slip away, else nothing.

        Ties between different spellings are kept together, so a typo equally close to two
        names stays ambiguous instead of picking one.
        """
        if len(skeleton) < _MIN_CORRECTABLE:
            return frozenset()
        if self._choices is None:
            self._choices = sorted(self._senses)
        matches = process.extract(
            skeleton,
            self._choices,
            scorer=JaroWinkler.normalized_similarity,
            score_cutoff=_CORRECTION_SIMILARITY,
            limit=3,
        )
        if not matches:
            return frozenset()
        best = matches[0][1]
        return frozenset(
            sense
            for choice, score, _ in matches
            if score >= best - 1e-9
            for sense in self._senses[choice]
        )


def _data_lines(name: str) -> list[list[str]]:
    text = (
        resources.files(__name__.rpartition(".")[0])
        .joinpath("data")
        .joinpath(name)
        .read_text(encoding="utf-8")
    )
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            rows.append([part.strip() for part in line.split("|")])
    return rows


@lru_cache(maxsize=1)
def name_table() -> NameTable:
    """The table built from the data files (loaded once per process)."""
    table = NameTable()
    canonical_gender: dict[str, str] = {}

    def add_name(name: str, gender: str, aliases: Iterable[str]) -> None:
        canonical = fold(name)
        canonical_gender[canonical] = gender
        table.add(name, NameSense(canonical, gender))
        # Diminutives and spelling variants (Маша, Наталия) stand for the passport name.
        for alias in aliases:
            table.add(alias, NameSense(canonical, gender))

    for entry in table_entries():
        add_name(entry.name, entry.gender, (*entry.spellings, *entry.diminutives))
    for name, code, aliases in _data_lines("rare_first_names.txt"):
        add_name(name, _GENDER_CODES[code], filter(None, (a.strip() for a in aliases.split(","))))
    for latin, targets in latin_spellings():
        for target in targets:
            canonical = fold(target)
            table.add(latin, NameSense(canonical, canonical_gender[canonical]))
    return table


def normalize_gender(raw: str | None) -> str | None:
    """The gender as "female"/"male" from source spellings ("F", "жен", "Ж", "woman" ...)."""
    if not raw:
        return None
    value = fold(raw)
    if value in {"female", "f", "w", "woman", "ж", "жен", "женский", "женщина"}:
        return "female"
    if value in {"male", "m", "man", "м", "муж", "мужской", "мужчина"}:
        return "male"
    return None


def _first_token(raw: str) -> str:
    """The given name from a field that may hold "Анна Мария" or "Мария-Луиза"."""
    tokens = fold(raw).split()
    return tokens[0] if tokens else ""


@lru_cache(maxsize=65536)
def resolve_first_name(raw: str, gender_hint: str | None = None) -> FirstName | None:
    """Reads a written first name; None when there is nothing to read.

    A gender hint narrows ambiguous diminutives (Саша, Женя, Валя) but never empties the
    candidate set: when the hint contradicts every reading the hint is ignored.
    """
    folded = fold(raw)
    if not folded:
        return None
    table = name_table()
    whole = latin_skeleton(folded)
    senses = table.lookup(whole)
    if not senses:
        token = _first_token(raw)
        senses = table.lookup(latin_skeleton(token))
        if senses:
            whole = latin_skeleton(token)
    corrected = False
    if not senses:
        senses = table.nearest(whole)
        corrected = bool(senses)
    if not senses:
        canonical = to_cyrillic(folded) if is_latin(folded) else folded
        return FirstName(whole, frozenset({whole}), frozenset({canonical}), False, frozenset())
    if gender_hint in GENDERS:
        narrowed = frozenset(s for s in senses if s.gender == gender_hint)
        senses = narrowed or senses
    # A written full name stands for itself; other readings of the same spelling (Мила is a
    # name and a diminutive of Людмила) still count, which is what nickname-equivalence wants.
    keys = frozenset(latin_skeleton(s.canonical) for s in senses)
    canonicals = frozenset(s.canonical for s in senses)
    if corrected:
        # The spelling itself stays a key: it may be a real name the tables lack.
        keys |= {whole}
        canonicals |= {to_cyrillic(folded) if is_latin(folded) else folded}
    return FirstName(
        skeleton=whole,
        keys=keys,
        canonicals=canonicals,
        known=not corrected,
        genders=frozenset(s.gender for s in senses),
        corrected=corrected,
    )


def canonical_first_name(raw: str, gender_hint: str | None = None) -> frozenset[str]:
    """The canonical Cyrillic full names a written first name can stand for.

    Names are folded (lower case, ``ё``→``е``): ``canonical_first_name("Маша")`` is
    ``{"мария"}``, ``canonical_first_name("Саша", "female")`` is ``{"александра"}``,
    ``canonical_first_name("Sasha")`` is ``{"александр", "александра"}``. A name the tables do
    not know comes back as its own (Cyrillic) spelling; an empty field gives an empty set.
    """
    name = resolve_first_name(raw, normalize_gender(gender_hint))
    if name is None:
        return frozenset()
    if name.corrected:
        # Typo readings are for matching only; a rare real name must not be renamed here.
        return frozenset({to_cyrillic(raw) if is_latin(raw) else fold(raw)})
    return name.canonicals


def gender_of_first_name(raw: str) -> str | None:
    """The name's gender when all its readings agree; None when ambiguous or unknown."""
    name = resolve_first_name(raw)
    if name is None or name.corrected or len(name.genders) != 1:
        return None
    return next(iter(name.genders))


def is_known_first_name(raw: str) -> bool:
    name = resolve_first_name(raw)
    return bool(name and name.known)
