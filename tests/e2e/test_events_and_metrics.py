"""Events through the public API: metrics, idempotency, timeline, consents, merges, bad input."""

from __future__ import annotations

import time

import grpc
import pytest

from svod.common.v1 import common_pb2
from svod.ingestion.v1 import ingestion_pb2
from svod.profile.v1 import profile_pb2
from tests.builders import EMAIL, PHONE, at, identify, money, random_phone, track, unique
from tests.e2e.test_identify_slice import field_violations
from tests.waiting import wait_until

T = 10.0
ORDER = common_pb2.EVENT_TYPE_ORDER_PLACED
RETURN = common_pb2.EVENT_TYPE_ORDER_RETURNED
DELIVERED = ingestion_pb2.RecordStatus.STATE_DELIVERED
FAILED = ingestion_pb2.RecordStatus.STATE_FAILED
UNATTRIBUTED = ingestion_pb2.RecordStatus.STATE_UNATTRIBUTED


def new_customer(suite, **kwargs) -> tuple[str, common_pb2.Identifier]:
    phone = random_phone()
    request = identify("webshop", phones=(phone,), **kwargs)
    suite.ingestion.Identify(request, timeout=T)
    status = suite.wait_processed(request.record_ref)
    assert status.state == DELIVERED
    return status.customer_id, common_pb2.Identifier(type=PHONE, value=phone)


def send(suite, request: ingestion_pb2.TrackRequest) -> ingestion_pb2.RecordStatus:
    suite.ingestion.Track(request, timeout=T)
    return suite.wait_processed(request.record_ref)


def profile(suite, customer_id: str) -> profile_pb2.Profile:
    return suite.profile.GetProfile(
        profile_pb2.GetProfileRequest(customer_id=customer_id), timeout=T
    )


def rub(m) -> str:
    return f"{m.units}.{m.nanos // 10_000_000:02d}"


def test_orders_and_returns_make_exact_metrics_and_a_redelivery_counts_once(suite) -> None:
    customer, who = new_customer(suite)
    first = track(
        "webshop",
        ORDER,
        who,
        occurred="2026-09-01T10:00:00Z",
        total="1500.50",
        lines=(("shoes", 1, "1500.50", "0"),),
        order_id="A-1",
    )
    second = track(
        "pos-msk-01",
        ORDER,
        who,
        occurred="2026-10-05T18:30:00Z",
        total="499.50",
        lines=(("socks", 3, "166.50", "20"),),
        order_id="B-7",
        channel=common_pb2.SOURCE_CHANNEL_POS,
    )
    returned = track("webshop", RETURN, who, occurred="2026-10-07T09:00:00Z", total="499.50")
    for request in (first, second, returned):
        status = send(suite, request)
        assert status.state == DELIVERED and status.customer_id == customer
    # The same event again (a client retry) and the same delivery again (at-least-once relay).
    assert suite.ingestion.Track(first, timeout=T).duplicate
    suite.profile.ApplyEvent(
        profile_pb2.ApplyEventRequest(
            customer_id=customer,
            record_ref=first.record_ref,
            channel=first.channel,
            event=first.event,
        ),
        timeout=T,
    )

    m = profile(suite, customer).metrics
    assert m.order_count == 2
    assert rub(m.total_spent) == "2000.00"
    assert rub(m.average_order_value) == "1000.00"
    assert m.items_bought == 4
    assert m.return_count == 1 and rub(m.total_returned) == "499.50"
    assert m.first_order_time == at("2026-09-01T10:00:00Z")
    assert m.last_order_time == at("2026-10-05T18:30:00Z")
    assert set(m.channels) == {"web", "pos"}


def test_timeline_is_newest_first_and_paginated(suite) -> None:
    customer, who = new_customer(suite)
    days = ["2026-10-01", "2026-10-03", "2026-10-02", "2026-10-05", "2026-10-04"]
    for day in days:
        send(
            suite,
            track("app", common_pb2.EVENT_TYPE_PRODUCT_VIEWED, who, occurred=f"{day}T12:00:00Z"),
        )
    seen, token = [], ""
    while True:
        page = suite.profile.GetTimeline(
            profile_pb2.GetTimelineRequest(customer_id=customer, page_size=2, page_token=token),
            timeout=T,
        )
        seen += [e.occurred_time.ToJsonString()[:10] for e in page.entries]
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(days, reverse=True)
    with pytest.raises(grpc.RpcError) as bad:
        suite.profile.GetTimeline(
            profile_pb2.GetTimelineRequest(customer_id=customer, page_token="garbage"), timeout=T
        )
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def _consent(channel: int, status: int, iso: str, source: str = "webshop") -> profile_pb2.Consent:
    return profile_pb2.Consent(
        channel=channel, status=status, source=source, time=at(iso), legal_basis="consent"
    )


def test_opt_out_wins_over_an_older_opt_in_and_unsubscribe_opts_out(suite) -> None:
    customer, who = new_customer(suite)
    sms = profile_pb2.CONSENT_CHANNEL_SMS
    opt_in, opt_out = profile_pb2.CONSENT_STATUS_OPTED_IN, profile_pb2.CONSENT_STATUS_OPTED_OUT
    update = profile_pb2.UpdateConsentRequest
    suite.profile.UpdateConsent(
        update(customer_id=customer, consent=_consent(sms, opt_out, "2026-10-02T00:00:00Z")),
        timeout=T,
    )
    # An opt-in that arrives later but was given earlier does not undo the opt-out.
    shown = suite.profile.UpdateConsent(
        update(customer_id=customer, consent=_consent(sms, opt_in, "2026-10-01T00:00:00Z")),
        timeout=T,
    )
    assert [(c.channel, c.status) for c in shown.consents] == [(sms, opt_out)]

    email = profile_pb2.CONSENT_CHANNEL_EMAIL
    suite.profile.UpdateConsent(
        update(customer_id=customer, consent=_consent(email, opt_in, "2026-10-01T00:00:00Z")),
        timeout=T,
    )
    send(
        suite,
        track(
            "mailer",
            common_pb2.EVENT_TYPE_CAMPAIGN_UNSUBSCRIBED,
            who,
            occurred="2026-10-10T08:00:00Z",
            contact_channel="email",
            channel=common_pb2.SOURCE_CHANNEL_CAMPAIGN,
        ),
    )
    consents = {c.channel: c.status for c in profile(suite, customer).consents}
    assert consents == {sms: opt_out, email: opt_out}

    with pytest.raises(grpc.RpcError) as bad:
        suite.profile.UpdateConsent(
            update(customer_id=customer, consent=profile_pb2.Consent()), timeout=T
        )
    assert {"consent.channel", "consent.status", "consent.source"} <= set(
        field_violations(bad.value)
    )


def test_metrics_after_a_merge_equal_one_customers_history(suite) -> None:
    phone, email = random_phone(), f"{unique('m')}@example.ru"
    by_phone = common_pb2.Identifier(type=PHONE, value=phone)
    by_email = common_pb2.Identifier(type=EMAIL, value=email)
    for request in (identify("pos-msk-01", phones=(phone,)), identify("app", emails=(email,))):
        suite.ingestion.Identify(request, timeout=T)
        suite.wait_processed(request.record_ref)
    send(
        suite,
        track(
            "pos-msk-01",
            ORDER,
            by_phone,
            occurred="2026-08-01T10:00:00Z",
            total="100",
            lines=(("a", 1, "100", "0"),),
        ),
    )
    send(
        suite,
        track(
            "app",
            ORDER,
            by_email,
            occurred="2026-09-01T10:00:00Z",
            total="300",
            lines=(("b", 2, "150", "10"),),
        ),
    )
    bridge = identify("webshop", phones=(phone,), emails=(email,))
    suite.ingestion.Identify(bridge, timeout=T)
    survivor = suite.wait_processed(bridge.record_ref).customer_id

    def both_orders() -> profile_pb2.Metrics | None:
        metrics = profile(suite, survivor).metrics
        return metrics if metrics.order_count >= 2 else None

    m = wait_until(both_orders, what="both orders on the survivor")
    assert rub(m.total_spent) == "400.00"
    assert m.items_bought == 3
    assert m.first_order_time == at("2026-08-01T10:00:00Z")
    assert m.last_order_time == at("2026-09-01T10:00:00Z")
    timeline = suite.profile.GetTimeline(
        profile_pb2.GetTimelineRequest(customer_id=survivor), timeout=T
    )
    assert len(timeline.entries) == 2


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda r: r.event.total.CopyFrom(money("-5")), "event.total"),
        (lambda r: r.event.total.CopyFrom(money("10", "USD")), "event.total.currency_code"),
        (
            lambda r: r.event.occurred_time.CopyFrom(at("2030-01-01T00:00:00Z")),
            "event.occurred_time",
        ),
        (lambda r: r.event.lines.add(quantity=0), "event.lines[0].quantity"),
        (lambda r: setattr(r.event, "type", common_pb2.EVENT_TYPE_UNSPECIFIED), "event.type"),
        (lambda r: r.event.ClearField("total"), "event.total"),
    ],
    ids=["negative", "currency", "future", "zero-quantity", "no-type", "order-without-total"],
)
def test_bad_events_are_refused_at_the_door(suite, mutate, field) -> None:
    _, who = new_customer(suite)
    request = track("webshop", ORDER, who, total="10")
    mutate(request)
    with pytest.raises(grpc.RpcError) as refused:
        suite.ingestion.Track(request, timeout=T)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(refused.value)
    with pytest.raises(grpc.RpcError) as never_stored:
        suite.ingestion.GetRecordStatus(
            ingestion_pb2.GetRecordStatusRequest(record_ref=request.record_ref), timeout=T
        )
    assert never_stored.value.code() == grpc.StatusCode.NOT_FOUND


def test_event_for_an_unknown_customer_is_held_visibly_after_the_grace_period(suite) -> None:
    nobody = common_pb2.Identifier(type=EMAIL, value=f"{unique('ghost')}@example.ru")
    request = track("webshop", ORDER, nobody, total="10")
    suite.ingestion.Track(request, timeout=T)
    status = suite.wait_processed(request.record_ref, timeout_s=20)
    # Never failed: held until an identify brings its customer (tests/e2e/test_attribution.py).
    assert status.state == ingestion_pb2.RecordStatus.STATE_UNATTRIBUTED
    assert status.attribution_issue == ingestion_pb2.ATTRIBUTION_ISSUE_UNKNOWN_CUSTOMER
    assert "no customer has any of its identifiers" in status.last_error


def test_event_sent_just_before_its_identify_waits_for_it(suite) -> None:
    phone = random_phone()
    who = common_pb2.Identifier(type=PHONE, value=phone)
    early = track("pos-msk-01", ORDER, who, total="50")
    suite.ingestion.Track(early, timeout=T)
    time.sleep(0.3)
    late = identify("pos-msk-01", phones=(phone,))
    suite.ingestion.Identify(late, timeout=T)
    customer = suite.wait_processed(late.record_ref).customer_id
    status = suite.wait_processed(early.record_ref, timeout_s=20)
    assert status.state == DELIVERED and status.customer_id == customer


def test_batch_get_search_and_stream(suite) -> None:
    surname = f"Тестова{unique('')[1:6]}"
    ids = [
        new_customer(suite, first_name=name, last_name=surname)[0]
        for name in ("Анна", "Ольга", "Ирина")
    ]
    unknown = "00000000-0000-4000-8000-000000000000"
    batch = suite.profile.BatchGetProfiles(
        profile_pb2.BatchGetProfilesRequest(customer_ids=[*ids, unknown]), timeout=T
    )
    assert sorted(p.customer_id for p in batch.profiles) == sorted(ids)
    assert list(batch.missing_customer_ids) == [unknown]

    pages, token = [], ""
    while True:
        page = suite.profile.SearchProfiles(
            profile_pb2.SearchProfilesRequest(
                last_name=surname.upper(), page_size=2, page_token=token
            ),
            timeout=T,
        )
        pages.append([p.first_name.value for p in page.profiles])
        token = page.next_page_token
        if not token:
            break
    assert sorted(name for page in pages for name in page) == ["Анна", "Ирина", "Ольга"]
    assert len(pages[0]) == 2

    streamed = {
        p.customer_id
        for p in suite.profile.StreamProfiles(profile_pb2.StreamProfilesRequest(), timeout=30)
    }
    assert set(ids) <= streamed


def test_event_batch_applies_each_once_and_fails_only_bad_ones(suite) -> None:
    customer, who = new_customer(suite)
    good = [
        track("import", ORDER, who, total="100", occurred=f"2026-07-0{d}T10:00:00Z")
        for d in range(1, 4)
    ]
    items = [
        profile_pb2.ApplyEventRequest(
            customer_id=customer, record_ref=r.record_ref, channel=r.channel, event=r.event
        )
        for r in good
    ]
    bad = profile_pb2.ApplyEventRequest(
        customer_id="not-a-uuid",
        record_ref=good[0].record_ref,
        channel=good[0].channel,
        event=good[0].event,
    )
    negative = profile_pb2.ApplyEventRequest()
    negative.CopyFrom(items[1])
    negative.record_ref.message_id += "-negative"
    negative.event.total.units = -5
    reply = suite.profile.ApplyEventBatch(
        profile_pb2.ApplyEventBatchRequest(events=[*items, bad, items[0], negative]), timeout=T
    )
    assert [r.applied.changed for r in reply.results[:3]] == [True, True, True]
    assert reply.results[3].error_code == "INVALID_ARGUMENT"
    assert reply.results[4].HasField("applied") and not reply.results[4].applied.changed
    assert reply.results[5].error_code == "INVALID_ARGUMENT"
    assert "must not be negative" in reply.results[5].error_message
    assert profile(suite, customer).metrics.order_count == 3


def test_a_bulk_stream_of_events_reaches_every_profile_exactly(suite) -> None:
    """A TrackStream import is delivered downstream many events per call (one identifier
    look-up call, one ApplyEventBatch): each known customer's metrics count every event once,
    and the one event nobody can own is held visibly, unattributed."""
    customers = [new_customer(suite) for _ in range(3)]
    requests = [
        track("webshop", ORDER, who, total=f"{10 * (n + 1)}")
        for n in range(40)
        for _, who in customers
    ]
    nobody = common_pb2.Identifier(type=EMAIL, value=f"{unique('ghost')}@example.ru")
    requests.insert(17, track("webshop", ORDER, nobody, total="5"))
    reply = suite.ingestion.TrackStream(iter(requests), timeout=T)
    assert reply.accepted_count == len(requests)

    for request in requests:
        status = suite.wait_processed(request.record_ref, timeout_s=20)
        expected = UNATTRIBUTED if request is requests[17] else DELIVERED
        assert status.state == expected, (request.record_ref, status)
    for customer_id, _ in customers:
        metrics = profile(suite, customer_id).metrics
        assert metrics.order_count == 40
        assert rub(metrics.total_spent) == f"{sum(10 * (n + 1) for n in range(40))}.00"


def test_track_stream_stores_good_lines_and_answers_each_bad_one(suite) -> None:
    """Events of a stream are stored a chunk per transaction; each still gets its own answer."""
    _, who = new_customer(suite)
    good = [track("webshop", ORDER, who, total=f"{n + 1}") for n in range(3)]
    negative = track("webshop", ORDER, who, total="-1")
    reused = track("webshop", ORDER, who, total="99")
    reused.record_ref.CopyFrom(good[1].record_ref)  # same message id, different payload
    reply = suite.ingestion.TrackStream(iter([*good, negative, good[0], reused]), timeout=T)
    assert reply.accepted_count == 3
    assert reply.duplicate_count == 1
    assert [r.index for r in reply.rejected] == [3, 5]
    assert reply.rejected[0].field_violations[0].field == "event.total"
    assert "already used for a different payload" in reply.rejected[1].reason
    for request in good:
        assert suite.wait_processed(request.record_ref).state == DELIVERED


@pytest.mark.parametrize("copy_from_rows", [1, 1000], ids=["copied", "as-arrays"])
def test_repeats_in_one_stream_are_duplicates_within_and_across_stored_chunks(
    suite, monkeypatch, copy_from_rows
) -> None:
    """A stream's messages are stored a chunk at a time (by COPY into a staging table, or as
    arrays, then one INSERT ... ON CONFLICT): a message repeated inside a chunk and in a later
    chunk is stored once, answered as a duplicate, and counted once by the profile; a reused
    id with another payload is refused wherever it comes."""
    from svod_ingestion.adapters import storage
    from svod_ingestion.entrypoints import grpc_servicer

    monkeypatch.setattr(grpc_servicer, "STREAM_CHUNK", 4)
    monkeypatch.setattr(storage, "COPY_FROM_ROWS", copy_from_rows)
    customer, who = new_customer(suite)
    orders = [track("webshop", ORDER, who, total=f"{n + 1}") for n in range(5)]
    reused = track("webshop", ORDER, who, total="77")
    reused.record_ref.CopyFrom(orders[0].record_ref)
    # chunk 1: 0, 1, 0 (same chunk), reused 0; chunk 2: 2, 3, 1 (earlier chunk), 4
    stream = [orders[0], orders[1], orders[0], reused, orders[2], orders[3], orders[1], orders[4]]
    reply = suite.ingestion.TrackStream(iter(stream), timeout=T)
    assert (reply.accepted_count, reply.duplicate_count, reply.rejected_count) == (5, 2, 1)
    assert [r.index for r in reply.rejected] == [3]
    assert "already used for a different payload" in reply.rejected[0].reason
    for request in orders:
        assert suite.wait_processed(request.record_ref).state == DELIVERED
    metrics = profile(suite, customer).metrics
    assert metrics.order_count == 5
    assert rub(metrics.total_spent) == "15.00"


def test_concurrent_streams_of_the_same_messages_store_each_once(suite) -> None:
    """Four streams send the same orders at once (their chunks' transactions overlap): each
    message is accepted by exactly one of them and a duplicate for the others, and the profile
    counts every order once."""
    from concurrent.futures import ThreadPoolExecutor

    customer, who = new_customer(suite)
    orders = [track("webshop", ORDER, who, total="10") for _ in range(300)]

    def stream(shift: int) -> ingestion_pb2.BulkResponse:
        # Each stream in another order, so that their chunks take the ids in turns.
        turned = orders[shift * 75 :] + orders[: shift * 75]
        return suite.ingestion.TrackStream(iter(turned), timeout=30)

    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(stream, range(4)))
    assert sum(r.accepted_count for r in replies) == 300
    assert sum(r.duplicate_count for r in replies) == 900
    assert sum(r.rejected_count for r in replies) == 0
    record_ids = set()
    for request in orders:
        status = suite.wait_processed(request.record_ref, timeout_s=30)
        assert status.state == DELIVERED
        record_ids.add(status.record_id)
    assert len(record_ids) == 300
    assert profile(suite, customer).metrics.order_count == 300
