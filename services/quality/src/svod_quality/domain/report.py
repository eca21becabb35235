"""The base report: shares of valid contacts, completeness, staleness and duplicates, now and
as a trend, with completeness per field and per source and the worst sources.

Every share is a fraction of all profiles (0.0-1.0); an empty base reports zeros. A profile
counts for each source in its ``sources``. Sources are ranked worst first by mean profile
score, then by completeness.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from svod_quality.domain.scoring import (
    DEFAULT_WEIGHTS,
    ProfileFacts,
    ScoreWeights,
    is_fresh,
    score_profile,
)

COMPLETENESS_FIELDS: Final = (
    "phone",
    "email",
    "first_name",
    "last_name",
    "birth_date",
    "address",
)


@dataclass(frozen=True, slots=True)
class QualityPoint:
    """The base at one moment (proto ``QualityReportPoint``)."""

    time: dt.datetime
    valid_phone_share: float
    valid_email_share: float
    duplicate_rate: float
    completeness: float
    stale_share: float
    profiles: int = 0
    # Profiles with a bounced e-mail or a phone that failed delivery.
    undeliverable_share: float = 0.0


@dataclass(frozen=True, slots=True)
class SourceStats:
    source: str
    profiles: int
    completeness: float
    mean_score: float
    valid_phone_share: float
    valid_email_share: float


@dataclass(frozen=True, slots=True)
class QualityReport:
    now: QualityPoint
    trend: list[QualityPoint] = field(default_factory=list)
    completeness_by_field: dict[str, float] = field(default_factory=dict)
    completeness_by_source: dict[str, float] = field(default_factory=dict)
    worst_sources: list[str] = field(default_factory=list)
    sources: list[SourceStats] = field(default_factory=list)
    # Filled in by the service from identity's reports (not from the profiles' facts).
    suspected_duplicate_pairs: int = 0
    blocked_identifiers: int = 0
    freshness_days: int = DEFAULT_WEIGHTS.freshness_days


def _share(part: float, whole: int) -> float:
    return part / whole if whole else 0.0


@dataclass(slots=True)
class _Tally:
    profiles: int = 0
    valid_phone: int = 0
    valid_email: int = 0
    duplicates: int = 0
    stale: int = 0
    undeliverable: int = 0
    completeness: float = 0.0
    score: int = 0
    present: dict[str, int] = field(default_factory=dict)

    def add(self, facts: ProfileFacts, fresh: bool, completeness: float, score: int) -> None:
        self.profiles += 1
        self.valid_phone += facts.has_valid_phone
        self.valid_email += facts.has_valid_email
        self.duplicates += facts.suspected_duplicate
        self.stale += not fresh
        self.undeliverable += facts.undeliverable
        self.completeness += completeness
        self.score += score
        for name in facts.fields_present:
            self.present[name] = self.present.get(name, 0) + 1


def _stats(source: str, tally: _Tally) -> SourceStats:
    n = tally.profiles
    return SourceStats(
        source,
        n,
        _share(tally.completeness, n),
        _share(tally.score, n),
        _share(tally.valid_phone, n),
        _share(tally.valid_email, n),
    )


def worst_sources(stats: Iterable[SourceStats], limit: int = 5, min_profiles: int = 1) -> list[str]:
    """Names of the sources with the lowest mean score (ties: lower completeness, then name)."""
    ranked = sorted(
        (s for s in stats if s.profiles >= min_profiles),
        key=lambda s: (s.mean_score, s.completeness, s.source),
    )
    return [s.source for s in ranked[:limit]]


class ReportBuilder:
    """Builds the report one profile at a time, so a large base never has to be in memory."""

    def __init__(
        self,
        now: dt.datetime,
        weights: ScoreWeights = DEFAULT_WEIGHTS,
        tracked_fields: Sequence[str] = COMPLETENESS_FIELDS,
    ) -> None:
        self.now = now
        self.weights = weights
        self.tracked_fields = tuple(tracked_fields)
        self._tracked = frozenset(tracked_fields)
        self._today = now.date()
        self._total = _Tally()
        self._by_source: dict[str, _Tally] = {}

    def add(self, item: ProfileFacts) -> None:
        fresh = is_fresh(item.contact_confirmed_at, self._today, self.weights.freshness_days)
        completeness = _share(len(item.fields_present & self._tracked), len(self._tracked))
        score = score_profile(item, self._today, self.weights).score
        self._total.add(item, fresh, completeness, score)
        for source in item.sources:
            self._by_source.setdefault(source, _Tally()).add(item, fresh, completeness, score)

    def finish(self, trend: Sequence[QualityPoint] = (), worst_limit: int = 5) -> QualityReport:
        total, now = self._total, self.now
        n = total.profiles
        point = QualityPoint(
            time=now,
            valid_phone_share=_share(total.valid_phone, n),
            valid_email_share=_share(total.valid_email, n),
            duplicate_rate=_share(total.duplicates, n),
            completeness=_share(total.completeness, n),
            stale_share=_share(total.stale, n),
            profiles=n,
            undeliverable_share=_share(total.undeliverable, n),
        )
        stats = [_stats(source, tally) for source, tally in sorted(self._by_source.items())]
        return QualityReport(
            now=point,
            trend=[*sorted((p for p in trend if p.time < now), key=lambda p: p.time), point],
            completeness_by_field={
                f: _share(total.present.get(f, 0), n) for f in self.tracked_fields
            },
            completeness_by_source={s.source: s.completeness for s in stats},
            worst_sources=worst_sources(stats, worst_limit),
            sources=stats,
            freshness_days=self.weights.freshness_days,
        )


def build_report(
    facts: Iterable[ProfileFacts],
    now: dt.datetime,
    trend: Sequence[QualityPoint] = (),
    weights: ScoreWeights = DEFAULT_WEIGHTS,
    tracked_fields: Sequence[str] = COMPLETENESS_FIELDS,
    worst_limit: int = 5,
) -> QualityReport:
    """The report for the profiles' facts at ``now`` (one pass), with a stored ``trend``.

    ``trend`` holds earlier points (e.g. one a day, kept by the service); the new point is
    appended (points at or after ``now`` are dropped) so a chart ends at the present.
    """
    builder = ReportBuilder(now, weights, tracked_fields)
    for item in facts:
        builder.add(item)
    return builder.finish(trend, worst_limit)
