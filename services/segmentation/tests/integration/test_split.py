"""A split announced as one change: events change hands, both sides are evaluated together,
and a customer merged away before is a customer of its own again."""

from __future__ import annotations

import grpc
import pytest

from services.segmentation.tests.helpers import (
    Customer,
    T,
    all_of,
    behavior,
    create,
    days_ago,
    field_violations,
    member_ids,
    seg_id,
    tagged,
)
from svod.segmentation.v1 import segmentation_pb2 as pb


def _segments(stub, customer_id: str) -> set[str]:
    reply = stub.GetCustomerSegments(
        pb.GetCustomerSegmentsRequest(customer_id=customer_id), timeout=T
    )
    return set(reply.segment_ids)


def test_split_into_a_merged_away_customer_moves_events_and_revives_it(suite, tag) -> None:
    stub = suite.segmentation
    frequent = seg_id("frequent")
    create(stub, frequent, all_of(tagged(tag), behavior("order_placed", "ge", 2, 90)))
    anna, boris = Customer(tag), Customer(tag)
    stub.ApplyProfileChange(anna.change([anna.order(days_ago(5), 100)]), timeout=T)
    boris_orders = [boris.order(days_ago(d), 300) for d in (10, 20)]
    stub.ApplyProfileChange(boris.change(boris_orders), timeout=T)
    assert member_ids(stub, frequent) == {boris.customer_id}

    # Boris is merged into Anna: his orders are hers, his id answers for her.
    anna.orders += boris.orders
    reply = stub.ApplyProfileChange(anna.change(merged_customer_ids=[boris.customer_id]), timeout=T)
    assert frequent in reply.entered_segment_ids
    assert member_ids(stub, frequent) == {anna.customer_id}
    assert _segments(stub, boris.customer_id) == _segments(stub, anna.customer_id)

    # Split back into Boris's own id; one of the moved orders had not reached segmentation yet.
    anna.orders = anna.orders[:1]
    late = boris.order(days_ago(30), 50)
    anna.version += 1
    change = boris.change()
    change.split.CopyFrom(
        pb.ProfileSplit(
            source_customer_id=anna.customer_id,
            source_profile_version=anna.version,
            source_profile=anna.profile(),
            moved_events=[*boris_orders, late],
        )
    )
    reply = stub.ApplyProfileChanges(pb.ApplyProfileChangesRequest(changes=[change]), timeout=T)
    assert not reply.results[0].HasField("error"), reply
    assert frequent in reply.results[0].entered_segment_ids
    assert member_ids(stub, frequent) == {boris.customer_id}
    assert frequent not in _segments(stub, anna.customer_id)
    assert frequent in _segments(stub, boris.customer_id)

    # Redelivered: nothing changes.
    again = stub.ApplyProfileChanges(pb.ApplyProfileChangesRequest(changes=[change]), timeout=T)
    assert not again.results[0].entered_segment_ids and not again.results[0].exited_segment_ids


def test_a_split_from_the_customer_itself_is_refused(suite, tag) -> None:
    anna = Customer(tag)
    change = anna.change()
    change.split.source_customer_id = anna.customer_id
    with pytest.raises(grpc.RpcError) as refused:
        suite.segmentation.ApplyProfileChange(change, timeout=T)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "split.source_customer_id" in field_violations(refused.value)
