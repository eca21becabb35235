"""Destinations as a marketer relies on them: signed webhooks that arrive once however the
receiver behaves, live and full syncs that agree, consent enforced at delivery time (an
opt-out after entry is an exit), dead letters that can be sent again, and files a campaign
tool or an ad platform takes as they are."""

from __future__ import annotations

import csv
import time
from collections.abc import Callable

import grpc
import pytest

from svod.common.v1 import common_pb2
from svod.profile.v1 import profile_pb2
from svod.segmentation.v1 import segmentation_pb2 as seg
from svod_cli.suite import free_ports
from svod_segmentation.domain.audiences import sha256_hex
from tests.builders import identify, random_phone, unique
from tests.e2e.webhook_receiver import Receiver
from tests.waiting import wait_until

T = 10.0
SECRET = "s3cret-for-tests-0123456789"


def _eventually(check: Callable[[], object], timeout_s: float = 30.0, what: str = "") -> None:
    wait_until(check, timeout_s, what or "condition", interval_s=0.1)


def _person(suite, source: str, *, consent: int | None, channel: int, email: bool = False):
    phone = random_phone()
    mail = f"{unique('p')}@Example.RU " if email else ""
    who = identify(
        source,
        channel=common_pb2.SOURCE_CHANNEL_BACK_OFFICE,
        phones=(phone,),
        emails=(mail.strip(),) if email else (),
        first_name="Анна",
        last_name="Иванова",
    )
    suite.ingestion.Identify(who, timeout=T)
    customer = suite.wait_processed(who.record_ref).customer_id
    if consent is not None:
        _consent(suite, customer, channel, consent)
    return customer, phone, mail


def _consent(suite, customer: str, channel: int, status: int) -> None:
    suite.profile.UpdateConsent(
        profile_pb2.UpdateConsentRequest(
            customer_id=customer,
            consent=profile_pb2.Consent(channel=channel, status=status, source="crm"),  # type: ignore[arg-type]
        ),
        timeout=T,
    )


def _segment(suite, source: str) -> str:
    segment = suite.segmentation.CreateSegment(
        seg.CreateSegmentRequest(
            segment=seg.Segment(
                segment_id=unique("act"),
                rule=seg.RuleNode(
                    field=seg.FieldCondition(field="sources", operator="contains", values=[source])
                ),
            )
        ),
        timeout=T,
    )
    return segment.segment_id


def _consenting(suite, segment_id: str, channel: str) -> set[str]:
    return {
        m.customer_id
        for m in suite.segmentation.ExportMembers(
            seg.ExportMembersRequest(segment_id=segment_id, consent_channel=channel), timeout=T
        )
    }


def _webhook(suite, url: str) -> str:
    destination = suite.segmentation.CreateDestination(
        seg.CreateDestinationRequest(
            destination=seg.Destination(
                destination_id=unique("hook"),
                kind=seg.Destination.KIND_WEBHOOK,
                consent_channel="sms",
                webhook=seg.WebhookSettings(url=url, secret=SECRET),
            )
        ),
        timeout=T,
    )
    assert destination.webhook.secret_set and not destination.webhook.secret
    return destination.destination_id


def _bind(suite, segment_id: str, destination_id: str, mode: int) -> str:
    binding = suite.segmentation.CreateBinding(
        seg.CreateBindingRequest(
            binding=seg.Binding(segment_id=segment_id, destination_id=destination_id, mode=mode)
        ),
        timeout=T,
    )
    return binding.binding_id


def _deliveries(suite, destination_id: str, state: int = 0) -> list[seg.Delivery]:
    return list(
        suite.segmentation.ListDeliveries(
            seg.ListDeliveriesRequest(destination_id=destination_id, state=state, page_size=500),
            timeout=T,
        ).deliveries
    )


SMS = profile_pb2.CONSENT_CHANNEL_SMS
IN, OUT = profile_pb2.CONSENT_STATUS_OPTED_IN, profile_pb2.CONSENT_STATUS_OPTED_OUT


def test_live_and_full_syncs_agree_and_an_opt_out_after_entry_is_an_exit(suite) -> None:
    (port,) = free_ports(1)
    receiver = Receiver(SECRET, port).start()
    try:
        source = unique("act-src")
        first = [_person(suite, source, consent=IN, channel=SMS)[0] for _ in range(3)]
        silent, _, _ = _person(suite, source, consent=None, channel=SMS)
        segment_id = _segment(suite, source)
        _eventually(lambda: _consenting(suite, segment_id, "sms") == set(first), what="consent")
        destination_id = _webhook(suite, receiver.url)
        live = _bind(suite, segment_id, destination_id, seg.Binding.MODE_LIVE)

        # The live binding starts with a full sync of the consenting members, signed.
        _eventually(lambda: receiver.holding(live), what="first full sync")
        assert set(receiver.holding(live)) == set(first)
        for item in receiver.accepted():
            assert item.signature_ok
            assert item.delivery_id == item.idempotency_key == item.body["delivery_id"]
            assert abs(item.timestamp - time.time()) < 120
        page = receiver.accepted()[0].body["members"][0]["contact"]
        assert page["first_name"] == "Анна" and page["phone"].startswith("+7")
        assert page["consents"]["sms"] == "opted_in"

        # Someone new who consents enters; someone who opts out after entering exits; the
        # member who never consented never reaches the destination.
        newcomer, _, _ = _person(suite, source, consent=IN, channel=SMS)
        _consent(suite, first[0], SMS, OUT)
        expected = {first[1], first[2], newcomer}
        _eventually(lambda: set(receiver.holding(live)) == expected, what="live changes")
        kinds = [
            (c["kind"], c["customer_id"])
            for r in receiver.accepted()
            if r.body["type"] == "changes"
            for c in r.body["changes"]
        ]
        assert ("exited", first[0]) in kinds and ("entered", newcomer) in kinds
        assert silent not in {c for _, c in kinds}

        # A full sync of the same segment now holds exactly what the live sync built up.
        full = _bind(suite, segment_id, destination_id, seg.Binding.MODE_FULL)
        sync = suite.segmentation.StartSync(seg.StartSyncRequest(binding_id=full), timeout=T)
        assert sync.state == seg.Sync.STATE_DONE and sync.delivered_count == 3
        _eventually(lambda: receiver.holding(full), what="full sync")
        assert receiver.holding(full) == receiver.holding(live)
        _eventually(
            lambda: all(
                d.state == seg.Delivery.STATE_DELIVERED for d in _deliveries(suite, destination_id)
            ),
            what="every delivery delivered",
        )
    finally:
        receiver.stop()


def test_a_receiver_down_then_up_gets_everything_exactly_once(suite) -> None:
    (port,) = free_ports(1)
    receiver = Receiver(SECRET, port)  # not listening yet: connections are refused
    source = unique("act-down")
    people = [_person(suite, source, consent=IN, channel=SMS)[0] for _ in range(2)]
    segment_id = _segment(suite, source)
    _eventually(lambda: _consenting(suite, segment_id, "sms") == set(people), what="consent")
    destination_id = _webhook(suite, receiver.url)
    live = _bind(suite, segment_id, destination_id, seg.Binding.MODE_LIVE)
    later, _, _ = _person(suite, source, consent=IN, channel=SMS)
    _eventually(lambda: len(_deliveries(suite, destination_id)) >= 2, what="queued changes")
    _eventually(
        lambda: any(d.attempts >= 2 for d in _deliveries(suite, destination_id)),
        what="refused attempts",
    )
    failing = _deliveries(suite, destination_id)
    assert all(d.state == seg.Delivery.STATE_PENDING for d in failing)
    assert any(d.last_error.startswith("no answer") for d in failing)

    receiver.start()
    try:
        _eventually(
            lambda: all(
                d.state == seg.Delivery.STATE_DELIVERED for d in _deliveries(suite, destination_id)
            ),
            timeout_s=90,
            what="delivered after the receiver came up",
        )
        queued = {d.delivery_id for d in _deliveries(suite, destination_id)}
        kept = receiver.unique()
        assert set(kept) == queued
        # Every person arrived once, in one delivery; sequence order held.
        assert receiver.holding(live) == {c: "" for c in [*people, later]}
        arrival = [r.body["sequence"] for r in receiver.accepted()]
        assert arrival == sorted(arrival)
    finally:
        receiver.stop()


def test_a_4xx_answer_is_a_dead_letter_and_a_redrive_delivers_it(suite) -> None:
    (port,) = free_ports(1)
    receiver = Receiver(SECRET, port, status=422).start()
    try:
        source = unique("act-dead")
        person, _, _ = _person(suite, source, consent=IN, channel=SMS)
        segment_id = _segment(suite, source)
        _eventually(lambda: _consenting(suite, segment_id, "sms") == {person}, what="consent")
        destination_id = _webhook(suite, receiver.url)
        full = _bind(suite, segment_id, destination_id, seg.Binding.MODE_FULL)
        suite.segmentation.StartSync(seg.StartSyncRequest(binding_id=full), timeout=T)
        dead = seg.Delivery.STATE_DEAD_LETTER
        _eventually(lambda: _deliveries(suite, destination_id, dead), what="dead letter")
        (letter,) = _deliveries(suite, destination_id, dead)
        assert letter.attempts == 1 and letter.last_http_status == 422
        assert receiver.accepted() == []

        # Not a dead letter: refused precisely; a dead letter: sent again under its own id.
        with pytest.raises(grpc.RpcError) as refused:
            suite.segmentation.RedriveDeliveries(
                seg.RedriveDeliveriesRequest(
                    destination_id=destination_id,
                    delivery_ids=["00000000-0000-0000-0000-000000000001"],
                ),
                timeout=T,
            )
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
        receiver.status = 200
        redriven = suite.segmentation.RedriveDeliveries(
            seg.RedriveDeliveriesRequest(destination_id=destination_id), timeout=T
        )
        assert redriven.redriven_count == 1
        _eventually(lambda: receiver.unique(), what="redriven delivery")
        assert list(receiver.unique()) == [letter.delivery_id]
        assert set(receiver.holding(full)) == {person}
    finally:
        receiver.stop()


def _start_and_wait(suite, binding_id: str) -> seg.Sync:
    sync = suite.segmentation.StartSync(seg.StartSyncRequest(binding_id=binding_id), timeout=T)
    found: list[seg.Sync] = []

    def done() -> bool:
        found[:] = [suite.segmentation.GetSync(seg.GetSyncRequest(sync_id=sync.sync_id), timeout=T)]
        return found[0].state != seg.Sync.STATE_RUNNING

    _eventually(done, what="sync finished")
    return found[0]


def test_file_and_ad_audience_exports_keep_only_consenting_people(suite) -> None:
    source = unique("act-file")
    email_ch = profile_pb2.CONSENT_CHANNEL_EMAIL
    yes, yes_phone, yes_mail = _person(suite, source, consent=IN, channel=email_ch, email=True)
    _opted_out, _, _ = _person(suite, source, consent=OUT, channel=email_ch, email=True)
    no_mail, no_mail_phone, _ = _person(suite, source, consent=IN, channel=email_ch)
    segment_id = _segment(suite, source)
    _eventually(lambda: _consenting(suite, segment_id, "email") == {yes, no_mail}, what="consents")
    file_destination = suite.segmentation.CreateDestination(
        seg.CreateDestinationRequest(
            destination=seg.Destination(
                destination_id=unique("csv"),
                kind=seg.Destination.KIND_FILE,
                consent_channel="email",
                file=seg.FileSettings(format=seg.FileSettings.FORMAT_CSV),
            )
        ),
        timeout=T,
    )
    binding = _bind(suite, segment_id, file_destination.destination_id, seg.Binding.MODE_FULL)
    sync = _start_and_wait(suite, binding)
    assert sync.state == seg.Sync.STATE_DONE, sync.error
    assert (sync.member_count, sync.delivered_count) == (3, 1)
    assert (sync.skipped_no_consent_count, sync.skipped_no_contact_count) == (1, 1)
    with open(sync.file_paths[0], newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["customer_id"] for r in rows] == [yes]
    assert rows[0]["email"] == yes_mail.strip().lower()
    assert rows[0]["first_name"] == "Анна" and rows[0]["consent_email"] == "opted_in"

    meta = suite.segmentation.CreateDestination(
        seg.CreateDestinationRequest(
            destination=seg.Destination(
                destination_id=unique("meta"),
                kind=seg.Destination.KIND_AD_AUDIENCE,
                consent_channel="email",
                ad_audience=seg.AdAudienceSettings(platform=seg.AdAudienceSettings.PLATFORM_META),
            )
        ),
        timeout=T,
    )
    binding = _bind(suite, segment_id, meta.destination_id, seg.Binding.MODE_FULL)
    sync = _start_and_wait(suite, binding)
    assert sync.state == seg.Sync.STATE_DONE, sync.error
    with open(sync.file_paths[0], newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    # Identifiers normalised (e-mail trimmed and lower-cased, phone as E.164 digits) and
    # hashed; an ad audience matches on either, so the person without an e-mail is in by phone.
    assert rows[0] == ["email", "phone"]
    assert sorted(rows[1:]) == sorted(
        [
            [sha256_hex(yes_mail.strip().lower()), sha256_hex(_digits(yes_phone))],
            ["", sha256_hex(_digits(no_mail_phone))],
        ]
    )


def _digits(phone: str) -> str:
    return "".join(ch for ch in phone if ch.isdigit())


def test_bad_destinations_and_bindings_are_refused_precisely(suite) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        suite.segmentation.CreateDestination(
            seg.CreateDestinationRequest(
                destination=seg.Destination(
                    destination_id="Bad Id",
                    kind=seg.Destination.KIND_WEBHOOK,
                    consent_channel="fax",
                    webhook=seg.WebhookSettings(url="ftp://x", secret="short"),
                )
            ),
            timeout=T,
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    file_id = unique("f")
    suite.segmentation.CreateDestination(
        seg.CreateDestinationRequest(
            destination=seg.Destination(
                destination_id=file_id,
                kind=seg.Destination.KIND_FILE,
                consent_channel="email",
                file=seg.FileSettings(format=seg.FileSettings.FORMAT_JSONL),
            )
        ),
        timeout=T,
    )
    segment_id = _segment(suite, unique("nobody"))
    with pytest.raises(grpc.RpcError) as refused:
        _bind(suite, segment_id, file_id, seg.Binding.MODE_LIVE)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as refused:
        _bind(suite, "no-such-segment", file_id, seg.Binding.MODE_FULL)
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    _bind(suite, segment_id, file_id, seg.Binding.MODE_FULL)
    with pytest.raises(grpc.RpcError) as refused:
        suite.segmentation.DeleteDestination(
            seg.DeleteDestinationRequest(destination_id=file_id), timeout=T
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    for call in (
        lambda: suite.segmentation.ListDestinations(
            seg.ListDestinationsRequest(page_size=-1), timeout=T
        ),
        lambda: suite.segmentation.ListDeliveries(
            seg.ListDeliveriesRequest(destination_id=file_id, page_size=-5), timeout=T
        ),
        lambda: suite.segmentation.ListDeliveries(
            seg.ListDeliveriesRequest(destination_id=file_id, page_token="x"), timeout=T
        ),
        lambda: suite.segmentation.GetSync(seg.GetSyncRequest(sync_id="nope"), timeout=T),
        lambda: suite.segmentation.RedriveDeliveries(
            seg.RedriveDeliveriesRequest(destination_id=file_id, delivery_ids=["x"]), timeout=T
        ),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            call()
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
