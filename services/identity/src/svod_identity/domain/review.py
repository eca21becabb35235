"""What a reviewer sees of the two sides of a suspected duplicate.

The matcher scores a new record against one record of the candidate customer, and the review
item keeps that pair's feature levels. A customer is more than that record: its other records
may carry the birth date or the patronymic the compared one lacks. A reviewer gets every value
of each side (over its most recent records) and, per field, the best agreement between any
record of one side and any of the other - so two different birth dates on the two sides show
as "disagree", not as "missing" because the compared record had none.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.matching.compare import compare_records
from svod_identity.domain.matching.model import LEVELS, MISSING
from svod_identity.domain.matching.record import PersonRecord
from svod_identity.domain.model import RecordRef


class ReviewState(StrEnum):
    """Where a review item stands (``ReviewItem.state`` in the API; stored as its value)."""

    OPEN = "open"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


# Records of each side shown to a reviewer (the most recent ones).
SIDE_RECORDS = 10
COMPARED_FIELDS = ("first_name", "last_name", "middle_name", "birth_date", "location")


@dataclass(frozen=True)
class SideRecord:
    ref: RecordRef
    attributes: Mapping[str, object]
    identifiers: tuple[IdentifierKey, ...]
    person: PersonRecord


@dataclass(frozen=True)
class Side:
    customer_id: str
    compared: RecordRef | None
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    middle_names: tuple[str, ...]
    birth_dates: tuple[dt.date, ...]
    cities: tuple[str, ...]
    identifiers: tuple[IdentifierKey, ...]
    record_count: int


def _distinct(values: Iterable[object]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for value in values:
        text = str(value or "").strip()
        if text and text.casefold() not in {s.casefold() for s in seen}:
            seen[text] = None
    return tuple(seen)


def side(
    customer_id: str,
    compared: RecordRef | None,
    records: Sequence[SideRecord],
    record_count: int,
) -> Side:
    """A side's values over ``records`` (newest first), each once, newest first."""
    births: dict[dt.date, None] = {}
    for record in records:
        raw = record.attributes.get("birth_date")
        if raw:
            try:
                births[dt.date.fromisoformat(str(raw)[:10])] = None
            except ValueError:
                continue
    cities = (
        address.get("city")
        for record in records
        for address in record.attributes.get("addresses") or ()  # type: ignore[attr-defined]
        if isinstance(address, dict)
    )
    identifiers: dict[IdentifierKey, None] = {}
    for record in records:
        for key in record.identifiers:
            identifiers[key] = None
    return Side(
        customer_id,
        compared,
        _distinct(r.attributes.get("first_name") for r in records),
        _distinct(r.attributes.get("last_name") for r in records),
        _distinct(r.attributes.get("middle_name") for r in records),
        tuple(births),
        _distinct(cities),
        tuple(identifiers),
        record_count,
    )


def field_comparison(ours: Sequence[SideRecord], theirs: Sequence[SideRecord]) -> dict[str, str]:
    """Per field, the best agreement level between any record of one side and any of the
    other; "missing" when no pair has the field on both sides."""
    best: dict[str, int] = {}
    for a, b in ((x.person, y.person) for x in ours for y in theirs):
        levels = compare_records(a, b)
        for feature in COMPARED_FIELDS:
            level = levels.get(feature, MISSING)
            if level == MISSING:
                continue
            rank = LEVELS[feature].index(level)
            best[feature] = min(rank, best.get(feature, rank))
    return {f: LEVELS[f][best[f]] if f in best else MISSING for f in COMPARED_FIELDS}
