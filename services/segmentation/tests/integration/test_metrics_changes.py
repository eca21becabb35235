"""Metrics changes (ApplyProfileChangeRequest.metrics): a change that only applied events
carries the profile's metrics alone; the read model versions them apart from the rest, so
changes arriving out of order leave it as in order."""

from __future__ import annotations

from services.segmentation.tests.helpers import (
    Customer,
    T,
    all_of,
    create,
    days_ago,
    field_node,
    member_ids,
    seg_id,
    tagged,
)
from svod.profile.v1 import profile_pb2
from svod.segmentation.v1 import segmentation_pb2 as pb
from svod_runtime.protoconv import datetime_to_timestamp


def metrics_change(customer: Customer, version: int, orders: int) -> pb.ApplyProfileChangeRequest:
    return pb.ApplyProfileChangeRequest(
        customer_id=customer.customer_id,
        profile_version=version,
        metrics=profile_pb2.Metrics(order_count=orders),
        profile_update_time=datetime_to_timestamp(days_ago(0)),
    )


def apply(suite, *changes: pb.ApplyProfileChangeRequest) -> list[pb.ProfileChangeResult]:
    reply = suite.segmentation.ApplyProfileChanges(
        pb.ApplyProfileChangesRequest(changes=list(changes)), timeout=T
    )
    assert not any(r.HasField("error") for r in reply.results)
    return list(reply.results)


def test_metrics_alone_update_the_metrics_and_keep_the_rest(suite, tag) -> None:
    stub = suite.segmentation
    regulars = seg_id("metrics-regulars")
    create(stub, regulars, all_of(tagged(tag), field_node("metrics.order_count", "ge", "3")))
    in_omsk = seg_id("metrics-omsk")
    create(stub, in_omsk, all_of(tagged(tag), field_node("city", "eq", "Омск")))
    anna = Customer(tag, city="Казань")
    apply(suite, anna.change())  # version 1, whole

    # Version 3 (metrics alone) arrives before version 2 (whole, from another write).
    [entered] = apply(suite, metrics_change(anna, 3, orders=3))
    assert entered.profile_applied
    assert list(entered.entered_segment_ids) == [regulars]
    anna.city = "Омск"
    anna.version = 1
    late_whole = anna.change()  # version 2, whole, with order_count 0
    [moved] = apply(suite, late_whole)
    # Its city is newer than the one held; its metrics are older than those held.
    assert moved.profile_applied
    assert list(moved.entered_segment_ids) == [in_omsk]
    assert list(moved.exited_segment_ids) == []
    assert member_ids(stub, regulars) == {anna.customer_id}
    # Metrics not newer than those held are ignored.
    [stale] = apply(suite, metrics_change(anna, 2, orders=0))
    assert not stale.profile_applied
    assert member_ids(stub, regulars) == {anna.customer_id}
    # A newer metrics change takes them out again, and keeps the city.
    [left] = apply(suite, metrics_change(anna, 4, orders=1))
    assert list(left.exited_segment_ids) == [regulars]
    assert member_ids(stub, in_omsk) == {anna.customer_id}


def test_metrics_of_a_customer_not_seen_before_wait_for_its_whole_profile(suite, tag) -> None:
    stub = suite.segmentation
    regulars = seg_id("metrics-new")
    create(stub, regulars, all_of(tagged(tag), field_node("metrics.order_count", "ge", "3")))
    boris = Customer(tag)
    [first] = apply(suite, metrics_change(boris, 5, orders=4))
    assert first.profile_applied
    assert list(first.entered_segment_ids) == []  # not tagged yet: no attributes held
    boris.version = 3
    [whole] = apply(suite, boris.change())  # version 4: older metrics, its attributes new
    assert whole.profile_applied
    assert list(whole.entered_segment_ids) == [regulars]
