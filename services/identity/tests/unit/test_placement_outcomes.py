"""What the resolver says placed a record - outcome, rule and stored evidence - on each path:
a new customer (with or without candidates left to review), an exact link, a fuzzy link, a
repeat. The review screen, the audit ledger and ``ExplainLink`` read these."""

from __future__ import annotations

from services.identity.tests.unit.records import city_model as _model
from services.identity.tests.unit.records import incoming as _record
from svod_identity.domain.engine import GraphState, Placement, Resolver
from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.model import IncomingRecord, ResolutionOutcome
from svod_identity.domain.rules import default_rules

NAME = {"first_name": "Феврония", "last_name": "Муравьева"}
CITY = {"addresses": [{"city": "Кологрив"}]}
PHONE = IdentifierKey("phone", "+79164820001")
OTHER_PHONE = IdentifierKey("phone", "+79164820002")


def _place(*records: IncomingRecord) -> tuple[list[Placement], Resolver]:
    resolver = Resolver(
        GraphState(), default_rules(), _model(), new_id=iter("abcdef").__next__, rare_names=False
    )
    return [resolver.resolve(r) for r in records], resolver


def test_a_record_matching_no_one_is_a_new_customer() -> None:
    (placed,), resolver = _place(_record(1, PHONE, **NAME, **CITY))
    assert (placed.outcome, placed.rule) == (ResolutionOutcome.CREATED, "new_customer")
    assert resolver.changes.records[0].evidence == {"kind": "new_customer"}
    assert placed.review_item_ids == ()


def test_a_namesake_left_to_review_still_makes_a_new_customer() -> None:
    """Fuzzy matching ran and found only a review case: the record's rule is "new_customer",
    not "fuzzy", and the candidate goes to a human."""
    (first, second), resolver = _place(
        _record(1, PHONE, **NAME, **CITY), _record(2, OTHER_PHONE, **NAME, **CITY)
    )
    assert second.customer_id != first.customer_id
    assert (second.outcome, second.rule) == (ResolutionOutcome.CREATED, "new_customer")
    assert resolver.changes.records[1].evidence == {"kind": "new_customer"}
    assert len(second.review_item_ids) == 1
    assert resolver.changes.reviews[0].candidate_customer_id == first.customer_id


def test_a_shared_identifier_links_exactly_and_names_the_identifier() -> None:
    (first, second), resolver = _place(
        _record(1, PHONE, **NAME), _record(2, PHONE, first_name="Феня", last_name="Муравьева")
    )
    assert second.customer_id == first.customer_id
    assert (second.outcome, second.rule) == (ResolutionOutcome.LINKED_EXACT, "exact:phone")
    assert resolver.changes.records[1].evidence == {
        "kind": "shared_identifier",
        "identifier": [PHONE.type, PHONE.namespace, PHONE.value],
    }


def test_a_fuzzy_link_names_the_matched_record_and_its_score() -> None:
    born = {"birth_date": "1961-07-19"}
    (first, second), resolver = _place(
        _record(1, PHONE, **NAME, **CITY, **born), _record(2, OTHER_PHONE, **NAME, **CITY, **born)
    )
    assert second.customer_id == first.customer_id
    assert (second.outcome, second.rule) == (ResolutionOutcome.LINKED_FUZZY, "fuzzy")
    evidence = resolver.changes.records[1].evidence
    assert evidence["kind"] == "fuzzy_match"
    assert evidence["record_pk"] == first.record_pk
    assert evidence["probability"] == round(second.score, 6) > 0.5
    assert "rare_full_name" not in evidence


def test_a_repeat_is_already_resolved_and_changes_nothing() -> None:
    record = _record(1, PHONE, **NAME)
    (first, again), resolver = _place(record, record)
    assert again.outcome is ResolutionOutcome.ALREADY_RESOLVED
    assert (again.customer_id, again.record_pk) == (first.customer_id, first.record_pk)
    assert len(resolver.changes.records) == 1
