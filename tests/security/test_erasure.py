"""Erasure that is complete and final: after two customers bridged into one and messages in
flight everywhere, nothing of the person is left in any table of any service, and nothing
brings them back."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
import uuid
from collections.abc import Iterator

import grpc
import pytest
from google.type import date_pb2

from svod.common.v1 import common_pb2
from svod.identity.v1 import identity_pb2, identity_pb2_grpc
from svod.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from svod.profile.v1 import profile_pb2, profile_pb2_grpc
from svod.segmentation.v1 import segmentation_pb2 as seg_pb
from svod.segmentation.v1 import segmentation_pb2_grpc
from svod_cli.suite import InProcessSuite, create_database, drop_database, prepare_database
from svod_runtime.config import SERVICES
from svod_runtime.db import libpq_url
from svod_runtime.outbox import OutboxRelay
from tests.builders import EMAIL, PHONE, identify, random_phone, track, unique
from tests.waiting import wait_until

T = 10.0


class Relays:
    """Pauses and resumes the outbox relays of an in-process suite (as if their processes
    stopped delivering): their messages stay in the outboxes, in flight."""

    def __init__(self, suite: InProcessSuite) -> None:
        self.suite = suite
        self.paused: set[str] = set()

    def _relay_tasks(self, service: str) -> list[asyncio.Task]:
        return [
            t
            for t in self.suite.apps[service]._tasks
            if not t.done() and t.get_coro().__qualname__ == OutboxRelay.run.__qualname__
        ]

    def pause(self, *services: str) -> None:
        async def cancel() -> None:
            tasks = [t for s in services for t in self._relay_tasks(s)]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(cancel(), self.suite.loop).result(30)
        self.paused.update(services)

    def resume(self, *services: str) -> None:
        async def start() -> None:
            for service in services:
                app = self.suite.apps[service]
                for job in app.background:
                    if isinstance(getattr(job, "__self__", None), OutboxRelay):
                        app._tasks.append(asyncio.create_task(job()))

        asyncio.run_coroutine_threadsafe(start(), self.suite.loop).result(30)
        self.paused.difference_update(services)


class Suite:
    def __init__(self, running: InProcessSuite, url: str) -> None:
        self.running = running
        self.url = url
        self.channels = {s: grpc.insecure_channel(running.target(s)) for s in SERVICES}
        self.ingestion = ingestion_pb2_grpc.IngestionServiceStub(self.channels["ingestion"])
        self.identity = identity_pb2_grpc.IdentityServiceStub(self.channels["identity"])
        self.profile = profile_pb2_grpc.ProfileServiceStub(self.channels["profile"])
        self.segmentation = segmentation_pb2_grpc.SegmentationServiceStub(
            self.channels["segmentation"]
        )
        self.relays = Relays(running)

    def status(self, ref: common_pb2.RecordRef) -> ingestion_pb2.RecordStatus:
        return self.ingestion.GetRecordStatus(
            ingestion_pb2.GetRecordStatusRequest(record_ref=ref), timeout=T
        )

    def wait_processed(self, ref: common_pb2.RecordRef) -> ingestion_pb2.RecordStatus:
        def settled() -> ingestion_pb2.RecordStatus | None:
            status = self.status(ref)
            return status if status.state != ingestion_pb2.RecordStatus.STATE_PENDING else None

        return wait_until(settled, what="the record processed")

    def connect(self):
        import psycopg

        return psycopg.connect(libpq_url(self.url), autocommit=True)


@pytest.fixture(scope="module")
def erasing(postgres_admin_url) -> Iterator[Suite]:
    name = f"svod_erase_{os.getpid()}_{secrets.token_hex(3)}"
    url = create_database(postgres_admin_url, name)
    running = None
    try:
        prepare_database(url)
        running = InProcessSuite(url, extra_env={"SVOD_UNKNOWN_CUSTOMER_GRACE_S": "2"}).start()
        suite = Suite(running, url)
        yield suite
        for channel in suite.channels.values():
            channel.close()
    finally:
        if running is not None:
            running.stop()
        drop_database(postgres_admin_url, name)


@pytest.fixture(autouse=True)
def _relays_resumed_after_each_test(request) -> Iterator[None]:
    """A test that fails while relays are paused leaves them running again, so the module's
    other tests (same suite) fail for their own reasons or not at all."""
    yield
    if "erasing" in request.fixturenames:
        relays = request.getfixturevalue("erasing").relays
        if relays.paused:
            relays.resume(*sorted(relays.paused))


def _person_record(
    source: str, *, phones=(), emails=(), first="", last="", born=None, city=""
) -> ingestion_pb2.IdentifyRequest:
    request = identify(source, phones=phones, emails=emails, first_name=first, last_name=last)
    if born is not None:
        request.record.birth_date.CopyFrom(date_pb2.Date(year=born[0], month=born[1], day=born[2]))
    if city:
        request.record.addresses.add(country_code="RU", city=city)
    return request


def places_holding(suite: Suite, needles: dict[str, str]) -> list[str]:
    """Every schema.table (outboxes and dead letters included) holding a needle, as text or
    inside bytea (protobuf payloads, JSON outbox payloads)."""
    found = []
    with suite.connect() as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema = ANY(%s) AND table_type = 'BASE TABLE'",
            (list(SERVICES),),
        ).fetchall()
        assert len(tables) > 20
        for schema, table in tables:
            for what, needle in needles.items():
                hit = conn.execute(
                    f'SELECT 1 FROM "{schema}"."{table}" t WHERE strpos(lower(t::text), '
                    "lower(%s)) > 0 OR strpos(t::text, %s) > 0 LIMIT 1",
                    (needle, needle.encode().hex()),
                ).fetchone()
                if hit:
                    found.append(f"{schema}.{table} holds the {what}")
    return found


def _not_found(call) -> None:
    with pytest.raises(grpc.RpcError) as gone:
        call()
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND, gone.value


def test_a_bridged_person_with_messages_in_flight_is_erased_completely(erasing) -> None:
    suite = erasing
    phone, email = random_phone(), f"{unique('vera')}@example.ru"
    surname = f"Стирова{secrets.randbelow(10**6):06d}"
    first = "Веролина"
    needles = {
        "phone": phone.replace(" ", "")[-10:],
        "e-mail": email,
        "surname": surname,
        "first name": first,
        "birth date": "1985-04-12",
        "city": "Кологрив",
    }
    # Two customers: the till's (phone, birth date, city) and the web shop's (e-mail).
    till = _person_record(
        "pos-msk-01",
        phones=(phone,),
        first=first,
        last=surname,
        born=(1985, 4, 12),
        city="Кологрив",
    )
    web = _person_record("webshop", emails=(email,), first=first, last=surname)
    for request in (till, web):
        suite.ingestion.Identify(request, timeout=T)
    a = suite.wait_processed(till.record_ref).customer_id
    b = suite.wait_processed(web.record_ref).customer_id
    assert a and b and a != b
    order = track(
        "pos-msk-01",
        common_pb2.EVENT_TYPE_ORDER_PLACED,
        common_pb2.Identifier(type=PHONE, value=phone),
        total="1200",
        order_id=unique("order"),
    )
    suite.ingestion.Track(order, timeout=T)
    assert suite.wait_processed(order.record_ref).customer_id == a
    # A segment she is in, so segmentation holds her too.
    segment_id = unique("buyers")
    rule = seg_pb.FieldCondition(field="metrics.order_count", operator="ge", values=["1"])
    suite.segmentation.CreateSegment(
        seg_pb.CreateSegmentRequest(
            segment=seg_pb.Segment(segment_id=segment_id, rule=seg_pb.RuleNode(field=rule))
        ),
        timeout=T,
    )
    _wait_member(suite, segment_id, a)

    # Identity's and profile's relays stop: merges, profile changes and delivery failures
    # stay in their outboxes.
    suite.relays.pause("identity", "profile")
    bridge = _person_record("mobile-app", phones=(phone,), emails=(email,), first=first)
    suite.ingestion.Identify(bridge, timeout=T)
    survivor = suite.wait_processed(bridge.record_ref).customer_id
    assert survivor in (a, b)
    bounce = track(
        "mailer",
        common_pb2.EVENT_TYPE_CONTACT_FAILED,
        common_pb2.Identifier(type=EMAIL, value=email),
        contact_channel="email",
    )
    suite.ingestion.Track(bounce, timeout=T)
    suite.wait_processed(bounce.record_ref)
    # Ingestion's relay stops too: a late identify and a late order wait there.
    suite.relays.pause("ingestion")
    late_identify = _person_record("pos-msk-02", phones=(phone,), first=first, last=surname)
    late_order = track(
        "pos-msk-02",
        common_pb2.EVENT_TYPE_ORDER_PLACED,
        common_pb2.Identifier(type=EMAIL, value=email),
        total="300",
    )
    suite.ingestion.Identify(late_identify, timeout=T)
    suite.ingestion.Track(late_order, timeout=T)
    before = set(places_holding(suite, needles))
    # In flight: the delivery failure in profile's outbox, the late messages in ingestion's.
    assert {
        "profile.outbox holds the e-mail",
        "ingestion.records holds the phone",
        "segmentation.customers holds the birth date",
        "identity.records holds the surname",
    } <= before, before

    receipt = suite.profile.ErasePersonalData(
        profile_pb2.ErasePersonalDataRequest(
            customer_id=a, actor="dpo@shop", reason="data subject request"
        ),
        timeout=30,
    )
    suite.relays.resume("ingestion", "identity", "profile")

    # The late messages are dropped (failed as erased), not delivered.
    for ref in (late_identify.record_ref, late_order.record_ref):
        status = suite.wait_processed(ref)
        assert status.state == ingestion_pb2.RecordStatus.STATE_FAILED, status
        assert "erased" in status.last_error
    _wait_outboxes_drained(suite)
    assert places_holding(suite, needles) == []

    # Every id answers NOT_FOUND, except the receipt.
    for customer_id in {a, b, survivor}:
        _not_found(
            lambda c=customer_id: suite.profile.GetProfile(
                profile_pb2.GetProfileRequest(customer_id=c), timeout=T
            )
        )
        _not_found(
            lambda c=customer_id: suite.profile.GetTimeline(
                profile_pb2.GetTimelineRequest(customer_id=c), timeout=T
            )
        )
        _not_found(
            lambda c=customer_id: suite.identity.LookupCustomer(
                identity_pb2.LookupCustomerRequest(customer_id=c), timeout=T
            )
        )
        _not_found(
            lambda c=customer_id: suite.segmentation.GetCustomerSegments(
                seg_pb.GetCustomerSegmentsRequest(customer_id=c), timeout=T
            )
        )
        found = suite.profile.GetErasureReceipt(
            profile_pb2.GetErasureReceiptRequest(customer_id=customer_id), timeout=T
        )
        assert found.receipt_id == receipt.receipt_id
    assert {a, b} <= set(found.erased_customer_ids)
    for identifier in (
        common_pb2.Identifier(type=PHONE, value=phone),
        common_pb2.Identifier(type=EMAIL, value=email),
    ):
        _not_found(
            lambda i=identifier: suite.profile.GetProfile(
                profile_pb2.GetProfileRequest(identifier=i), timeout=T
            )
        )
    _not_found(
        lambda: suite.identity.GetRecordCustomer(
            identity_pb2.GetRecordCustomerRequest(record_ref=till.record_ref), timeout=T
        )
    )
    mapping = list(
        suite.identity.ExportRecordMapping(identity_pb2.ExportRecordMappingRequest(), timeout=T)
    )
    assert {m.customer_id for m in mapping}.isdisjoint({a, b, survivor})
    # No profile came back, in profile or segmentation.
    with suite.connect() as conn:
        for table in ("profile.profiles", "segmentation.customers"):
            left = conn.execute(
                f"SELECT count(*) FROM {table} WHERE customer_id = ANY(%s::uuid[])",
                ([a, b, survivor],),
            ).fetchone()[0]
            assert left == 0, table
    # A repeated request finishes nothing new and still gets its receipt.
    again = suite.profile.ErasePersonalData(
        profile_pb2.ErasePersonalDataRequest(customer_id=b, actor="dpo@shop"), timeout=30
    )
    assert again.receipt_id and again.erased_counts["ingestion.payloads"] == 0


def _wait_member(suite: Suite, segment_id: str, customer_id: str) -> None:
    def entered() -> bool:
        page = suite.segmentation.ListMembers(
            seg_pb.ListMembersRequest(segment_id=segment_id), timeout=T
        )
        return customer_id in {m.customer_id for m in page.members}

    wait_until(entered, 15, what="her entering the segment", interval_s=0.1)


def _wait_outboxes_drained(suite: Suite, timeout_s: float = 30.0) -> None:
    """Until no outbox of any service has a message still to deliver."""
    with suite.connect() as conn:

        def due() -> int:
            return sum(
                conn.execute(
                    f"SELECT count(*) FROM {schema}.outbox WHERE failed_at IS NULL"
                ).fetchone()[0]
                for schema in SERVICES
                if schema != "quality" and schema != "segmentation"
            )

        wait_until(due, timeout_s, "no outbox message due", 0.1, until=lambda n: n == 0)


def test_late_messages_about_an_erased_customer_are_dropped(erasing) -> None:
    """What a relay that was mid-way when the erasure ran would still send: an Apply, an
    event, a merge announcement. None brings the profile back."""
    suite = erasing
    phone = random_phone()
    first = _person_record("pos-msk-03", phones=(phone,), first="Поздняя", last="Гостья")
    suite.ingestion.Identify(first, timeout=T)
    customer = suite.wait_processed(first.record_ref).customer_id
    suite.profile.ErasePersonalData(
        profile_pb2.ErasePersonalDataRequest(customer_id=customer, actor="dpo"), timeout=30
    )
    late = profile_pb2.ApplyRequest(
        customer_id=customer,
        record_ref=common_pb2.RecordRef(source="pos-msk-03", message_id=unique()),
        identifiers=[common_pb2.Identifier(type=PHONE, value=phone)],
        name=common_pb2.PersonName(first_name="Поздняя"),
    )
    with pytest.raises(grpc.RpcError) as dropped:
        suite.profile.Apply(late, timeout=T)
    assert dropped.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "was erased" in (dropped.value.details() or "")
    # In an ApplyBatch (a bulk import's delivery) it is refused alone; its neighbour applies.
    neighbour = profile_pb2.ApplyRequest(
        customer_id=str(uuid.uuid4()),
        record_ref=common_pb2.RecordRef(source="pos-msk-03", message_id=unique()),
        name=common_pb2.PersonName(first_name="Соседка"),
    )
    batch_apply = suite.profile.ApplyBatch(
        profile_pb2.ApplyBatchRequest(records=[late, neighbour]), timeout=T
    )
    assert batch_apply.results[0].error_code == "FAILED_PRECONDITION"
    assert "was erased" in batch_apply.results[0].error_message
    assert batch_apply.results[1].applied.changed
    event = profile_pb2.ApplyEventRequest(
        customer_id=customer,
        record_ref=common_pb2.RecordRef(source="pos-msk-03", message_id=unique("ev")),
        event=track(
            "pos-msk-03", common_pb2.EVENT_TYPE_ORDER_PLACED, late.identifiers[0], total="10"
        ).event,
    )
    batch = suite.profile.ApplyEventBatch(
        profile_pb2.ApplyEventBatchRequest(events=[event]), timeout=T
    )
    assert batch.results[0].error_code == "FAILED_PRECONDITION"
    other = suite.identity.Resolve(
        identity_pb2.ResolveRequest(
            record_ref=common_pb2.RecordRef(source="webshop", message_id=unique()),
            identifiers=[common_pb2.Identifier(type=EMAIL, value=f"{unique('x')}@example.ru")],
        ),
        timeout=T,
    ).customer_id
    suite.profile.ApplyIdentityChange(
        profile_pb2.ApplyIdentityChangeRequest(
            change_id=unique("late-merge"),
            merge=profile_pb2.ApplyIdentityChangeRequest.Merge(
                surviving_customer_id=customer, merged_customer_ids=[other]
            ),
        ),
        timeout=T,
    )
    with suite.connect() as conn:
        left = conn.execute(
            "SELECT count(*) FROM profile.profiles WHERE customer_id = %s", (customer,)
        ).fetchone()[0]
    assert left == 0
    _not_found(
        lambda: suite.profile.GetProfile(
            profile_pb2.GetProfileRequest(customer_id=customer), timeout=T
        )
    )


def test_payloads_are_purged_a_retention_period_after_delivery(erasing) -> None:
    suite = erasing
    request = _person_record("pos-msk-04", phones=(random_phone(),), first="Срочная")
    suite.ingestion.Identify(request, timeout=T)
    assert suite.wait_processed(request.record_ref).state == (
        ingestion_pb2.RecordStatus.STATE_DELIVERED
    )

    def stored() -> bool:
        with suite.connect() as conn:
            return conn.execute(
                "SELECT payload IS NOT NULL FROM ingestion.records "
                "WHERE source = %s AND message_id = %s",
                (request.record_ref.source, request.record_ref.message_id),
            ).fetchone()[0]

    service = suite.running.apps["ingestion"].servicer.service

    def purge(days: float) -> int:
        return asyncio.run_coroutine_threadsafe(
            service.purge_expired_payloads(days), suite.running.loop
        ).result(30)

    purge(30)
    assert stored(), "kept within the retention period"
    time.sleep(0.2)
    assert purge(0.1 / 86400) >= 1
    assert not stored()
    # The message id is still known: a retry is recognised, not processed again.
    again = suite.ingestion.Identify(request, timeout=T)
    assert again.duplicate
