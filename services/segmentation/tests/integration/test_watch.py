"""WatchMemberships: enter/exit events, resumable without gaps or repeats."""

from __future__ import annotations

import threading

import grpc

from services.segmentation.tests.helpers import (
    Customer,
    T,
    all_of,
    behavior,
    create,
    days_ago,
    seg_id,
    tagged,
)
from svod.segmentation.v1 import segmentation_pb2 as pb
from tests.waiting import wait_until


def collect(stub, request: pb.WatchMembershipsRequest, count: int) -> list[pb.MembershipEvent]:
    """Reads ``count`` events from a watch stream, then hangs up."""
    stream = stub.WatchMemberships(request, timeout=30)
    events: list[pb.MembershipEvent] = []
    for item in stream:
        events.append(item)
        if len(events) == count:
            stream.cancel()
            break
    return events


def until_customer(stub, request: pb.WatchMembershipsRequest, customer_id: str) -> list:
    stream = stub.WatchMemberships(request, timeout=30)
    events = []
    for item in stream:
        events.append(item)
        if item.customer_id == customer_id:
            stream.cancel()
            break
    return events


def test_watch_resumes_without_gaps_or_repeats(suite, tag) -> None:
    stub = suite.segmentation
    segment_id = seg_id("buyers")
    create(stub, segment_id, all_of(tagged(tag), behavior("order_placed", "ge", 1, 30)))
    customers = [Customer(tag) for _ in range(6)]
    for customer in customers[:3]:
        stub.ApplyProfileChange(customer.change([customer.order(days_ago(1), 100)]), timeout=T)

    # "0.0" is the start of the history.
    first = collect(
        stub, pb.WatchMembershipsRequest(segment_ids=[segment_id], resume_token="0.0"), 3
    )
    assert [e.customer_id for e in first] == [c.customer_id for c in customers[:3]]
    assert all(e.kind == pb.MembershipEvent.KIND_ENTERED for e in first)

    # A client that stays connected sees later changes live.
    live: list[pb.MembershipEvent] = []
    watcher = threading.Thread(
        target=lambda: live.extend(
            collect(
                stub,
                pb.WatchMembershipsRequest(
                    segment_ids=[segment_id], resume_token=first[-1].resume_token
                ),
                4,
            )
        )
    )
    watcher.start()
    for customer in customers[3:]:
        stub.ApplyProfileChange(customer.change([customer.order(days_ago(1), 100)]), timeout=T)
    # One leaves (erased on request).
    stub.EraseCustomer(pb.EraseCustomerRequest(customer_id=customers[0].customer_id), timeout=T)
    watcher.join(20)
    assert len(live) == 4
    assert [e.customer_id for e in live[:3]] == [c.customer_id for c in customers[3:]]
    assert live[-1].kind == pb.MembershipEvent.KIND_EXITED
    assert live[-1].customer_id == customers[0].customer_id

    # Reconnecting from the middle replays exactly what followed: nothing missed, nothing twice.
    again = collect(
        stub,
        pb.WatchMembershipsRequest(segment_ids=[segment_id], resume_token=first[1].resume_token),
        5,
    )
    assert [e.resume_token for e in again] == [e.resume_token for e in first[2:] + live]
    assert len({e.resume_token for e in first + live}) == 7


def test_watch_without_token_starts_now(suite, tag) -> None:
    stub = suite.segmentation
    segment_id = seg_id("now")
    create(stub, segment_id, tagged(tag))
    old = Customer(tag)
    stub.ApplyProfileChange(old.change(), timeout=T)
    seen: list[pb.MembershipEvent] = []
    new = Customer("elsewhere")
    new_id = new.customer_id
    watcher = threading.Thread(
        target=lambda: seen.extend(
            until_customer(stub, pb.WatchMembershipsRequest(segment_ids=[segment_id]), new_id)
        )
    )
    watcher.start()

    def seen_by_the_watcher() -> bool:
        # The stream takes its starting point when it opens: the new customer enters and
        # leaves until the stream has seen one of those.
        new.tag = tag if new.tag != tag else "elsewhere"
        stub.ApplyProfileChange(new.change(), timeout=T)
        watcher.join(0.3)
        return not watcher.is_alive()

    wait_until(seen_by_the_watcher, 15, "the watcher seeing the new customer", interval_s=0)
    # It starts about now: a transaction that committed as it opened may still show.
    assert seen[-1].customer_id == new.customer_id
    assert {e.customer_id for e in seen} <= {old.customer_id, new.customer_id}


def test_bad_resume_token(suite) -> None:
    stream = suite.segmentation.WatchMemberships(
        pb.WatchMembershipsRequest(resume_token="nope"), timeout=T
    )
    try:
        next(iter(stream))
        raise AssertionError("accepted a bad token")
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
