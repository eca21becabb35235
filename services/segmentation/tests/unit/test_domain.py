"""The pure domain: validation paths, built-in classification, access grants."""

from __future__ import annotations

import pytest

from svod_runtime.errors import InvalidArgument, PermissionDenied
from svod_segmentation.domain import builtins
from svod_segmentation.domain.access import UNRESTRICTED, Scope
from svod_segmentation.domain.rules import (
    MAX_RULE_DEPTH,
    AllOf,
    BehaviorCondition,
    FieldCondition,
    InSegment,
    Not,
    SegmentDefinition,
    rule_from_json,
    rule_to_json,
)
from svod_segmentation.domain.validation import validate_definition


def paths(definition: SegmentDefinition, segments=None) -> dict[str, str]:
    with pytest.raises(InvalidArgument) as caught:
        validate_definition(definition, segments or {})
    return {v.field: v.description for v in caught.value.violations}


def test_every_bad_node_is_reported_with_its_path() -> None:
    rule = AllOf(
        (
            FieldCondition("metrics.order_count", "contains", ("1",)),
            BehaviorCondition("order_placed", "count", "ge", 1.5, 30),
            BehaviorCondition("order_placed", "sum", "ge", 10, 30, measure="weight"),
            FieldCondition("attributes.vip", "gt", ("yes",)),
        )
    )
    found = paths(SegmentDefinition("s1", rule))
    assert set(found) == {
        "segment.rule.all.nodes[0].field.operator",
        "segment.rule.all.nodes[1].behavior.threshold",
        "segment.rule.all.nodes[2].behavior.measure",
        "segment.rule.all.nodes[3].field.values[0]",
    }


def test_depth_limit() -> None:
    node = FieldCondition("age", "ge", ("18",))
    for _ in range(MAX_RULE_DEPTH - 1):
        node = Not(node)
    validate_definition(SegmentDefinition("ok", node), {})
    assert "segment.rule" + ".not" * MAX_RULE_DEPTH in paths(SegmentDefinition("no", Not(node)))


def test_cycle_through_a_builtin_population() -> None:
    segments = {
        "a": SegmentDefinition("a", InSegment("rfm")),
        "rfm": SegmentDefinition("rfm", builtin="rfm", parameters={"population": "b"}),
        "b": SegmentDefinition("b", InSegment("a")),
    }
    found = paths(SegmentDefinition("b", InSegment("a")), segments)
    assert (
        found["segment.rule.in_segment.segment_id"] == "cycle between segments: b -> a -> rfm -> b"
    )


def test_rule_json_round_trip() -> None:
    rule = AllOf(
        (
            Not(FieldCondition("city", "in", ("Москва", "Казань"))),
            BehaviorCondition(
                "campaign_opened", "count", "eq", 0, 60, (("property.channel", "email"),)
            ),
            InSegment("rfm", ("champions",)),
        )
    )
    assert rule_from_json(rule_to_json(rule)) == rule


@pytest.mark.parametrize(
    ("r", "f", "m", "label"),
    [
        (5, 5, 5, "champions"),
        (3, 4, 3, "loyal"),
        (5, 1, 1, "new_customers"),
        (4, 2, 2, "potential_loyalists"),
        (3, 1, 2, "promising"),
        (1, 5, 5, "cant_lose"),
        (2, 3, 3, "at_risk"),
        (2, 1, 1, "hibernating"),
        (1, 1, 1, "lost"),
    ],
)
def test_rfm_map(r: int, f: int, m: int, label: str) -> None:
    assert builtins.rfm_label(r, f, m) == label


def test_quintile_scores_and_abc() -> None:
    cuts = [10.0, 20.0, 30.0, 40.0]
    assert [builtins.score_higher_better(v, cuts) for v in (5, 15, 40, 41)] == [1, 2, 4, 5]
    assert [builtins.score_lower_better(v, cuts) for v in (5, 15, 40, 41)] == [5, 4, 2, 1]
    assert [builtins.abc_label(v, 100, 50) for v in (0, 10, 50, 100)] == [None, "C", "B", "A"]


def test_access_scopes() -> None:
    mkt = Scope("mkt", frozenset({"vip", "lapsed"}))
    assert mkt.allows("vip") and not mkt.allows("all-customers")
    assert mkt.filter(["vip", "all-customers"]) == ["vip"]
    with pytest.raises(PermissionDenied):
        mkt.require("all-customers")
    assert UNRESTRICTED.allows("anything")
