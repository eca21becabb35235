"""Which blocking-key candidates a batch looks up and which of them are worth loading
(domain/candidates.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from svod_identity.domain.candidates import candidate_search, candidates_to_load
from svod_identity.domain.engine import GraphState, KnownRecord, person_from
from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.matching.blocking import blocking_keys
from svod_identity.domain.matching.model import default_model
from svod_identity.domain.model import IncomingRecord, RecordRef
from svod_identity.domain.rules import default_rules

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
PHONE = IdentifierKey("phone", "+79155796616")
PLACEHOLDER = IdentifierKey("phone", "+79999999999")
NAME = {"first_name": "Наталья", "last_name": "Пахомова", "birth_date": "1990-02-01"}


def _incoming(n: int, *identifiers: IdentifierKey, **attributes: Any) -> IncomingRecord:
    return IncomingRecord(RecordRef("src", f"m{n}"), "web", T0, identifiers, attributes)


def _stored(pk: int, customer_id: str, **attributes: Any) -> KnownRecord:
    ref = RecordRef("crm", f"s{pk}")
    return KnownRecord(pk, ref, customer_id, person_from(str(pk), attributes, ()), ())


def _keys(record: IncomingRecord) -> set[str]:
    return blocking_keys(person_from("0", record.attributes, record.identifiers))


def test_without_fuzzy_matching_no_candidate_is_looked_up() -> None:
    records = [_incoming(1, PHONE, **NAME)]
    search = candidate_search(
        records, default_rules(), fuzzy=False, candidates_for=[records[0].ref]
    )
    assert search.blocking == ()
    assert search.linkable == ()
    assert search.forced == (0,)


def test_each_record_looks_up_its_blocking_keys_by_its_place_in_the_batch() -> None:
    records = [_incoming(1, PHONE, **NAME), _incoming(2, first_name="Олег", last_name="Ким")]
    search = candidate_search(records, default_rules(), fuzzy=True)
    assert [key for index, key in search.blocking if index == 0] == sorted(_keys(records[0]))
    assert [key for index, key in search.blocking if index == 1] == sorted(_keys(records[1]))
    assert search.forced == ()


def test_an_identifier_the_rules_refuse_does_not_spare_the_candidate_look_up() -> None:
    rules = default_rules()
    assert rules.block_reason(PLACEHOLDER) is not None
    search = candidate_search([_incoming(1, PLACEHOLDER, PHONE)], rules, fuzzy=True)
    assert search.linkable == ((0, PHONE),)


def test_only_the_named_records_are_forced_to_look_up_candidates() -> None:
    records = [_incoming(1, PHONE), _incoming(2, PHONE), _incoming(3)]
    search = candidate_search(
        records, default_rules(), fuzzy=True, candidates_for=[records[2].ref, RecordRef("x", "y")]
    )
    assert search.forced == (2,)


def _state_with_block(record: IncomingRecord, pks: list[int]) -> GraphState:
    state = GraphState()
    for key in _keys(record):
        state.blocks[key] = pks
    return state


def test_a_record_of_the_batch_seen_before_is_no_candidate_for_itself() -> None:
    record = _incoming(1, **NAME)
    state = _state_with_block(record, [5, 6])
    state.records[5] = _stored(5, "a", **NAME)
    candidates = {5: state.records[5], 6: _stored(6, "b", **NAME)}
    loaded = candidates_to_load([record], state, candidates, default_rules(), None)
    assert sorted(loaded) == [6]


def test_with_a_model_only_candidates_scoring_above_new_are_loaded() -> None:
    record = _incoming(1, **NAME)
    namesake = _stored(6, "b", **NAME)
    stranger = _stored(7, "c", first_name="Наталья", last_name="Пахомова", birth_date="1951-11-30")
    state = _state_with_block(record, [6, 7])
    candidates = {6: namesake, 7: stranger}
    loaded = candidates_to_load([record], state, candidates, default_rules(), default_model())
    assert sorted(loaded) == [6]
    # Without a model every fetched candidate is loaded.
    assert sorted(candidates_to_load([record], state, candidates, default_rules(), None)) == [6, 7]
