"""Bad segment definitions: INVALID_ARGUMENT naming the offending node, nothing stored."""

from __future__ import annotations

import grpc
import pytest

from services.segmentation.tests.helpers import (
    T,
    all_of,
    behavior,
    create,
    field_node,
    field_violations,
    not_,
    seg_id,
    tagged,
)
from svod.segmentation.v1 import segmentation_pb2 as pb


def refused(stub, segment: pb.Segment) -> dict[str, str]:
    with pytest.raises(grpc.RpcError) as caught:
        stub.CreateSegment(pb.CreateSegmentRequest(segment=segment), timeout=T)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    return field_violations(caught.value)


def deep(levels: int) -> pb.RuleNode:
    node = field_node("metrics.order_count", "ge", "1")
    for _ in range(levels - 1):
        node = not_(node)
    return node


@pytest.mark.parametrize(
    ("rule", "path", "words"),
    [
        (
            all_of(tagged("x"), field_node("metrics.shoe_size", "eq", "42")),
            "segment.rule.all.nodes[1].field.field",
            "unknown field",
        ),
        (
            all_of(tagged("x"), field_node("metrics.order_count", "gt", "many")),
            "segment.rule.all.nodes[1].field.values[0]",
            "number",
        ),
        (
            field_node("city", "gt", "Москва"),
            "segment.rule.field.operator",
            "does not apply",
        ),
        (
            field_node("metrics.last_order_time", "lt", "yesterday"),
            "segment.rule.field.values[0]",
            "ISO",
        ),
        (
            all_of(tagged("x"), behavior("order_placed", "ge", 2, 0)),
            "segment.rule.all.nodes[1].behavior.window_days",
            "positive",
        ),
        (
            behavior("order_placed", "ge", 2, -30),
            "segment.rule.behavior.window_days",
            "positive",
        ),
        (
            behavior("order_teleported", "ge", 1, 30),
            "segment.rule.behavior.event_type",
            "unknown event type",
        ),
        (
            behavior("order_placed", "ge", 1, 30, colour="red"),
            "segment.rule.behavior.filters[colour]",
            "unknown filter",
        ),
        (
            deep(9),
            "segment.rule.not.not.not.not.not.not.not.not",
            "deeper than 8",
        ),
        (all_of(), "segment.rule.all.nodes", "at least one"),
        (pb.RuleNode(in_segment_id="no-such-segment"), "segment.rule.in_segment.segment_id", "no"),
    ],
)
def test_bad_rules_name_the_node(suite, rule: pb.RuleNode, path: str, words: str) -> None:
    violations = refused(suite.segmentation, pb.Segment(segment_id=seg_id("bad"), rule=rule))
    assert path in violations, violations
    assert words in violations[path]


def test_deepest_allowed_tree_is_accepted(suite) -> None:
    create(suite.segmentation, seg_id("deep"), deep(8))


def test_cycles_between_segments_are_refused(suite, tag) -> None:
    stub = suite.segmentation
    a, b = seg_id("a"), seg_id("b")
    create(stub, a, tagged(tag))
    create(stub, b, all_of(pb.RuleNode(in_segment_id=a), tagged(tag)))
    with pytest.raises(grpc.RpcError) as caught:
        stub.UpdateSegment(
            pb.UpdateSegmentRequest(
                segment=pb.Segment(segment_id=a, rule=all_of(pb.RuleNode(in_segment_id=b)))
            ),
            timeout=T,
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(caught.value)
    assert violations["segment.rule.all.nodes[0].in_segment.segment_id"].startswith("cycle")
    # A segment referring to itself.
    violations = refused(
        stub, pb.Segment(segment_id="self-ref", rule=pb.RuleNode(in_segment_id="self-ref"))
    )
    assert "segment.rule.in_segment.segment_id" in violations


def test_bad_builtin_parameters(suite) -> None:
    violations = refused(
        suite.segmentation,
        pb.Segment(segment_id=seg_id("abc"), builtin="abc", builtin_parameters={"a_share": "1.5"}),
    )
    assert "segment.builtin_parameters[a_share]" in violations
    violations = refused(
        suite.segmentation, pb.Segment(segment_id=seg_id("x"), builtin="astrology")
    )
    assert "segment.builtin" in violations


def test_duplicate_and_stale_update(suite, tag) -> None:
    stub = suite.segmentation
    segment_id = seg_id("dup")
    create(stub, segment_id, tagged(tag))
    with pytest.raises(grpc.RpcError) as caught:
        create(stub, segment_id, tagged(tag))
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.RpcError) as caught:
        stub.UpdateSegment(
            pb.UpdateSegmentRequest(
                segment=pb.Segment(segment_id=segment_id, rule=tagged(tag)), expected_version=7
            ),
            timeout=T,
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_a_reference_bomb_is_refused_at_once(suite, tag) -> None:
    """Levels of 199 references each: every tree is small, but the SQL inlines each reference,
    so two levels would compile to 79,601 nodes (four to ~1.6e9, gigabytes of SQL stalling
    every profile change). The second level is refused naming its rule, without hanging."""
    import time

    stub = suite.segmentation
    base, level1, level2 = seg_id("bomb0"), seg_id("bomb1"), seg_id("bomb2")
    create(stub, base, tagged(tag))
    refs = [pb.RuleNode(in_segment_id=base)] * 199
    create(stub, level1, pb.RuleNode(any=pb.RuleGroup(nodes=refs)))
    started = time.monotonic()
    bomb = pb.RuleNode(any=pb.RuleGroup(nodes=[pb.RuleNode(in_segment_id=level1)] * 199))
    violations = refused(stub, pb.Segment(segment_id=level2, rule=bomb))
    assert time.monotonic() - started < 5.0  # generous: it only shows nothing hung
    assert "79,601 nodes" in violations["segment.rule"]
    with pytest.raises(grpc.RpcError) as missing:
        stub.GetSegment(pb.GetSegmentRequest(segment_id=level2), timeout=T)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    # The same through a preview.
    with pytest.raises(grpc.RpcError) as preview:
        stub.PreviewSegment(pb.PreviewSegmentRequest(rule=bomb), timeout=T)
    assert preview.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    for segment_id in (level1, base):
        stub.DeleteSegment(pb.DeleteSegmentRequest(segment_id=segment_id), timeout=T)
