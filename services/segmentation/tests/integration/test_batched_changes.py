"""ApplyProfileChanges: many announcements in one call, each with its own outcome and trace."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2

from services.segmentation.tests.helpers import (
    Customer,
    T,
    create,
    days_ago,
    field_violations,
    member_ids,
    seg_id,
    tagged,
)
from svod.segmentation.v1 import segmentation_pb2 as pb


def test_batch_applies_in_order_and_refuses_only_the_bad_change(suite, tag) -> None:
    stub = suite.segmentation
    segment_id = seg_id("batch-buyers")
    create(stub, segment_id, tagged(tag))
    anna, boris = Customer(tag), Customer(tag)
    first = anna.change([anna.order(days_ago(3), 100)])
    second = anna.change([anna.order(days_ago(1), 200)])
    bad = boris.change()
    bad.profile_version = 0
    fine = boris.change()

    reply = stub.ApplyProfileChanges(
        pb.ApplyProfileChangesRequest(changes=[first, bad, second, fine]), timeout=T
    )

    assert [r.customer_id for r in reply.results] == [
        anna.customer_id,
        boris.customer_id,
        anna.customer_id,
        boris.customer_id,
    ]
    assert [r.HasField("error") for r in reply.results] == [False, True, False, False]
    assert reply.results[1].error.code == code_pb2.INVALID_ARGUMENT
    details = error_details_pb2.BadRequest()
    assert reply.results[1].error.details[0].Unpack(details)
    assert [v.field for v in details.field_violations] == ["changes[1].profile_version"]
    # Anna's two changes were applied in the order given: the later one is held, and both of
    # its orders count.
    assert reply.results[0].profile_applied and reply.results[2].profile_applied
    assert list(reply.results[0].entered_segment_ids) == [segment_id]
    assert member_ids(stub, segment_id) == {anna.customer_id, boris.customer_id}
    segments = stub.GetCustomerSegments(
        pb.GetCustomerSegmentsRequest(customer_id=anna.customer_id), timeout=T
    )
    assert list(segments.segment_ids) == [segment_id]
    # A stale change (not newer than the one held) is not applied.
    stale = pb.ApplyProfileChangeRequest()
    stale.CopyFrom(first)
    again = stub.ApplyProfileChanges(pb.ApplyProfileChangesRequest(changes=[stale]), timeout=T)
    assert not again.results[0].profile_applied
    assert not again.results[0].HasField("error")


@pytest.mark.parametrize("count", [0, 1001])
def test_batch_size_is_bounded(suite, tag, count) -> None:
    changes = [Customer(tag).change() for _ in range(count)]
    with pytest.raises(grpc.RpcError) as caught:
        suite.segmentation.ApplyProfileChanges(
            pb.ApplyProfileChangesRequest(changes=changes), timeout=T
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "changes" in field_violations(caught.value)
