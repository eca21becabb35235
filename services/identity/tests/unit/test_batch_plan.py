"""Re-resolution's plan (domain/batch.py): existing ids go on, the oldest wins, and every
record ends in its proposed cluster."""

from __future__ import annotations

import itertools

from svod_identity.domain.batch import plan_reresolution


def apply(current: dict[int, str], plan) -> dict[int, str]:
    """The record -> customer mapping after the plan's splits, then merges."""
    now = dict(current)
    for source, target, pks in plan.splits:
        for pk in pks:
            assert now[pk] == source
            now[pk] = target
    for survivor, gone in plan.merges:
        for pk, customer in now.items():
            if customer == gone:
                now[pk] = survivor
    return now


def fresh():
    counter = itertools.count(1)
    return lambda: f"new{next(counter)}"


def test_a_merge_keeps_the_oldest_id() -> None:
    current = {1: "A", 2: "B", 3: "C"}
    created = {"A": (2, "A"), "B": (1, "B"), "C": (3, "C")}
    plan = plan_reresolution({1: "k", 2: "k", 3: "m"}, current, created, fresh())
    assert plan.names == {"k": "B", "m": "C"}
    assert plan.merges == [("B", "A")] and plan.splits == [] and plan.new_customers == []
    assert apply(current, plan) == {1: "B", 2: "B", 3: "C"}


def test_a_split_keeps_the_id_with_most_records_and_names_the_rest_anew() -> None:
    current = {1: "A", 2: "A", 3: "A"}
    plan = plan_reresolution({1: "k", 2: "k", 3: "m"}, current, {"A": (1, "A")}, fresh())
    assert plan.names == {"k": "A", "m": "new1"} and plan.new_customers == ["new1"]
    assert plan.splits == [("A", "new1", [3])] and plan.merges == []


def test_a_customer_split_and_merged_away_moves_each_record_once() -> None:
    # B's records go to A's cluster (most of them) and to C's; A is older than B.
    current = {1: "A", 2: "B", 3: "B", 4: "B", 5: "C"}
    created = {"A": (1, "A"), "B": (2, "B"), "C": (3, "C")}
    proposed = {1: "k", 2: "k", 3: "k", 4: "m", 5: "m"}
    plan = plan_reresolution(proposed, current, created, fresh())
    assert plan.names == {"k": "A", "m": "C"}
    assert plan.splits == [("B", "C", [4])] and plan.merges == [("A", "B")]
    after = apply(current, plan)
    assert after == {1: "A", 2: "A", 3: "A", 4: "C", 5: "C"}


def test_an_unchanged_partition_moves_nothing() -> None:
    current = {1: "A", 2: "A", 3: "B"}
    plan = plan_reresolution({1: "x", 2: "x", 3: "y"}, current, {"A": 1, "B": 2}, fresh())
    assert plan.splits == [] and plan.merges == [] and plan.new_customers == []
