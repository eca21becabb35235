"""Which records of an import may be placed beside the chunk being written."""

from __future__ import annotations

import datetime as dt

from svod_identity.domain.engine import footprint, split_independent
from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.model import IncomingRecord, RecordRef


def prints(*tokens: str) -> list[frozenset[str]]:
    return [frozenset(t.split()) for t in tokens]


def test_records_sharing_nothing_with_the_busy_chunk_go_now() -> None:
    assert split_independent(prints("a b", "c", "d e"), {"x", "y"}) == ([0, 1, 2], [])


def test_a_record_sharing_a_token_waits_and_so_does_any_later_one_it_could_meet() -> None:
    # 1 meets the busy chunk; 3 meets 1 (which waits), so 3 must come after it; 2 and 4 go.
    now, later = split_independent(prints("a", "b x", "c", "d b", "e"), {"x"})
    assert (now, later) == ([0, 2, 4], [1, 3])


def test_an_earlier_record_that_goes_now_does_not_hold_back_a_later_one() -> None:
    # 0 goes now; 1 waits for the busy chunk and, when placed later, still comes after 0.
    assert split_independent(prints("a", "a x"), {"x"}) == ([0], [1])


def test_footprint_holds_the_record_its_identifiers_and_its_possible_keys() -> None:
    record = IncomingRecord(
        ref=RecordRef("pos", "m-1"),
        channel="pos",
        observed_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        identifiers=(IdentifierKey("phone", "+79164821937"),),
        attributes={"first_name": "Мария", "last_name": "Иванова", "birth_date": "1985-03-14"},
    )
    tokens = footprint(record)
    assert "record\x1fpos\x1fm-1" in tokens
    assert IdentifierKey("phone", "+79164821937").lock_key in tokens
    assert "p:+79164821937" in tokens
    assert any(t.startswith("fb:") for t in tokens) and any(t.startswith("sb:") for t in tokens)
