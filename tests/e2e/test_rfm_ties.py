"""RFM through the whole chain: customers exactly on a cut-off keep their class when their
profiles change later, previews of a class agree with the members, scores are shown."""

from __future__ import annotations

import datetime as dt
import json

from svod.common.v1 import common_pb2
from svod.profile.v1 import profile_pb2
from svod.segmentation.v1 import segmentation_pb2 as seg
from svod_segmentation.domain.builtins import rfm_label
from tests.builders import PHONE, identify, random_phone, track, unique
from tests.waiting import wait_until

T = 10.0


def _classes(suite, segment_id: str) -> dict[str, seg.Member]:
    page = suite.segmentation.ListMembers(
        seg.ListMembersRequest(segment_id=segment_id, page_size=100), timeout=T
    )
    return {m.customer_id: m for m in page.members}


def _matching_all(suite, *nodes: seg.RuleNode) -> int:
    """How many customers a preview of ``nodes`` together finds."""
    return suite.segmentation.PreviewSegment(
        seg.PreviewSegmentRequest(rule=seg.RuleNode(all=seg.RuleGroup(nodes=list(nodes)))),
        timeout=T,
    ).count


def test_rfm_classes_do_not_drift_at_cut_off_ties(suite) -> None:
    source = unique("pos")
    base = dt.datetime.now(dt.UTC).replace(microsecond=0)
    customers = []
    for k in range(6):  # six customers: the quintile cut-offs fall exactly on four of them
        phone = random_phone()
        who = identify(source, channel=common_pb2.SOURCE_CHANNEL_POS, phones=(phone,))
        suite.ingestion.Identify(who, timeout=T)
        customers.append(suite.wait_processed(who.record_ref).customer_id)
        orders = [
            track(
                source,
                common_pb2.EVENT_TYPE_ORDER_PLACED,
                common_pb2.Identifier(type=PHONE, value=phone),
                occurred=(base - dt.timedelta(days=k + 1, hours=j)).isoformat(),
                total="500",
            )
            for j in range(6 - k)
        ]
        for order in orders:
            suite.ingestion.Track(order, timeout=T)
        for order in orders:
            suite.wait_processed(order.record_ref)
    population = unique("pop")
    suite.segmentation.CreateSegment(
        seg.CreateSegmentRequest(
            segment=seg.Segment(
                segment_id=population,
                rule=seg.RuleNode(
                    field=seg.FieldCondition(field="sources", operator="contains", values=[source])
                ),
            )
        ),
        timeout=T,
    )
    in_population = seg.RuleNode(in_segment_id=population)
    ordered = seg.RuleNode(
        field=seg.FieldCondition(field="metrics.order_count", operator="ge", values=["1"])
    )
    wait_until(  # every order has reached segmentation
        lambda: _matching_all(suite, in_population, ordered),
        15,
        "6 customers with an order",
        0.1,
        until=lambda count: count == 6,
    )
    rfm = unique("rfm")
    created = suite.segmentation.CreateSegment(
        seg.CreateSegmentRequest(
            segment=seg.Segment(
                segment_id=rfm, builtin="rfm", builtin_parameters={"population": population}
            )
        ),
        timeout=T,
    )
    assert json.loads(created.builtin_state)["r_days"] == [2.0, 3.0, 4.0, 5.0]
    before = _classes(suite, rfm)
    assert [before[c].rfm_scores.recency for c in customers] == [5, 5, 4, 3, 2, 1]
    for member in before.values():
        s = member.rfm_scores
        assert member.label == rfm_label(s.recency, s.frequency, s.monetary)

    # Later every profile changes (an e-mail opt-in): classes stay, nobody enters or exits.
    for customer in customers:
        suite.profile.UpdateConsent(
            profile_pb2.UpdateConsentRequest(
                customer_id=customer,
                consent=profile_pb2.Consent(
                    channel=profile_pb2.CONSENT_CHANNEL_EMAIL,
                    status=profile_pb2.CONSENT_STATUS_OPTED_IN,
                    source="crm",
                ),
            ),
            timeout=T,
        )
    opted = seg.RuleNode(
        field=seg.FieldCondition(field="consents.email", operator="eq", values=["opted_in"])
    )
    wait_until(
        lambda: _matching_all(suite, in_population, opted),
        15,
        "6 customers opted in",
        0.1,
        until=lambda count: count == 6,
    )
    after = _classes(suite, rfm)
    assert {c: m.label for c, m in after.items()} == {c: m.label for c, m in before.items()}

    # What a marketer previews for a class is exactly who is in it.
    for label in {m.label for m in after.values()}:
        preview = suite.segmentation.PreviewSegment(
            seg.PreviewSegmentRequest(
                rule=seg.RuleNode(in_segment=seg.SegmentRef(segment_id=rfm, labels=[label])),
                sample_size=100,
            ),
            timeout=T,
        )
        assert sorted(preview.sample_customer_ids) == sorted(
            c for c, m in after.items() if m.label == label
        )
