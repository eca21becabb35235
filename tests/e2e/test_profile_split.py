"""Profile's side of an identity split: the moved records' data leaves, both are recomputed."""

from __future__ import annotations

import uuid

from svod.common.v1 import common_pb2
from svod.profile.v1 import profile_pb2
from tests.builders import CARD, PHONE, identify, random_phone, track

T = 10.0


def test_split_moves_the_records_data_and_is_applied_once(suite) -> None:
    phone = random_phone()
    card = f"2000{uuid.uuid4().int % 10**8:08d}"
    till = identify(
        "pos-msk-01", phones=(phone,), cards=(card,), first_name="Иван", last_name="Петров"
    )
    web = identify("webshop", phones=(phone,), first_name="Пётр", last_name="Петров")
    for request in (till, web):
        suite.ingestion.Identify(request, timeout=T)
        suite.wait_processed(request.record_ref)
    customer = suite.wait_processed(till.record_ref).customer_id
    order = track(
        "webshop",
        common_pb2.EVENT_TYPE_ORDER_PLACED,
        common_pb2.Identifier(type=PHONE, value=phone),
        total="700",
    )
    # Identity keeps Иван and Пётр apart, so the phone alone names neither: the till's card
    # names Иван.
    order.event.identifiers.add(type=CARD, value=card)
    suite.ingestion.Track(order, timeout=T)
    suite.wait_processed(order.record_ref)

    target = str(uuid.uuid4())
    change = profile_pb2.ApplyIdentityChangeRequest(
        change_id=f"split-{target}",
        split=profile_pb2.ApplyIdentityChangeRequest.Split(
            source_customer_id=customer,
            target_customer_id=target,
            moved_records=[web.record_ref],
        ),
    )
    suite.profile.ApplyIdentityChange(change, timeout=T)
    suite.profile.ApplyIdentityChange(change, timeout=T)  # redelivered: no effect

    def get(customer_id: str) -> profile_pb2.Profile:
        return suite.profile.GetProfile(
            profile_pb2.GetProfileRequest(customer_id=customer_id), timeout=T
        )

    stays, moved = get(customer), get(target)
    assert stays.first_name.value == "Иван"
    assert [s.source for s in stays.sources] == ["pos-msk-01"]
    assert moved.first_name.value == "Пётр"
    assert [s.source for s in moved.sources] == ["webshop"]
    # The order is Иван's (his card), so it stays with him.
    assert stays.metrics.order_count == 1 and moved.metrics.order_count == 0
