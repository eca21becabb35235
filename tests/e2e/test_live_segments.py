"""The whole chain: an event at the front door moves a customer into a segment by itself,
in one trace from ingestion through profile to segmentation."""

from __future__ import annotations

from svod.common.v1 import common_pb2
from svod.segmentation.v1 import segmentation_pb2
from tests.builders import PHONE, identify, random_phone, track, unique
from tests.waiting import wait_until

T = 10.0


def segments_of(suite, customer_id: str) -> set[str]:
    reply = suite.segmentation.GetCustomerSegments(
        segmentation_pb2.GetCustomerSegmentsRequest(customer_id=customer_id), timeout=T
    )
    return set(reply.segment_ids)


def test_an_order_moves_the_customer_into_a_buyers_segment(suite, span_exporter) -> None:
    segment = suite.segmentation.CreateSegment(
        segmentation_pb2.CreateSegmentRequest(
            segment=segmentation_pb2.Segment(
                segment_id=unique("big-spenders"),
                display_name="Big spenders",
                rule=segmentation_pb2.RuleNode(
                    field=segmentation_pb2.FieldCondition(
                        field="metrics.total_spent", operator="ge", values=["5000"]
                    )
                ),
            )
        ),
        timeout=T,
    )
    phone = random_phone()
    request = identify("webshop", phones=(phone,), first_name="Ольга")
    suite.ingestion.Identify(request, timeout=T)
    customer = suite.wait_processed(request.record_ref).customer_id
    assert segment.segment_id not in segments_of(suite, customer)

    order = track(
        "webshop",
        common_pb2.EVENT_TYPE_ORDER_PLACED,
        common_pb2.Identifier(type=PHONE, value=phone),
        total="7500",
    )
    suite.ingestion.Track(order, timeout=T)
    suite.wait_processed(order.record_ref)
    wait_until(lambda: segment.segment_id in segments_of(suite, customer))

    # The announcement to segmentation (batched with others in one ApplyProfileChanges call)
    # continues the trace of the Track call.
    track_span = max(
        (
            s
            for s in span_exporter.get_finished_spans()
            if s.name == "/svod.ingestion.v1.IngestionService/Track"
        ),
        key=lambda s: s.start_time,
    )
    wait_until(
        lambda: any(
            s.name == "segmentation apply profile change"
            and s.context.trace_id == track_span.context.trace_id
            for s in span_exporter.get_finished_spans()
        )
    )
