"""The person record the matcher compares, and helpers to build one from source spellings."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from svod_identity.domain.matching.contacts import (
    normalize_card,
    normalize_email,
    normalize_phone,
)
from svod_identity.domain.matching.names import is_known_first_name, normalize_gender
from svod_identity.domain.matching.surnames import surname_gender

# Dates systems put in when the real one is unknown; they would otherwise "agree".
PLACEHOLDER_BIRTH_DATES = frozenset(
    {dt.date(1900, 1, 1), dt.date(1901, 1, 1), dt.date(1970, 1, 1), dt.date(2000, 1, 1)}
)


@dataclass(frozen=True)
class PersonRecord:
    """One source record about a person, attributes normalised by the service.

    Phones are E.164, e-mails lower-cased; names are kept as written (the matcher folds case,
    script and ``ё`` itself, and the original spelling is evidence: "Маша" says more than
    "МАРИЯ" about how the person presents).
    """

    record_key: str
    first_name: str | None = None
    last_name: str | None = None
    middle_name: str | None = None
    birth_date: dt.date | None = None
    gender: str | None = None  # "female" | "male" | None
    phones: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    cards: tuple[str, ...] = ()
    city: str | None = None
    address_line: str | None = None
    source: str = ""
    observed_at: dt.datetime | None = None
    postcode: str | None = None


def person_content(record: PersonRecord) -> tuple[object, ...]:
    """What comparisons and blocking keys read of a record: everything but its key, source and
    time. Caches of derived data are keyed by it, so the same person seen under another key
    (an incoming record before and after it gets a pk) is derived once.

    Worked out once per record object and kept in its ``__dict__`` (a frozen dataclass's
    ``__setattr__`` refuses, its ``__dict__`` does not; fields, equality and hashing ignore
    it): every comparison asked for it four times (two keys, two views), 15% of a comparison's
    time (cProfile over generator seed 101's 20,366 candidate pairs)."""
    memo = record.__dict__
    content = memo.get(_CONTENT)
    if content is None:
        content = memo[_CONTENT] = (
            record.first_name,
            record.last_name,
            record.middle_name,
            record.birth_date,
            record.gender,
            record.phones,
            record.emails,
            record.cards,
            record.city,
            record.address_line,
            record.postcode,
        )
    return content


# Keys of what is kept on a record object: its content and what is derived from it once.
_CONTENT = "_content"


def rekeyed(record: PersonRecord, record_key: str) -> PersonRecord:
    """``record`` under another key, with what was worked out from its content (which the key
    is no part of: ``person_content``) kept. ``dataclasses.replace`` took about as long as
    building the record again, and left its view and keys to be looked up again."""
    copy = object.__new__(PersonRecord)
    copy.__dict__.update(record.__dict__)
    copy.__dict__["record_key"] = record_key
    return copy


V = TypeVar("V")

# Entries of each cache of derived data by record content (views, comparisons, blocking keys).
# A batch of 500 records with their candidates needs a few thousand; a distinct record's view
# and what it leaves in the contact caches take about 2 KB (tracemalloc, 20,000 generated
# records). At 200,000 views (and 65,536 comparisons and keys, 262,144 parsed phones) the
# caches were still filling after ten minutes of 100 identifies/s: identity's RSS grew 112%
# over the issue #20 soak (166 -> 353 MiB). At 16,384 they hold at most about 40 MB, and
# identity grew 14% over a 10-minute soak, at no measured cost: its CPU per identify record
# in the pipeline benchmark (20,000 customers, 5,000 records, alternating runs at load
# 13-19) was 0.42 and 0.50 ms with the old sizes, 0.44 and 0.48 ms with these
# (docs/performance.md, "Identity's caches and the soak's memory growth").
# The batch worker raises the views' limit to its import's size (service_layer/batch_job.py).
CACHED_RECORDS = 16_384


class BoundedCache(dict[tuple[object, ...], V], Generic[V]):
    """A dict that drops its older half when it reaches ``limit`` entries: memory stays
    bounded, and the records of one batch (the ones worth remembering) are looked at close
    together, so the newest half - the batch at work - stays (emptied whole, a batch that
    filled the cache derived its records again)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def put(self, key: tuple[object, ...], value: V) -> None:
        if len(self) >= self.limit:
            for old in list(itertools.islice(self, max(1, self.limit // 2))):
                del self[old]
        self[key] = value

    def derived(self, record: PersonRecord, derive: Callable[[PersonRecord], V]) -> V:
        """``derive(record)``, worked out once per record content (``person_content``)."""
        key = person_content(record)
        found = self.get(key)
        if found is None:
            found = derive(record)
            self.put(key, found)
        return found

    def kept(self, record: PersonRecord, name: str, derive: Callable[[PersonRecord], V]) -> V:
        """``derived``, and kept on the record object under ``name`` as well: a stored record
        is compared with many, and each look-up by content hashes an 11-field tuple."""
        memo = record.__dict__
        found: V | None = memo.get(name)
        if found is None:
            found = memo[name] = self.derived(record, derive)
        return found


def looks_swapped(first_name: str | None, last_name: str | None) -> bool:
    """True when the surname sits in the first-name field and the given name in the last.

    Only confident cases: the "last name" is a known first name and the "first name" is not one
    but has a surname ending (-ов/-ова/-ин/-ский ...). Anything less certain is left for the
    pairwise comparison, which also tries the crossed reading.
    """
    if not first_name or not last_name:
        return False
    return (
        is_known_first_name(last_name)
        and not is_known_first_name(first_name)
        and surname_gender(first_name) is not None
    )


def surname_alone_as_given_name(first_name: str | None, last_name: str | None) -> bool:
    """True when the first-name field holds a surname and the last-name field is empty
    ("Смирнов", nothing else): a form filled in surname first and left there.

    The same confident reading as ``looks_swapped``: not a known first name, but a surname
    ending. Read as a given name it contradicted every record of the person ("other" against
    Игорь, so no e-mail of theirs could link it). Measured through the API (bench_accuracy,
    EM, 2000 persons): households seeds 303/909 F1 0.9293 -> 0.9339 (R 0.8776 -> 0.8857) and
    0.9411 -> 0.9450 (R 0.8947 -> 0.9015), precision unchanged or up; generator seeds
    101/4242 0.9719 -> 0.9721 and 0.9716 -> 0.9716; FEBRL3/4 unchanged (0.9932, 0.9915).
    """
    if not first_name or last_name:
        return False
    return not is_known_first_name(first_name) and surname_gender(first_name) is not None


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    value = " ".join(value.split())
    return value or None


def _unique(values: Iterable[str | None]) -> tuple[str, ...]:
    if isinstance(values, list | tuple) and len(values) <= 1:
        # Most records hold none or one of a kind: no generator, no dict.
        return (values[0],) if values and values[0] else ()
    return tuple(dict.fromkeys(v for v in values if v))


def comparable_birth_date(raw: dt.date | str | None) -> dt.date | None:
    """A birth date as the matcher compares it: an ISO date (a longer text read by its first
    ten characters), None for a placeholder (01.01.1900, 01.01.1970 ...) or an unreadable
    one."""
    if isinstance(raw, str):
        try:
            raw = dt.date.fromisoformat(raw[:10])
        except ValueError:
            return None
    return None if raw in PLACEHOLDER_BIRTH_DATES else raw


def build_person_record(  # noqa: PLR0913
    record_key: str,
    *,
    first_name: str | None = None,
    last_name: str | None = None,
    middle_name: str | None = None,
    birth_date: dt.date | str | None = None,
    gender: str | None = None,
    phones: Iterable[str] = (),
    emails: Iterable[str] = (),
    cards: Iterable[str] = (),
    city: str | None = None,
    address_line: str | None = None,
    source: str = "",
    observed_at: dt.datetime | str | None = None,
    postcode: str | None = None,
    normalized: bool = False,
) -> PersonRecord:
    """A PersonRecord from source spellings: identifiers normalised, swapped names put back.

    Unparseable identifiers and placeholder birth dates are dropped rather than rejected: the
    matcher must cope with whatever reached the service. ``normalized``: phones and e-mails are
    already in the service's canonical form (E.164, lower case) and are taken as they are.
    """
    first, last = _clean(first_name), _clean(last_name)
    if looks_swapped(first, last):
        first, last = last, first
    elif surname_alone_as_given_name(first, last):
        first, last = None, first
    birth_date = comparable_birth_date(birth_date)
    if isinstance(observed_at, str):
        observed_at = dt.datetime.fromisoformat(observed_at)
    return PersonRecord(
        record_key=record_key,
        first_name=first,
        last_name=last,
        middle_name=_clean(middle_name),
        birth_date=birth_date,
        gender=normalize_gender(gender),
        phones=_unique(phones if normalized else (normalize_phone(p) for p in phones)),
        emails=_unique(emails if normalized else (normalize_email(e) for e in emails)),
        cards=_unique([normalize_card(c) for c in cards]),
        city=_clean(city),
        address_line=_clean(address_line),
        source=source,
        observed_at=observed_at,
        postcode="".join((postcode or "").split()).casefold() or None,
    )
