"""RFM classes do not drift at cut-off ties: a full recompute, a later incremental change, a
second recompute and a preview all classify customers exactly on a cut-off alike, and every
member carries the R/F/M scores its class comes from."""

from __future__ import annotations

import datetime as dt
import json
import time

from services.segmentation.tests.helpers import Customer, T, create, now, seg_id, tagged
from svod.segmentation.v1 import segmentation_pb2 as pb
from svod_segmentation.domain.builtins import rfm_label


def _members(stub, segment_id: str) -> dict[str, pb.Member]:
    page = stub.ListMembers(pb.ListMembersRequest(segment_id=segment_id, page_size=1000), timeout=T)
    return {m.customer_id: m for m in page.members}


def _classes(stub, segment_id: str) -> dict[str, str]:
    return {c: m.label for c, m in _members(stub, segment_id).items()}


def test_customers_exactly_on_a_cut_off_keep_their_class(suite, tag) -> None:
    stub = suite.segmentation
    population = seg_id("pop")
    create(stub, population, tagged(tag))
    # Six customers: with six values, the 20/40/60/80 % quantiles fall exactly on the 2nd to
    # 5th customers' values, so four customers sit exactly on a recency cut-off (and on a
    # frequency and a monetary one).
    base = now().replace(microsecond=0)
    customers = []
    for k in range(6):
        c = Customer(tag)
        orders = [c.order(base - dt.timedelta(days=k + 1, hours=j), 500) for j in range(6 - k)]
        stub.ApplyProfileChange(c.change(orders), timeout=T)
        customers.append(c)

    rfm = seg_id("rfm")
    created = create(stub, rfm, builtin="rfm", builtin_parameters={"population": population})
    state = json.loads(created.builtin_state)
    assert state["r_days"] == [2.0, 3.0, 4.0, 5.0]  # the cut-offs as ages, in days
    assert [dt.datetime.fromisoformat(t) for t in state["r_cutoff_times"]] == [
        base - dt.timedelta(days=d) for d in (2, 3, 4, 5)
    ]
    members = _members(stub, rfm)
    scores = [members[c.customer_id].rfm_scores for c in customers]
    # On a cut-off: a last order at a recency cut-off earns its point, an order count or a sum
    # equal to a frequency or monetary cut-off does not (it must be more).
    assert [s.recency for s in scores] == [5, 5, 4, 3, 2, 1]
    assert [s.frequency for s in scores] == [5, 4, 3, 2, 1, 1]
    assert [s.monetary for s in scores] == [5, 4, 3, 2, 1, 1]
    for c, s in zip(customers, scores, strict=True):
        assert members[c.customer_id].label == rfm_label(s.recency, s.frequency, s.monetary)
    classes = _classes(stub, rfm)

    # Later, each customer changes (an unrelated field): classified against the same cut-offs,
    # nobody on a cut-off moves.
    time.sleep(0.2)
    changes = []
    for c in customers:
        c.city = "Казань"
        changes.append(c.change())
    reply = stub.ApplyProfileChanges(pb.ApplyProfileChangesRequest(changes=changes), timeout=T)
    for result in reply.results:
        assert rfm not in result.entered_segment_ids and rfm not in result.exited_segment_ids
    assert _classes(stub, rfm) == classes

    # A preview of each class agrees with the stored membership.
    for label in set(classes.values()):
        preview = stub.PreviewSegment(
            pb.PreviewSegmentRequest(
                rule=pb.RuleNode(in_segment=pb.SegmentRef(segment_id=rfm, labels=[label])),
                sample_size=100,
            ),
            timeout=T,
        )
        expected = sorted(c for c, got in classes.items() if got == label)
        assert sorted(preview.sample_customer_ids) == expected
        assert preview.count == len(expected)

    # A second full recompute, later, computes the same cut-offs and moves nobody.
    time.sleep(0.2)
    outcome = stub.RecomputeSegments(pb.RecomputeSegmentsRequest(segment_ids=[rfm]), timeout=T)
    assert (outcome.entered_count, outcome.exited_count) == (0, 0)
    assert _classes(stub, rfm) == classes

    # A customer's segments carry the scores too.
    mine = stub.GetCustomerSegments(
        pb.GetCustomerSegmentsRequest(customer_id=customers[0].customer_id), timeout=T
    )
    (rfm_membership,) = [m for m in mine.memberships if m.segment_id == rfm]
    assert rfm_membership.rfm_scores.recency == 5
