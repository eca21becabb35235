"""Shared helpers for the matching unit tests."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from typing import Any

import pytest

from svod_identity.domain.matching import PersonRecord, build_person_record

RecordFactory = Callable[..., PersonRecord]


@pytest.fixture
def make_record() -> RecordFactory:
    """Builds PersonRecords from source spellings; keys are unique within a test."""
    counter = itertools.count(1)

    def make(**fields: Any) -> PersonRecord:
        birth = fields.pop("birth_date", None)
        if isinstance(birth, str):
            birth = dt.date.fromisoformat(birth)
        return build_person_record(
            fields.pop("record_key", f"r{next(counter)}"), birth_date=birth, **fields
        )

    return make
