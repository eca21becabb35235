"""Term frequencies of names, cities, birth dates, e-mail logins and (given name, birth date)
pairs among the records: what makes a shared value rare or common.

Counted when the model is refitted (from the records in memory, or from the stored records'
value counts) and kept in the model, so scoring a pair needs no look-up: see
``model.TermFrequencies`` for the weight adjustment.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from svod_identity.domain.matching.contacts import email_address
from svod_identity.domain.matching.model import TF_TOP_VALUES, TermFrequencies
from svod_identity.domain.matching.names import resolve_first_name
from svod_identity.domain.matching.places import city_key as _city_key
from svod_identity.domain.matching.record import comparable_birth_date
from svod_identity.domain.matching.surnames import surname_form


def surname_key(raw: str | None) -> str:
    """The written surname as comparisons call it "exact" (its skeleton)."""
    form = surname_form(raw) if raw else None
    return form.skeleton if form is not None else ""


def first_name_key(raw: str | None) -> str:
    """The written given name as comparisons call it "exact" (its skeleton)."""
    name = resolve_first_name(raw) if raw else None
    return name.skeleton if name is not None else ""


def city_key(raw: str | None) -> str:
    """The city as comparisons read it ("г. Москва" and "Москва" alike)."""
    return _city_key(raw) if raw else ""


def birth_date_key(raw: str | None) -> str:
    """The birth date as comparisons read it (``record.build_person_record``): its ISO day, ""
    for a placeholder (01.01.1900, 01.01.1970 ...: never compared) or an unreadable one."""
    date = comparable_birth_date(raw) if raw else None
    return date.isoformat() if date is not None else ""


KEYS: dict[str, Callable[[str | None], str]] = {
    "last_name": surname_key,
    "first_name": first_name_key,
    "city": city_key,
    "birth_date": birth_date_key,
}
# Features counted from a record's identifiers: "login" from its e-mail addresses.
IDENTIFIER_FEATURES: dict[str, str] = {"login": "email"}
# Features counted from two attributes written together: the given name with the birth date,
# written as the JSON array of the two (``written_values``; the store's ``value_counts`` writes
# the same array with ``jsonb_build_array``).
PAIR_FEATURES: tuple[str, ...] = ("first_name_birth_date",)


def first_name_birth_date_key(name_key: str, date: str) -> str:
    """The key of a (canonical given name, ISO birth date) pair in its table."""
    return f"{name_key} {date}"


def first_name_birth_date_keys(first_name: str | None, birth_date: str | None) -> tuple[str, ...]:
    """The (canonical given name, birth date) keys a record's written given name and birth date
    count under: one per passport name the given name can stand for ("Лена" and "Елена" under
    ``elena``, "Саша" under ``aleksandr`` and ``aleksandra``), none without both."""
    date = birth_date_key(birth_date)
    name = resolve_first_name(first_name) if first_name and date else None
    if name is None:
        return ()
    return tuple(first_name_birth_date_key(key, date) for key in sorted(name.keys))


def written_pair(first: object, second: object) -> str | None:
    """Two attributes as written, as one value of a pair feature (None unless both are set)."""
    if not first or not second:
        return None
    return json.dumps([str(first), str(second)], ensure_ascii=False)


def fold_name_date_pairs(
    raw_counts: Iterable[tuple[str, int]], top: int = TF_TOP_VALUES
) -> TermFrequencies:
    """How many records hold each (canonical given name, birth date) pair, from the written
    pairs' counts. Like birth dates, most pairs are one person's few records, so the tail is
    counted whole into the agreement share (``least`` 1); the ``top`` kept are the commonest,
    the ones many people share (``scoring.common_name_and_birth_date_loss``)."""
    counts: Counter[str] = Counter()
    # Read once per distinct name and date, not per pair: a million records hold ~910,000
    # distinct pairs of a few hundred names and ~20,000 dates, and reading each pair's two
    # took 7.1 s of an automatic fit (benchmarks/identity/loader.py's graph).
    names: dict[str, tuple[str, ...]] = {}
    dates: dict[str, str] = {}
    for raw, count in raw_counts:
        try:
            first, date = json.loads(raw)
        except (ValueError, TypeError):
            continue
        if not isinstance(first, str) or not isinstance(date, str):
            continue
        if (day := dates.get(date)) is None:
            day = dates[date] = birth_date_key(date)
        if not day:
            continue
        if (keys := names.get(first)) is None:
            name = resolve_first_name(first) if first else None
            keys = names[first] = tuple(sorted(name.keys)) if name is not None else ()
        for key in keys:
            counts[first_name_birth_date_key(key, day)] += count
    return TermFrequencies.with_tail(counts, top, least=1)


def login_key(raw: str | None) -> str:
    """The login as comparisons match it across providers (``EmailAddress.mailbox_name``), or
    "" for an address whose login says nothing at another provider (short or generic)."""
    address = email_address(raw) if raw else None
    return address.mailbox_name if address is not None and address.portable_login else ""


def fold_logins(raw_counts: Iterable[tuple[str, int]], top: int = TF_TOP_VALUES) -> TermFrequencies:
    """How many distinct mailboxes hold each login, from the e-mail addresses as stored (their
    record counts aside: one person's many records of one mailbox are one holder).

    A login at many providers is one a surname and an initial make (``popov.e``), which
    namesakes pick at every provider; ``maria.smirnova1987`` is one person's at two.
    """
    mailboxes: dict[str, set[str]] = {}
    for raw, _records in raw_counts:
        address = email_address(raw)
        login = login_key(raw)
        if address is not None and login:
            mailboxes.setdefault(login, set()).add(address.address)
    return TermFrequencies.with_tail({login: len(boxes) for login, boxes in mailboxes.items()}, top)


def fold_counts(
    feature: str, raw_counts: Iterable[tuple[str, int]], top: int = TF_TOP_VALUES
) -> TermFrequencies:
    """Frequencies of a feature's comparison keys from counts of its values as written."""
    if feature == "login":
        return fold_logins(raw_counts, top)
    if feature == "first_name_birth_date":
        return fold_name_date_pairs(raw_counts, top)
    key_of = KEYS[feature]
    counts: Counter[str] = Counter()
    for raw, count in raw_counts:
        key = key_of(raw)
        if key:
            counts[key] += count
    if feature == "birth_date":
        # Most dates are held by one person's few records, so the long tail left out of the
        # ``top`` kept is most of the chance two records share a date: counted whole
        # (households 20,000 persons, seed 2026: the 2,000th commonest date is held by 4
        # records, the shared 2008 dates of clamped children by 20-33).
        return TermFrequencies.with_tail(counts, top, least=1)
    return TermFrequencies.from_counts(counts, top)


def written_values(attributes: Mapping[str, Any]) -> dict[str, str | None]:
    """The values a stored record's attributes hold for each feature of ``KEYS`` and
    ``PAIR_FEATURES``, as written: what the store's value counts (``value_counts`` of the
    export port) count."""
    addresses = attributes.get("addresses") or [{}]
    address = addresses[0] if isinstance(addresses[0], Mapping) else {}
    return {
        "last_name": attributes.get("last_name"),
        "first_name": attributes.get("first_name"),
        "city": address.get("city"),
        "birth_date": attributes.get("birth_date"),
        "first_name_birth_date": written_pair(
            attributes.get("first_name"), attributes.get("birth_date")
        ),
    }


def attribute_term_frequencies(
    records: Iterable[Mapping[str, Any]],
    top: int = TF_TOP_VALUES,
    emails: Iterable[Iterable[str]] = (),
) -> dict[str, TermFrequencies]:
    """Frequencies among records given by their stored attributes (each record counts once per
    feature) and, in ``emails``, each record's e-mail identifiers as stored: the same as the
    store's value counts give."""
    written: dict[str, Counter[str]] = {
        feature: Counter() for feature in (*KEYS, *PAIR_FEATURES, "login")
    }
    for attributes in records:
        for feature, value in written_values(attributes).items():
            if value:
                written[feature][str(value)] += 1
    for addresses in emails:
        for address in set(addresses):
            written["login"][address] += 1
    return term_frequencies({f: written[f].items() for f in written}, top)


def term_frequencies(
    raw_counts: Mapping[str, Iterable[tuple[str, int]]], top: int = TF_TOP_VALUES
) -> dict[str, TermFrequencies]:
    """Frequencies of every feature of ``KEYS``, ``PAIR_FEATURES`` and ``IDENTIFIER_FEATURES``
    from counts of values as written (a feature without counts gets an empty table, which
    adjusts nothing)."""
    features = (*KEYS, *PAIR_FEATURES, *IDENTIFIER_FEATURES)
    return {f: fold_counts(f, raw_counts.get(f, ()), top) for f in features}
