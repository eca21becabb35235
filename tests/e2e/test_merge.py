"""A record that carries identifiers of two customers proves they are one person."""

from __future__ import annotations

import time

import pytest

from svod.common.v1 import common_pb2
from svod.identity.v1 import identity_pb2
from svod.profile.v1 import profile_pb2
from tests.builders import EMAIL, identify, random_phone, unique
from tests.waiting import wait_until

T = 10.0


def _profile_by_id(suite, customer_id: str) -> profile_pb2.Profile:
    return suite.profile.GetProfile(
        profile_pb2.GetProfileRequest(customer_id=customer_id), timeout=T
    )


def test_bridging_record_merges_customers_and_profiles(suite, span_exporter) -> None:
    phone, email = random_phone(), f"{unique('masha')}@example.ru"
    pos = identify(
        "pos-msk-01", channel=common_pb2.SOURCE_CHANNEL_POS, phones=(phone,), first_name="Маша"
    )
    app = identify(
        "app", channel=common_pb2.SOURCE_CHANNEL_APP, emails=(email,), last_name="Смирнова"
    )
    suite.ingestion.Identify(pos, timeout=T)
    older = suite.wait_processed(pos.record_ref).customer_id
    suite.ingestion.Identify(app, timeout=T)
    newer = suite.wait_processed(app.record_ref).customer_id
    assert older != newer

    web = identify("webshop", phones=(phone,), emails=(email,), first_name="Мария")
    suite.ingestion.Identify(web, timeout=T)
    assert suite.wait_processed(web.record_ref).customer_id == older

    customer = suite.identity.LookupCustomer(
        identity_pb2.LookupCustomerRequest(customer_id=newer), timeout=T
    )
    assert customer.customer_id == older  # the older id survives
    assert list(customer.merged_ids) == [newer]
    assert customer.record_count == 3

    profile = wait_until(
        lambda: _with_sources(_profile_by_id(suite, older), 3),
        what="the merged profile with all three sources",
    )
    assert {s.source for s in profile.sources} == {"pos-msk-01", "app", "webshop"}
    assert profile.last_name.value == "Смирнова"  # came with the merged-away customer
    assert profile.first_name.value == "Мария"
    # The merged-away id still answers, with the survivor's profile.
    assert _profile_by_id(suite, newer).customer_id == older
    by_email = suite.profile.GetProfile(
        profile_pb2.GetProfileRequest(identifier=common_pb2.Identifier(type=EMAIL, value=email)),
        timeout=T,
    )
    assert by_email.customer_id == older

    # The merge announcement (a second async hop) continues the bridging call's trace.
    identify_span = max(
        (
            s
            for s in span_exporter.get_finished_spans()
            if s.name == "/svod.ingestion.v1.IngestionService/Identify"
        ),
        key=lambda s: s.start_time,
    )
    announced = [
        s
        for s in span_exporter.get_finished_spans()
        if s.name == "/svod.profile.v1.ProfileService/ApplyIdentityChange"
        and s.context.trace_id == identify_span.context.trace_id
    ]
    assert announced, "merge announcement left the Identify trace"


def test_merge_announcement_is_applied_once(suite) -> None:
    phone, email = random_phone(), f"{unique('d')}@example.ru"
    first = identify("crm", phones=(phone,))
    second = identify("app", emails=(email,))
    for request in (first, second):
        suite.ingestion.Identify(request, timeout=T)
        suite.wait_processed(request.record_ref)
    survivor = suite.wait_processed(first.record_ref).customer_id
    merged = suite.wait_processed(second.record_ref).customer_id
    bridge = identify("webshop", phones=(phone,), emails=(email,))
    suite.ingestion.Identify(bridge, timeout=T)
    suite.wait_processed(bridge.record_ref)
    before = wait_until(
        lambda: _with_sources(_profile_by_id(suite, survivor), 3),
        what="the survivor's profile with all three sources",
    )
    # Replaying the same change (at-least-once delivery) changes nothing.
    replay = profile_pb2.ApplyIdentityChangeRequest(
        change_id=f"replay-{unique()}",
        merge=profile_pb2.ApplyIdentityChangeRequest.Merge(
            surviving_customer_id=survivor, merged_customer_ids=[merged]
        ),
    )
    suite.profile.ApplyIdentityChange(replay, timeout=T)
    suite.profile.ApplyIdentityChange(replay, timeout=T)
    after = _profile_by_id(suite, survivor)
    assert [(s.source, s.record_count) for s in after.sources] == [
        (s.source, s.record_count) for s in before.sources
    ]


def _with_sources(profile: profile_pb2.Profile, count: int) -> profile_pb2.Profile | None:
    return profile if len(profile.sources) >= count else None


def _waiting_on_locks(suite_database, count: int) -> None:
    """Blocks until ``count`` sessions of the suite's database wait for a lock."""
    with suite_database.admin_connect() as conn:

        def waiting() -> int:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                "AND wait_event_type = 'Lock'",
                (suite_database.name,),
            ).fetchone()
            return 0 if row is None else row[0]

        wait_until(waiting, T, f"{count} sessions waiting for a lock", 0.02, lambda n: n >= count)


@pytest.mark.parametrize("late_kind", ["record", "event batch"])
def test_data_applied_while_its_customer_is_merged_away_lands_on_the_survivor(
    suite, suite_database, late_kind: str
) -> None:
    """A record or event resolved just before a merge, racing the merge in profile: it waits
    for the merge's lock and must then follow the merge, not bring the merged profile back."""
    import uuid
    from concurrent.futures import ThreadPoolExecutor

    # The merge locks profiles in id order: the merged one first, then it waits for ours.
    merged, survivor = sorted(str(uuid.uuid4()) for _ in range(2))

    def apply(customer_id: str, source: str) -> profile_pb2.ApplyResponse:
        return suite.profile.Apply(
            profile_pb2.ApplyRequest(
                customer_id=customer_id,
                record_ref=common_pb2.RecordRef(source=source, message_id=unique()),
                channel=common_pb2.SOURCE_CHANNEL_POS,
                name=common_pb2.PersonName(first_name="Мария", last_name="Смирнова"),
            ),
            timeout=T,
        )

    def apply_order(customer_id: str, source: str) -> profile_pb2.ApplyEventBatchResponse:
        event = common_pb2.Event(
            type=common_pb2.EVENT_TYPE_ORDER_PLACED,
            occurred_time={"seconds": int(time.time()) - 60},
            total={"currency_code": "RUB", "units": 700},
            order_id=unique("o"),
        )
        item = profile_pb2.ApplyEventRequest(
            customer_id=customer_id,
            record_ref=common_pb2.RecordRef(source=source, message_id=unique()),
            channel=common_pb2.SOURCE_CHANNEL_POS,
            event=event,
        )
        reply = suite.profile.ApplyEventBatch(
            profile_pb2.ApplyEventBatchRequest(events=[item]), timeout=T
        )
        assert reply.results[0].HasField("applied"), reply
        return reply

    late_work = apply if late_kind == "record" else apply_order
    apply(survivor, "webshop")
    apply(merged, "app")
    change = profile_pb2.ApplyIdentityChangeRequest(
        change_id=f"race-{unique()}",
        merge=profile_pb2.ApplyIdentityChangeRequest.Merge(
            surviving_customer_id=survivor, merged_customer_ids=[merged]
        ),
    )
    with suite_database.admin_connect() as holder, ThreadPoolExecutor(2) as pool:
        # Hold the survivor's profile row: the merge locks the merged profile, then waits here.
        holder.execute("BEGIN")
        holder.execute(
            "SELECT 1 FROM profile.profiles WHERE customer_id = %s FOR UPDATE", (survivor,)
        )
        merging = pool.submit(suite.profile.ApplyIdentityChange, change, timeout=T)
        _waiting_on_locks(suite_database, 1)
        # Resolved to the merged customer before the merge: waits for the merge's lock.
        late = pool.submit(late_work, merged, "pos-msk-01")
        _waiting_on_locks(suite_database, 2)
        holder.execute("ROLLBACK")
        merging.result(timeout=T)
        late.result(timeout=T)
    profile = _profile_by_id(suite, survivor)
    if late_kind == "record":
        assert {s.source for s in profile.sources} == {"webshop", "app", "pos-msk-01"}
    else:
        assert profile.metrics.order_count == 1
        assert profile.metrics.total_spent.units == 700
    # No profile of the merged-away customer came back.
    with suite_database.admin_connect() as conn:
        row = conn.execute(
            "SELECT count(*) FROM profile.profiles WHERE customer_id = %s", (merged,)
        ).fetchone()
    assert row is not None and row[0] == 0
