"""The pure domain: validation paths, built-in classification, access grants."""

from __future__ import annotations

import pytest

from svod_runtime.errors import InvalidArgument, PermissionDenied
from svod_segmentation.domain import builtins
from svod_segmentation.domain.access import UNRESTRICTED, Scope
from svod_segmentation.domain.rules import (
    MAX_RULE_DEPTH,
    AllOf,
    AnyOf,
    BehaviorCondition,
    FieldCondition,
    InSegment,
    Not,
    SegmentDefinition,
    expanded_sizes,
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


def _leaves(count: int) -> AllOf:
    return AllOf(
        tuple(FieldCondition("metrics.order_count", "gt", (str(i),)) for i in range(count))
    )


def _refs(target: str, count: int) -> AnyOf:
    return AnyOf(tuple(InSegment(target) for _ in range(count)))


def test_references_are_bounded_by_their_expanded_size() -> None:
    """Each tree is small (within MAX_RULE_NODES) but references multiply: 199 references to a
    segment of 199 conditions is 40,000 nodes of SQL, refused naming the rule."""
    stored = {"base": SegmentDefinition("base", _leaves(199))}
    found = paths(SegmentDefinition("bomb", _refs("base", 199)), stored)
    assert "40,000 nodes" in found["segment.rule"] and "at most 2,000" in found["segment.rule"]
    # A few references to a small segment are fine.
    validate_definition(SegmentDefinition("fine", _refs("base", 5)), stored)


def test_a_four_level_reference_bomb_is_refused_at_once() -> None:
    """Four levels of 199 references expand to ~1.6e9 nodes; counting them is memoised, so the
    refusal is immediate (the compiled SQL was gigabytes)."""
    import time

    stored = {"l0": SegmentDefinition("l0", _leaves(1))}
    started = time.monotonic()
    for level in range(1, 5):
        definition = SegmentDefinition(f"l{level}", _refs(f"l{level - 1}", 199))
        try:
            validate_definition(definition, stored)
        except InvalidArgument as refused:
            assert refused.violations[0].field == "segment.rule"
            assert level == 2  # 199 x 199 x 2 already too large; level 1 is 597 nodes
            break
        stored[definition.segment_id] = definition
    else:
        raise AssertionError("the reference bomb was accepted")
    assert time.monotonic() - started < 1.0
    sizes = expanded_sizes({**stored, "l2": SegmentDefinition("l2", _refs("l1", 199))})
    assert sizes["l2"] == 1 + 199 * (1 + sizes["l1"])


def test_growing_a_referenced_segment_cannot_push_a_referrer_over_the_bound() -> None:
    stored = {
        "small": SegmentDefinition("small", _leaves(3)),
        "user": SegmentDefinition("user", _refs("small", 150)),
    }
    found = paths(SegmentDefinition("small", _leaves(50)), {"user": stored["user"]})
    assert "segment 'user' refers to this one" in found["segment.rule"]


def test_all_segments_together_are_bounded() -> None:
    from svod_runtime.errors import FailedPrecondition

    stored = {f"s{i}": SegmentDefinition(f"s{i}", _leaves(199)) for i in range(100)}
    with pytest.raises(FailedPrecondition, match="all segments together"):
        validate_definition(SegmentDefinition("one-more", _leaves(199)), stored)


def test_rule_texts_are_bounded_and_free_of_nul() -> None:
    rule = AllOf(
        (
            FieldCondition("city", "eq", ("Моск\x00ва",)),
            FieldCondition("city", "in", tuple(str(i) for i in range(1001))),
            BehaviorCondition("order_placed", "count", "ge", 1, 30, (("property.x", "v" * 1001),)),
        )
    )
    found = paths(SegmentDefinition("texts", rule))
    assert set(found) == {
        "segment.rule.all.nodes[0].field.values[0]",
        "segment.rule.all.nodes[1].field.values",
        "segment.rule.all.nodes[2].behavior.filters[property.x]",
    }
    found = paths(
        SegmentDefinition("p", builtin="rfm", parameters={"population": "\x00", "k" * 70: "v"})
    )
    assert set(found) == {
        "segment.builtin_parameters[population]",
        "segment.builtin_parameters[" + "k" * 64 + "] name",
    }


def test_display_names_and_descriptions_are_bounded() -> None:
    from svod_segmentation.domain.validation import check_descriptions

    check_descriptions("Лояльные", "Покупали за последние 90 дней")
    with pytest.raises(InvalidArgument) as refused:
        check_descriptions("x" * 201, "\x00")
    assert [v.field for v in refused.value.violations] == [
        "segment.display_name",
        "segment.description",
    ]
