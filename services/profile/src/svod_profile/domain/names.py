"""The name a profile shows: the person's name in its best full form, not the last spelling.

A till types "Маша", the web shop "Мария", the app "Masha"; all three are Мария. The shown
value of a name field is chosen in two steps:

1. Whose name: the observation to follow is the most recent one from a verified source (when
   the field's policy lists verifying sources and one of them gave a value), else the most
   recent one. A real change of name (Смирнова -> Иванова after a wedding) is followed.
2. Its best form, among every observation of that same name (its diminutives, other scripts):
   first names are shown in full (a diminutive becomes the passport name: Маша -> Мария);
   Cyrillic is shown over a transliteration of the same name (Смирнова over Smirnova); a form a
   verified source gave goes first, then the most recent. A full spelling someone actually
   wrote in Cyrillic (Наталия) is shown as written, never "corrected" to another (Наталья).

A diminutive shared by a man's and a woman's name (Саша) is read with the person's gender; when
that does not settle it and no other observation does, it is shown as written.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

from svod_names import first_names
from svod_names.first_names import FullName, read_first_name, search_forms
from svod_names.text import latin_skeleton
from svod_profile.domain.model import NameVariant, TraitObservation

NAME_FIELDS = ("first_name", "last_name", "middle_name", "full_name")
# Asked of every observed name at every choice (55,000 times for a customer import's 20,000
# records, 3% of the fold's CPU in process, cProfile): cached as read_first_name is.
is_cyrillic = lru_cache(maxsize=65536)(first_names.is_cyrillic)
# The prefix of each name field's search keys (see ``search_keys``).
KEY_PREFIX = {"first_name": "f:", "last_name": "l:", "middle_name": "m:"}


def _recency(obs: TraitObservation) -> tuple[object, str, str]:
    return (obs.provenance.observed_at, obs.provenance.source, obs.value)


def _best(observations: Iterable[TraitObservation], verified: Sequence[str]) -> TraitObservation:
    """Verified sources first, then the most recent (ties: by source, then value)."""
    return max(observations, key=lambda o: (o.provenance.source in verified, *_recency(o)))


def best_name(
    field: str,
    observations: Sequence[TraitObservation],
    verified: Sequence[str] = (),
    gender: str | None = None,
) -> TraitObservation | None:
    """The value to show for a name field (see the module docstring)."""
    if not observations:
        return None
    anchor = _best(observations, verified)
    if field == "first_name":
        return _first_name(anchor, observations, verified, gender)
    same = [o for o in observations if latin_skeleton(o.value) == latin_skeleton(anchor.value)]
    return _prefer_cyrillic(same, verified) or anchor


def _prefer_cyrillic(
    observations: Sequence[TraitObservation], verified: Sequence[str]
) -> TraitObservation | None:
    cyrillic = [o for o in observations if is_cyrillic(o.value)]
    return _best(cyrillic, verified) if cyrillic else None


def _first_name(
    anchor: TraitObservation,
    observations: Sequence[TraitObservation],
    verified: Sequence[str],
    gender: str | None,
) -> TraitObservation:
    name = _whose(anchor, observations, verified, gender)
    if name is None:  # not in the table, or a diminutive nothing settles: as written
        same = [o for o in observations if latin_skeleton(o.value) == latin_skeleton(anchor.value)]
        return _prefer_cyrillic(same, verified) or anchor
    group = [o for o in observations if name in read_first_name(o.value, gender).names]
    written_in_full = [
        o for o in group if is_cyrillic(o.value) and read_first_name(o.value, gender).full
    ]
    if written_in_full:
        return _best(written_in_full, verified)
    # Only diminutives or transliterations were seen: the passport name, from the best of them.
    return replace(_best(group, verified), value=name.name)


def _whose(
    anchor: TraitObservation,
    observations: Sequence[TraitObservation],
    verified: Sequence[str],
    gender: str | None,
) -> FullName | None:
    """The passport name the anchor stands for, when the table and the other observations
    settle it."""
    names = read_first_name(anchor.value, gender).names
    if len(names) == 1:
        return names[0]
    if not names:
        return None
    # Саша: another observation that reads as exactly one of the candidates settles it.
    settled = [
        (o, read_first_name(o.value, gender).names[0])
        for o in observations
        if len(read_first_name(o.value, gender).names) == 1
        and read_first_name(o.value, gender).names[0] in names
    ]
    if not settled:
        return None
    best = _best([o for o, _ in settled], verified)
    return next(name for o, name in settled if o is best)


def name_variants(observations: Iterable[TraitObservation]) -> list[NameVariant]:
    """Every spelling of every name field, once, with its latest observation (field order,
    then newest first)."""
    by_spelling: dict[tuple[str, str], list[TraitObservation]] = {}
    for obs in observations:
        if obs.field in NAME_FIELDS:
            by_spelling.setdefault((obs.field, obs.value), []).append(obs)
    variants = [
        NameVariant(
            field,
            value,
            max(seen, key=_recency),
            min(o.provenance.observed_at for o in seen),
            len(seen),
        )
        for (field, value), seen in by_spelling.items()
    ]
    variants.sort(key=lambda v: _recency(v.latest), reverse=True)
    order = {name: i for i, name in enumerate(NAME_FIELDS)}
    return sorted(variants, key=lambda v: order[v.field])  # stable: newest first per field


def search_keys(field: str, value: str) -> set[str]:
    """What a name is found by (``search_forms``), prefixed by its field."""
    prefix = KEY_PREFIX.get(field)
    if prefix is None:
        return set()
    return {prefix + form for form in search_forms(value, field == "first_name")}


def query_key(field: str, value: str) -> str | None:
    """The key a search for ``value`` in ``field`` looks up (None: nothing to look up)."""
    skeleton = latin_skeleton(value) if value else ""
    return KEY_PREFIX[field] + skeleton if skeleton else None


@dataclass(frozen=True)
class NameIndex:
    """The variants and search keys of some name fields, from all their observations."""

    fields: tuple[str, ...]
    variants: tuple[NameVariant, ...]
    keys: frozenset[str]

    @property
    def prefixes(self) -> frozenset[str]:
        return frozenset(KEY_PREFIX[f] for f in self.fields if f in KEY_PREFIX)

    @classmethod
    def of(cls, fields: Iterable[str], observations: Iterable[TraitObservation]) -> NameIndex:
        """``observations``: every observation of ``fields`` (other fields are ignored)."""
        names = tuple(f for f in NAME_FIELDS if f in set(fields))
        mine = [o for o in observations if o.field in names]
        keys: set[str] = set()
        for obs in mine:
            keys |= search_keys(obs.field, obs.value)
        return cls(names, tuple(name_variants(mine)), frozenset(keys))


# A customer, the shown values of some of its fields, and the variants and keys of the name
# fields among them (None: the stored ones stay): one profile's shown-values update.
ShownUpdate = tuple[str, dict[str, TraitObservation], NameIndex | None]
