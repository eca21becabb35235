"""An event import reaches segmentation as streamed events do: the customers it moves into a
segment are members afterwards, and the membership feed (what segment watchers rely on) has
one enter event each. The five services, real Postgres."""

from __future__ import annotations

import random
from collections.abc import Iterator

import grpc
import pytest

from benchmarks.profile.event_data import event
from svod.common.v1 import common_pb2
from svod.profile.v1 import profile_pb2
from svod.segmentation.v1 import segmentation_pb2 as seg
from tests.builders import identify, random_phone, unique
from tests.waiting import wait_until

T = 10.0


def _segments_of(suite, customer_id: str) -> set[str]:
    reply = suite.segmentation.GetCustomerSegments(
        seg.GetCustomerSegmentsRequest(customer_id=customer_id), timeout=T
    )
    return set(reply.segment_ids)


def _feed(suite, segment_id: str, customers: list[str]) -> dict[str, list[str]]:
    kinds: dict[str, list[str]] = {c: [] for c in customers}
    stream = suite.segmentation.WatchMemberships(
        seg.WatchMembershipsRequest(segment_ids=[segment_id], resume_token="0.0"), timeout=2
    )
    try:
        for item in stream:
            if item.customer_id in kinds:
                kinds[item.customer_id].append(seg.MembershipEvent.Kind.Name(item.kind))
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    return kinds


@pytest.fixture
def regulars(suite) -> Iterator[str]:
    """A segment of everybody with three orders or more - deleted afterwards: on the shared
    suite it would take in other tests' customers (a segmentation test saw it entered)."""
    segment = suite.segmentation.CreateSegment(
        seg.CreateSegmentRequest(
            segment=seg.Segment(
                segment_id=unique("imported-regulars"),
                display_name="Regulars (imported history)",
                rule=seg.RuleNode(
                    field=seg.FieldCondition(
                        field="metrics.order_count", operator="ge", values=["3"]
                    )
                ),
            )
        ),
        timeout=T,
    ).segment_id
    yield segment
    suite.segmentation.DeleteSegment(seg.DeleteSegmentRequest(segment_id=segment), timeout=T)


def test_imported_orders_move_customers_into_segments_with_one_enter_event_each(
    suite, regulars: str
) -> None:
    segment = regulars
    customers = []
    for _ in range(3):
        request = identify("crm", phones=(random_phone(),), first_name="Анна")
        suite.ingestion.Identify(request, timeout=T)
        customers.append(suite.wait_processed(request.record_ref).customer_id)
    regular, other_regular, occasional = customers
    rng = random.Random(9)
    orders = {regular: 5, other_regular: 3, occasional: 2}
    items = [
        event(rng, customer, "history", unique("order"), common_pb2.EVENT_TYPE_ORDER_PLACED)
        for customer, count in orders.items()
        for _ in range(count)
    ]
    import_id = unique("import")
    replies = list(
        suite.profile.StageEventImport(
            iter([profile_pb2.StageEventImportRequest(import_id=import_id, events=items)]),
            timeout=T,
        )
    )
    assert replies[0].staged_count == len(items)
    suite.profile.CommitEventImport(
        profile_pb2.CommitEventImportRequest(import_id=import_id), timeout=T
    )
    wait_until(
        lambda: (
            suite.profile.GetEventImport(
                profile_pb2.GetEventImportRequest(import_id=import_id), timeout=T
            ).state
        ),
        until=lambda state: state == profile_pb2.EventImport.STATE_COMMITTED,
        what="the import committed",
    )
    for customer, count in orders.items():
        profile = suite.profile.GetProfile(
            profile_pb2.GetProfileRequest(customer_id=customer), timeout=T
        )
        assert profile.metrics.order_count == count

    wait_until(
        lambda: {c for c in customers if segment in _segments_of(suite, c)},
        until=lambda members: members == {regular, other_regular},
        what="the regulars in the segment",
    )
    assert _feed(suite, segment, customers) == {
        regular: ["KIND_ENTERED"],
        other_regular: ["KIND_ENTERED"],
        occasional: [],
    }
