"""PreviewRules keeps a person's decisions and names identifiers changing hands
(domain/preview.py)."""

from __future__ import annotations

from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.preview import (
    IdentifierChange,
    identifier_changes,
    keep_decisions,
    name_proposed,
)

CARD1, CARD2 = IdentifierKey("loyalty_card", "1"), IdentifierKey("loyalty_card", "2")
PHONE = IdentifierKey("phone", "+79160000000")


def test_a_merge_a_person_made_stays_merged() -> None:
    current = {1: "S", 2: "S", 3: "T"}
    proposed = {1: "x", 2: "y", 3: "z"}  # the rules alone would split S
    kept = keep_decisions(proposed, current, merges=[[1, 2]], kept_apart=())
    assert kept[1] == kept[2] != kept[3]


def test_a_merge_undone_since_is_not_kept() -> None:
    current = {1: "S", 2: "T"}  # split after the merge
    kept = keep_decisions({1: "x", 2: "y"}, current, merges=[[1, 2]], kept_apart=())
    assert kept[1] != kept[2]


def test_customers_kept_apart_are_not_put_together() -> None:
    current = {1: "A", 2: "A", 3: "B", 4: "C"}
    proposed = {1: "x", 2: "x", 3: "x", 4: "x"}
    kept = keep_decisions(proposed, current, merges=(), kept_apart=[frozenset(("A", "B"))])
    assert kept[1] == kept[2] == kept[4] != kept[3]


def test_identifiers_changing_hands() -> None:
    current = {1: "A", 2: "A", 3: "B"}
    proposed = {1: "x", 2: "y", 3: "y"}  # record 2 leaves A for B's customer
    named = name_proposed(proposed, current)
    assert named == {"x": "A", "y": "B"}
    changes = identifier_changes(
        current_owners={CARD1: "A", CARD2: "A", PHONE: "B"},
        proposed_owners={CARD1: "x", PHONE: "y"},
        named=named,
        unlinked={CARD2: "limit"},
    )
    assert changes == [IdentifierChange(CARD2, "A", "unlinked", "", "limit")]
    moved = identifier_changes({CARD1: "A"}, {CARD1: "y"}, named, {})
    assert moved == [IdentifierChange(CARD1, "A", "moves", "B")]
    fresh = identifier_changes({}, {CARD1: "z"}, {"z": ""}, {})
    assert fresh == [IdentifierChange(CARD1, "", "linked", "")]
