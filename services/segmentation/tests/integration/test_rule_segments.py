"""Rule segments end to end: preview, create, incremental enter/exit, members, history."""

from __future__ import annotations

from services.segmentation.tests.helpers import (
    Customer,
    T,
    all_of,
    behavior,
    days_ago,
    event,
    field_node,
    member_ids,
    not_,
    seg_id,
    tagged,
)
from svod.segmentation.v1 import segmentation_pb2 as pb


def frequent_buyers(tag: str) -> pb.RuleNode:
    """Bought at least twice in the last 90 days (and is one of this test's customers)."""
    return all_of(tagged(tag), behavior("order_placed", "ge", 2, 90))


def test_preview_create_and_live_enter_exit(suite, tag) -> None:
    stub = suite.segmentation
    alice, bob, carol = Customer(tag), Customer(tag), Customer(tag)
    stub.ApplyProfileChange(
        alice.change([alice.order(days_ago(10), 1500), alice.order(days_ago(40), 900)]), timeout=T
    )
    stub.ApplyProfileChange(bob.change([bob.order(days_ago(5), 700)]), timeout=T)
    stub.ApplyProfileChange(
        carol.change([carol.order(days_ago(200), 5000), carol.order(days_ago(300), 10)]),
        timeout=T,
    )

    preview = stub.PreviewSegment(
        pb.PreviewSegmentRequest(rule=frequent_buyers(tag), sample_size=5), timeout=T
    )
    assert preview.count == 1
    assert list(preview.sample_customer_ids) == [alice.customer_id]

    segment_id = seg_id("frequent")
    created = stub.CreateSegment(
        pb.CreateSegmentRequest(
            segment=pb.Segment(
                segment_id=segment_id, display_name="Frequent", rule=frequent_buyers(tag)
            )
        ),
        timeout=T,
    )
    assert created.version == 1
    assert created.member_count == 1
    assert member_ids(stub, segment_id) == {alice.customer_id}

    # Bob's second order: he enters, live.
    reply = stub.ApplyProfileChange(bob.change([bob.order(days_ago(1), 300)]), timeout=T)
    assert reply.profile_applied
    assert list(reply.entered_segment_ids) == [segment_id]
    assert member_ids(stub, segment_id) == {alice.customer_id, bob.customer_id}
    mine = stub.GetCustomerSegments(
        pb.GetCustomerSegmentsRequest(customer_id=bob.customer_id), timeout=T
    )
    assert segment_id in mine.segment_ids

    # A redelivered event counts once; an older profile version is ignored.
    repeat = event("order_placed", days_ago(1), amount=300, message_id="dup-1")
    stub.ApplyProfileChange(carol.change([repeat]), timeout=T)
    stale = carol.change([repeat])
    stale.profile_version = 1
    reply = stub.ApplyProfileChange(stale, timeout=T)
    assert not reply.profile_applied
    assert carol.customer_id not in member_ids(stub, segment_id)

    # A new version of the rule (3 orders) recomputes the members.
    updated = stub.UpdateSegment(
        pb.UpdateSegmentRequest(
            segment=pb.Segment(
                segment_id=segment_id,
                display_name="Frequent",
                rule=all_of(tagged(tag), behavior("order_placed", "ge", 3, 365)),
            ),
            expected_version=1,
        ),
        timeout=T,
    )
    assert updated.version == 2
    assert member_ids(stub, segment_id) == {carol.customer_id}
    got = stub.GetSegment(pb.GetSegmentRequest(segment_id=segment_id), timeout=T)
    assert got.rule.all.nodes[1].behavior.window_days == 365
    assert got.member_count == 1


def test_field_conditions_and_segment_references(suite, tag) -> None:
    stub = suite.segmentation
    rich, poor = Customer(tag, city="Казань"), Customer(tag, city="Москва")
    rich.attributes["tier"] = "12"
    poor.attributes["tier"] = "3"
    stub.ApplyProfileChange(rich.change([rich.order(days_ago(3), 20000)]), timeout=T)
    stub.ApplyProfileChange(poor.change([poor.order(days_ago(100), 100)]), timeout=T)

    base = seg_id("base")
    stub.CreateSegment(
        pb.CreateSegmentRequest(segment=pb.Segment(segment_id=base, rule=tagged(tag))), timeout=T
    )
    big = seg_id("big")
    rule = all_of(
        pb.RuleNode(in_segment_id=base),
        field_node("metrics.total_spent", "between", "1000", "50000"),
        field_node("metrics.last_order_time", "within_last", "30"),
        field_node("attributes.tier", "gt", "5"),
        field_node("city", "in", "Казань", "Самара"),
        not_(field_node("consents.sms", "eq", "opted_out")),
    )
    stub.CreateSegment(
        pb.CreateSegmentRequest(segment=pb.Segment(segment_id=big, rule=rule)), timeout=T
    )
    assert member_ids(stub, big) == {rich.customer_id}
    assert member_ids(stub, base) == {rich.customer_id, poor.customer_id}

    # The referenced segment is in use: it cannot go.
    try:
        stub.DeleteSegment(pb.DeleteSegmentRequest(segment_id=base), timeout=T)
        raise AssertionError("deleted a segment in use")
    except Exception as error:  # noqa: BLE001
        assert "FAILED_PRECONDITION" in str(error)
    stub.DeleteSegment(pb.DeleteSegmentRequest(segment_id=big), timeout=T)
    listed = stub.ListSegments(pb.ListSegmentsRequest(page_size=1000), timeout=T)
    assert base in {s.segment_id for s in listed.segments}
    assert big not in {s.segment_id for s in listed.segments}


def test_concurrent_changes_are_batched_in_order_and_a_bad_one_fails_alone(suite, tag) -> None:
    stub = suite.segmentation
    segment_id = seg_id("level3")
    stub.CreateSegment(
        pb.CreateSegmentRequest(
            segment=pb.Segment(
                segment_id=segment_id,
                rule=all_of(tagged(tag), field_node("attributes.level", "eq", "3")),
            )
        ),
        timeout=T,
    )
    steady = Customer(tag)
    others = [Customer(tag) for _ in range(30)]
    poisoned = Customer(tag)
    requests = []
    for level in ("1", "2", "3"):  # one customer's versions, sent together
        steady.attributes["level"] = level
        requests.append(steady.change([steady.order(days_ago(1), 100)]))
    for other in others:
        other.attributes["level"] = "3"
        requests.append(other.change([other.order(days_ago(2), 50)]))
    poisoned.attributes["level"] = "bad\x00"  # the database refuses NUL in text
    requests.insert(10, poisoned.change())
    futures = [stub.ApplyProfileChange.future(r, timeout=T) for r in requests]
    failed = []
    for request, future in zip(requests, futures, strict=True):
        try:
            future.result()
        except Exception:  # noqa: BLE001
            failed.append(request.customer_id)
    assert failed == [poisoned.customer_id]
    expected = {steady.customer_id} | {o.customer_id for o in others}
    assert member_ids(stub, segment_id) == expected
    # Every order of the batched changes was stored once, for its own customer.
    preview = stub.PreviewSegment(
        pb.PreviewSegmentRequest(
            rule=all_of(tagged(tag), behavior("order_placed", "ge", 3, 30)), sample_size=5
        ),
        timeout=T,
    )
    assert list(preview.sample_customer_ids) == [steady.customer_id]
