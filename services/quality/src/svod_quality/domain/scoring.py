"""A profile's quality score: 0-100, with the reasons it is not 100.

Weights (points out of 100; :class:`ScoreWeights` makes them configurable, they must add up
to 100):

====================  ======  ===============================================================
criterion             points  earned when
====================  ======  ===============================================================
valid phone           25      at least one valid, non-placeholder phone
valid e-mail          20      at least one valid e-mail (disposable/role ones do not count)
name complete         15      first and last name; one of them alone earns half (7)
birth date            10      present and plausible (not future, age within bounds)
address complete      10      city and street line present
fresh contact         10      contact data confirmed within ``freshness_days`` (default 365)
no open flags          5      no unresolved validation flags on the profile
not a duplicate        5      not in a suspected-duplicate pair
====================  ======  ===============================================================

Contact data carries the most weight because reaching the customer is what the base is for;
the rest measures how well the person is known and how much the record can be trusted.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from typing import NamedTuple


@dataclass(frozen=True, slots=True)
class ProfileFacts:
    """What the score and the report need to know about one profile."""

    customer_id: str
    sources: tuple[str, ...] = ()
    has_valid_phone: bool = False
    has_valid_email: bool = False
    # Which of the tracked fields (see report.COMPLETENESS_FIELDS) have a value.
    fields_present: frozenset[str] = frozenset()
    birth_date_plausible: bool = False  # False when missing too
    address_complete: bool = False
    contact_confirmed_at: dt.date | None = None  # a datetime works too (its date is used)
    open_flags: int = 0
    suspected_duplicate: bool = False
    # An e-mail bounced or a phone failed delivery after it was last confirmed.
    undeliverable: bool = False

    @property
    def name_parts(self) -> int:
        return ("first_name" in self.fields_present) + ("last_name" in self.fields_present)


@dataclass(frozen=True, slots=True)
class ScoreWeights:
    valid_phone: int = 25
    valid_email: int = 20
    name_complete: int = 15
    birth_date: int = 10
    address_complete: int = 10
    fresh_contact: int = 10
    no_open_flags: int = 5
    not_duplicate: int = 5
    freshness_days: int = 365

    def __post_init__(self) -> None:
        total = sum(getattr(self, f.name) for f in fields(self) if f.name != "freshness_days")
        if total != 100:
            raise ValueError(f"score weights must add up to 100, not {total}")
        if self.freshness_days <= 0:
            raise ValueError("freshness_days must be positive")


DEFAULT_WEIGHTS = ScoreWeights()


class ProfileScore(NamedTuple):
    score: int
    reasons: list[str]


def is_fresh(confirmed_at: dt.date | None, as_of: dt.date, freshness_days: int) -> bool:
    if confirmed_at is None:
        return False
    day = confirmed_at.date() if isinstance(confirmed_at, dt.datetime) else confirmed_at
    return (as_of - day).days <= freshness_days


def score_profile(
    facts: ProfileFacts, as_of: dt.date, weights: ScoreWeights = DEFAULT_WEIGHTS
) -> ProfileScore:
    """The score and one reason per lost criterion, e.g. ``"no valid phone (-25)"``."""
    lost: list[tuple[str, int]] = []
    if not facts.has_valid_phone:
        lost.append(("no valid phone", weights.valid_phone))
    if not facts.has_valid_email:
        lost.append(("no valid e-mail", weights.valid_email))
    if facts.name_parts == 0:
        lost.append(("no name", weights.name_complete))
    elif facts.name_parts == 1:
        lost.append(("name incomplete", weights.name_complete - weights.name_complete // 2))
    if not facts.birth_date_plausible:
        lost.append(("birth date missing or implausible", weights.birth_date))
    if not facts.address_complete:
        lost.append(("address incomplete", weights.address_complete))
    if not is_fresh(facts.contact_confirmed_at, as_of, weights.freshness_days):
        days = weights.freshness_days
        lost.append((f"contact data not confirmed in {days} days", weights.fresh_contact))
    if facts.open_flags:
        lost.append((f"{facts.open_flags} open quality flag(s)", weights.no_open_flags))
    if facts.suspected_duplicate:
        lost.append(("suspected duplicate", weights.not_duplicate))
    score = 100 - sum(points for _, points in lost)
    return ProfileScore(score, [f"{reason} (-{points})" for reason, points in lost if points])
