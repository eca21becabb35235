"""What the quality service keeps and reads back: stored rules, finding counts, pairs."""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from svod_quality.domain.rules import ValidationRule

__all__ = ["PairKey", "RecordCountRow", "StoredRule", "ViolationRow"]


class StoredRule(NamedTuple):
    rule: ValidationRule
    created_at: dt.datetime
    updated_at: dt.datetime


class ViolationRow(NamedTuple):
    day: dt.date
    source: str
    rule: str
    field: str
    action: str
    # Not `count`: a NamedTuple field must not hide tuple.count.
    findings: int


class RecordCountRow(NamedTuple):
    day: dt.date
    source: str
    records: int
    rejected: int
    flagged: int


class PairKey(NamedTuple):
    """A pair of customer ids in canonical order (first < second)."""

    first: str
    second: str
