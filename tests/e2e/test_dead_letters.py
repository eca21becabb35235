"""Dead letters over the API and `svod deadletters`: a message refused for good is listed and
shown (no payload), sent again once the cause is fixed, and then has its effect exactly once.

The refusal comes from ingestion's own relay: its event handler is wrapped, for the length of
the test, to refuse every event as a broken receiver would (FAILED_PRECONDITION); "the fix" puts
the real handler back. Everything else is the running suite: the outbox, the RPCs, the CLI,
profile's metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import pytest

from svod.common.v1 import common_pb2
from svod.identity.v1 import identity_pb2_grpc
from svod.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from svod.profile.v1 import profile_pb2, profile_pb2_grpc
from svod.segmentation.v1 import segmentation_pb2_grpc
from svod_runtime.outbox import DeliveryError, OutboxMessage, OutboxRelay
from tests.builders import PHONE, identify, random_phone, track
from tests.e2e.test_cli import point_at, run_cli
from tests.e2e.test_identify_slice import field_violations
from tests.waiting import wait_until

T = 10.0
ORDER = common_pb2.EVENT_TYPE_ORDER_PLACED
TOPIC = "record.track"


def _relay(suite, service: str) -> OutboxRelay:  # type: ignore[no-untyped-def]
    for job in suite.suite.apps[service].background:
        if isinstance(getattr(job, "__self__", None), OutboxRelay):
            return job.__self__
    raise AssertionError(f"{service} runs no outbox relay")


@pytest.fixture
def broken_track_receiver(suite) -> Iterator[Callable[[], None]]:  # type: ignore[no-untyped-def]
    """Makes ingestion's event delivery refuse everything; yields the fix."""
    relay = _relay(suite, "ingestion")
    real = relay.batch_handlers[TOPIC]

    async def refuse(messages: list[OutboxMessage]) -> list[DeliveryError | None]:
        # One verdict per message (not a whole-call failure): each is refused for good.
        return [
            DeliveryError("FAILED_PRECONDITION", "receiver refused the event") for _ in messages
        ]

    def fix() -> None:
        relay.batch_handlers[TOPIC] = real

    relay.batch_handlers[TOPIC] = refuse
    try:
        yield fix
    finally:
        fix()


def _dead_ids(stub: ingestion_pb2_grpc.IngestionServiceStub) -> set[int]:
    reply = stub.ListDeadLetters(
        common_pb2.ListDeadLettersRequest(topic=TOPIC, page_size=500), timeout=T
    )
    return {d.dead_letter_id for d in reply.dead_letters}


def test_a_refused_event_is_listed_shown_redriven_after_the_fix_and_counted_once(
    suite, broken_track_receiver, monkeypatch
) -> None:
    phone = random_phone()
    who = identify("webshop", phones=(phone,))
    suite.ingestion.Identify(who, timeout=T)
    customer = suite.wait_processed(who.record_ref).customer_id
    assert customer
    before = _dead_ids(suite.ingestion)

    order = track(
        "webshop",
        ORDER,
        common_pb2.Identifier(type=PHONE, value=phone),
        total="1234.50",
        lines=(("shoes", 1, "1234.50", "0"),),
    )
    suite.ingestion.Track(order, timeout=T)
    status = suite.wait_processed(order.record_ref)
    assert status.state == ingestion_pb2.RecordStatus.STATE_FAILED
    assert status.last_error == "FAILED_PRECONDITION: receiver refused the event"

    new = _dead_ids(suite.ingestion) - before
    assert len(new) == 1
    (dead_id,) = new
    dead = suite.ingestion.GetDeadLetter(
        common_pb2.GetDeadLetterRequest(dead_letter_id=dead_id), timeout=T
    )
    assert (dead.topic, dead.attempts, dead.redrive_count) == (TOPIC, 1, 0)
    assert dead.last_error == "FAILED_PRECONDITION: receiver refused the event"
    assert dead.fail_time.seconds >= dead.create_time.seconds > 0
    assert phone.replace(" ", "")[-7:] not in str(dead)  # no payload, no personal data

    point_at(monkeypatch, suite.suite)
    listed = run_cli("deadletters", "list", "--service", "ingestion", "--topic", TOPIC, "--json")
    assert listed.code == 0
    assert dead_id in {int(d["dead_letter_id"]) for d in listed.json()["dead_letters"]}
    shown = run_cli("deadletters", "show", "--service", "ingestion", dead_id)
    assert shown.code == 0
    assert "receiver refused the event" in shown.out and TOPIC in shown.out

    # The receiver is fixed; the dead letter goes again and is delivered, once.
    broken_track_receiver()
    redriven = run_cli("deadletters", "redrive", "--service", "ingestion", dead_id)
    assert redriven.code == 0, redriven.err
    assert "1 dead letters of ingestion sent again" in redriven.out
    status = wait_until(
        lambda: suite.ingestion.GetRecordStatus(
            ingestion_pb2.GetRecordStatusRequest(record_ref=order.record_ref), timeout=T
        ),
        20,
        "the redriven order delivered",
        0.1,
        until=lambda s: s.state == ingestion_pb2.RecordStatus.STATE_DELIVERED,
    )
    assert status.customer_id == customer
    metrics = suite.profile.GetProfile(
        profile_pb2.GetProfileRequest(customer_id=customer), timeout=T
    ).metrics
    assert metrics.order_count == 1
    assert (metrics.total_spent.units, metrics.total_spent.nanos) == (1234, 500_000_000)
    # Gone from the dead letters: a second redrive names it as not found, changes nothing.
    again = run_cli("deadletters", "redrive", "--service", "ingestion", dead_id)
    assert again.code == 1 and "NOT_FOUND" in again.err
    assert dead_id not in _dead_ids(suite.ingestion)


STUBS = {
    "ingestion": ingestion_pb2_grpc.IngestionServiceStub,
    "identity": identity_pb2_grpc.IdentityServiceStub,
    "profile": profile_pb2_grpc.ProfileServiceStub,
    "segmentation": segmentation_pb2_grpc.SegmentationServiceStub,
}


@pytest.mark.parametrize("service", sorted(STUBS))
def test_bad_dead_letter_requests_get_precise_statuses(suite, service: str) -> None:
    stub = STUBS[service](suite.channels[service])
    listed = stub.ListDeadLetters(common_pb2.ListDeadLettersRequest(page_size=1000), timeout=T)
    assert listed.total_count >= len(listed.dead_letters)

    def refused(method: str, request: object) -> tuple[grpc.StatusCode, dict[str, str]]:
        with pytest.raises(grpc.RpcError) as caught:
            getattr(stub, method)(request, timeout=T)
        return caught.value.code(), field_violations(caught.value)

    code, fields = refused("ListDeadLetters", common_pb2.ListDeadLettersRequest(page_size=-1))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "page_size" in fields
    code, fields = refused("ListDeadLetters", common_pb2.ListDeadLettersRequest(page_token="x"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in fields
    code, fields = refused("ListDeadLetters", common_pb2.ListDeadLettersRequest(topic="nope"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "topic" in fields
    code, fields = refused("GetDeadLetter", common_pb2.GetDeadLetterRequest(dead_letter_id=0))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "dead_letter_id" in fields
    code, _ = refused("GetDeadLetter", common_pb2.GetDeadLetterRequest(dead_letter_id=2**62))
    assert code == grpc.StatusCode.NOT_FOUND
    code, fields = refused("RedriveDeadLetters", common_pb2.RedriveDeadLettersRequest())
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "dead_letter_ids" in fields
    code, fields = refused(
        "RedriveDeadLetters",
        common_pb2.RedriveDeadLettersRequest(dead_letter_ids=list(range(1, 1002))),
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "dead_letter_ids" in fields
    code, fields = refused(
        "RedriveDeadLetters", common_pb2.RedriveDeadLettersRequest(dead_letter_ids=[5, -1])
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "dead_letter_ids[1]" in fields
    code, _ = refused(
        "RedriveDeadLetters", common_pb2.RedriveDeadLettersRequest(dead_letter_ids=[2**62])
    )
    assert code == grpc.StatusCode.NOT_FOUND
