"""Built-ins over a population of this test's customers: RFM, ABC, temperature, behaviour."""

from __future__ import annotations

import json

from services.segmentation.tests.helpers import (
    Customer,
    T,
    create,
    days_ago,
    event,
    seg_id,
    tagged,
)
from svod.segmentation.v1 import segmentation_pb2 as pb


def labels(stub, segment_id: str) -> dict[str, str]:
    page = stub.ListMembers(pb.ListMembersRequest(segment_id=segment_id, page_size=1000), timeout=T)
    return {m.customer_id: m.label for m in page.members}


def test_rfm_and_abc(suite, tag) -> None:
    stub = suite.segmentation
    population = seg_id("pop")
    create(stub, population, tagged(tag))
    customers = []
    # Ten customers: the i-th bought i+1 times, i*1000 RUB each, last time 10*(10-i) days ago.
    for i in range(10):
        c = Customer(tag)
        orders = [c.order(days_ago(10 * (10 - i) + k), 1000 * (i + 1)) for k in range(i + 1)]
        stub.ApplyProfileChange(c.change(orders), timeout=T)
        customers.append(c)
    never = Customer(tag)
    stub.ApplyProfileChange(never.change(), timeout=T)

    rfm = seg_id("rfm")
    created = create(stub, rfm, builtin="rfm", builtin_parameters={"population": population})
    state = json.loads(created.builtin_state)
    assert state["customers"] == 10
    got = labels(stub, rfm)
    assert never.customer_id not in got
    assert got[customers[9].customer_id] == "champions"
    assert got[customers[0].customer_id] == "lost"

    abc = seg_id("abc")
    create(stub, abc, builtin="abc", builtin_parameters={"population": population})
    got = labels(stub, abc)
    # Revenue of customer i is (i+1)^2 * 1000: 385k in all. Cumulated from the top, the fifth
    # crosses 80 % (294k before it), so A is the top five; B takes up to 95 %.
    spent = {c.customer_id: (i + 1) ** 2 for i, c in enumerate(customers)}
    a = {cid for cid, label in got.items() if label == "A"}
    assert a == {c.customer_id for c in customers[5:]}
    assert sum(spent[cid] for cid in a) / sum(spent.values()) >= 0.8
    assert [got[c.customer_id] for c in customers[:5]] == ["C", "C", "C", "B", "B"]

    # Rule segments may pick classes of a built-in: champions with email consent.
    champions = seg_id("champ")
    create(
        stub,
        champions,
        pb.RuleNode(in_segment=pb.SegmentRef(segment_id=rfm, labels=["champions", "loyal"])),
    )
    assert customers[9].customer_id in labels(stub, champions)

    # A live change re-classifies against the stored cut-offs: a big order makes C an A.
    poor = customers[0]
    reply = stub.ApplyProfileChange(poor.change([poor.order(days_ago(1), 400000)]), timeout=T)
    assert abc in reply.entered_segment_ids and abc in reply.exited_segment_ids
    assert labels(stub, abc)[poor.customer_id] == "A"


def test_temperature_and_behavior_types(suite, tag) -> None:
    stub = suite.segmentation
    population = seg_id("pop")
    create(stub, population, tagged(tag))
    hot, warm, cold, gone = Customer(tag), Customer(tag), Customer(tag), Customer(tag)
    stub.ApplyProfileChange(
        hot.change([hot.order(days_ago(3), 100), hot.order(days_ago(20), 200)]), timeout=T
    )
    stub.ApplyProfileChange(warm.change([event("campaign_opened", days_ago(2))]), timeout=T)
    stub.ApplyProfileChange(cold.change([event("page_viewed", days_ago(200))]), timeout=T)
    stub.ApplyProfileChange(
        gone.change(
            [event("campaign_opened", days_ago(2)), event("campaign_unsubscribed", days_ago(1))]
        ),
        timeout=T,
    )
    temperature = seg_id("temp")
    create(stub, temperature, builtin="temperature", builtin_parameters={"population": population})
    got = labels(stub, temperature)
    assert got[hot.customer_id] == "hot"
    assert got[warm.customer_id] == "warm"
    assert got[cold.customer_id] == "cold"
    assert got[gone.customer_id] == "cold"

    hunter, regular, looker, impulse, planner = (Customer(tag) for _ in range(5))
    stub.ApplyProfileChange(
        hunter.change([hunter.order(days_ago(d), 100, discount=30) for d in (5, 50, 90)]),
        timeout=T,
    )
    stub.ApplyProfileChange(
        regular.change([regular.order(days_ago(d), 100) for d in (5, 50, 90, 120, 200)]),
        timeout=T,
    )
    stub.ApplyProfileChange(
        looker.change([event("product_viewed", days_ago(d)) for d in range(1, 8)]), timeout=T
    )
    stub.ApplyProfileChange(impulse.change([impulse.order(days_ago(3), 100)]), timeout=T)
    views = [event("product_viewed", days_ago(d)) for d in (4, 5, 6)]
    stub.ApplyProfileChange(planner.change([*views, planner.order(days_ago(3), 100)]), timeout=T)
    kinds = seg_id("kinds")
    created = create(
        stub, kinds, builtin="behavior_type", builtin_parameters={"population": population}
    )
    got = labels(stub, kinds)
    assert got[hunter.customer_id] == "discount_driven"
    assert got[regular.customer_id] == "loyal"
    assert got[looker.customer_id] == "just_looking"
    assert got[impulse.customer_id] == "impulsive"
    assert got[planner.customer_id] == "purposeful"
    assert got[hot.customer_id] == "impulsive"  # two orders, no product views
    assert created.member_count == 6  # who never bought nor looked around has no type

    # Only some classes: a segment of the discount hunters.
    hunters = seg_id("hunters")
    create(
        stub,
        hunters,
        builtin="behavior_type",
        builtin_parameters={"population": population, "classes": "discount_driven"},
    )
    assert set(labels(stub, hunters)) == {hunter.customer_id}
