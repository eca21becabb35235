"""What the ledger records (domain/ledger.py), the review states and the block reasons: the
kinds, states and reasons the API documents, and that no identifier value reaches the
append-only ledger."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from svod_identity.domain.identifiers import BlockReason, IdentifierKey
from svod_identity.domain.ledger import (
    LedgerKind,
    ledger_evidence,
    merge_reason,
    placement_detail,
    placement_kind,
)
from svod_identity.domain.model import RecordRef, ResolutionOutcome
from svod_identity.domain.review import ReviewState
from svod_identity.domain.rules import default_rules

PROTO = Path(__file__).resolve().parents[4] / "protos/svod/identity/v1/identity.proto"
PHONE_EVIDENCE = {
    "kind": "shared_identifier",
    "identifier": ["phone", "", "+79161234567"],
    "record_pk": 42,
}


def _proto_comment_before(field: str) -> str:
    """The comment lines right above a field of identity.proto."""
    lines = PROTO.read_text(encoding="utf-8").splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip() == field)
    comment: list[str] = []
    for line in reversed(lines[:at]):
        if not line.strip().startswith("//"):
            break
        comment.insert(0, line.strip().removeprefix("//"))
    return " ".join(comment)


def test_the_ledger_kinds_are_those_the_api_documents() -> None:
    documented = re.findall(r'"([a-z_]+)"', _proto_comment_before("repeated string kinds = 2;"))
    assert set(documented) == {kind.value for kind in LedgerKind}


def test_the_review_states_are_those_the_api_documents() -> None:
    documented = re.findall(r'"([a-z_]+)"', _proto_comment_before("string state = 8;"))
    assert documented == [state.value for state in ReviewState]


def test_the_block_reasons_are_those_the_api_documents() -> None:
    documented = re.findall(r'"([a-z_]+)"', _proto_comment_before("string blocked_reason = 5;"))
    assert documented == [reason.value for reason in BlockReason]
    rules = default_rules()
    placeholder = rules.block_reason(IdentifierKey("phone", "+79999999999", ""))
    assert placeholder is BlockReason.PLACEHOLDER
    assert rules.block_reason(IdentifierKey("phone", "+79161234567", "")) is None


def test_a_new_customer_is_recorded_as_created_and_any_other_placement_as_a_link() -> None:
    assert placement_kind(ResolutionOutcome.CREATED) is LedgerKind.CUSTOMER_CREATED
    for outcome in (
        ResolutionOutcome.LINKED_EXACT,
        ResolutionOutcome.LINKED_FUZZY,
        ResolutionOutcome.ALREADY_RESOLVED,
    ):
        assert placement_kind(outcome) is LedgerKind.RECORD_LINKED


def test_the_ledger_keeps_an_identifiers_type_never_its_value() -> None:
    kept = ledger_evidence(PHONE_EVIDENCE)
    assert "+79161234567" not in json.dumps(kept)
    assert kept == {"kind": "shared_identifier", "identifier_type": "phone", "record_pk": 42}
    # The record's own evidence (kept with the record, erasable) is left as it was.
    assert PHONE_EVIDENCE["identifier"] == ["phone", "", "+79161234567"]


def test_evidence_without_an_identifier_is_kept_whole() -> None:
    evidence = {"kind": "fuzzy_match", "score": 12.5, "record_pk": 7}
    assert ledger_evidence(evidence) == evidence


@pytest.mark.parametrize("rule", ["phone", "fuzzy"])
def test_a_placement_entry_names_its_rule_beside_the_kept_evidence(rule: str) -> None:
    detail = placement_detail(rule, PHONE_EVIDENCE)
    assert detail["rule"] == rule
    assert detail["identifier_type"] == "phone"
    assert "identifier" not in detail


def test_an_automatic_merge_names_the_record_that_joined_the_customers() -> None:
    assert merge_reason(RecordRef("crm", "m-17")) == "record crm/m-17 links them"
    assert merge_reason(None) == ""
