"""Profile's announcements with their events in columns (ApplyProfileChangeRequest.
new_event_columns) leave segmentation's read model exactly as the same announcements with a
TimelineEntry per event (new_events) did: customers, metrics, events, memberships and
enter/exit events. Two scratch databases get the same profile events (orders with and without
a currency, awkward categories and properties, a campaign event's contact channel, known and
unknown channels, times before 1970 and with microseconds) and the same segments; profile's
real SegmentationAnnouncer announces the same outbox messages to a real segmentation gRPC
server on each, one with columns and one without, and every row is compared.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import grpc
import psycopg
from sqlalchemy.engine import make_url

from svod.segmentation.v1 import segmentation_pb2 as pb
from svod.segmentation.v1 import segmentation_pb2_grpc
from svod_profile.adapters.segmentation_client import SegmentationAnnouncer
from svod_profile.adapters.storage import ProfileStore
from svod_profile.domain.announcements import CHANGED_TOPIC, ProfileChanged
from svod_profile.domain.events import EventFact
from svod_profile.service_layer.use_cases import ProfileService
from svod_runtime.config import role_name
from svod_runtime.db import create_engine, libpq_url
from svod_runtime.outbox import OutboxMessage
from svod_segmentation.adapters.storage import SegmentationStore
from svod_segmentation.entrypoints.grpc_servicer import SegmentationServicer
from svod_segmentation.service_layer.use_cases import SegmentationService

NOW = dt.datetime.now(dt.UTC).replace(microsecond=123457)
ANNA, BORIS, VERA = (str(uuid.UUID(int=n)) for n in (101, 102, 103))


def _events() -> list[tuple[str, EventFact]]:
    def order(n: int, days: float, **kwargs: Any) -> EventFact:
        fields: dict[str, Any] = {
            "source": "shop",
            "message_id": f"o-{n}",
            "type": "order_placed",
            "occurred_at": NOW - dt.timedelta(days=days),
            "channel": "web",
            "currency": "RUB",
            "amount": Decimal("1042.50"),
            "items": 2,
            "order_id": f"order-{n}",
        }
        fields.update(kwargs)
        return EventFact(**fields)

    return [
        (ANNA, order(1, 1, categories=("toys", 'board "games"', "a,b", "NULL", "щётки\\"))),
        (ANNA, order(2, 2, amount=Decimal("0.000000001"), discount=Decimal("12.300000000"))),
        (ANNA, order(3, 40, amount=Decimal("10000000000"), channel="carrier-pigeon")),
        (ANNA, order(4, 3, currency="", amount=Decimal("5"), properties={"coupon": "X-1"})),
        (
            BORIS,
            EventFact(
                source="esp",
                message_id="c-1",
                type="campaign_opened",
                occurred_at=NOW - dt.timedelta(days=1, microseconds=1),
                channel="email",
                reference_id="spring-sale",
                contact_channel="email",
                properties={"ключ": "значение", "contact_channel": "sms", "empty": ""},
            ),
        ),
        (BORIS, order(5, 0.5, channel="pos", categories=("toys",), discount=Decimal("100"))),
        (
            VERA,
            EventFact(
                source="web",
                message_id="s-1",
                type="session_started",
                occurred_at=dt.datetime(1900, 1, 1, 0, 0, 0, 1, tzinfo=dt.UTC),
                channel="",
            ),
        ),
        (
            VERA,
            EventFact(
                source="web",
                message_id="s-2",
                type="session_started",
                occurred_at=dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
                channel="app",
            ),
        ),
    ]


def _messages() -> list[OutboxMessage]:
    """Announcements as the event batcher and an import write them: several events in one
    (some of another customer's change), one event twice, a reference that is not stored,
    a metrics change and whole-profile changes."""
    changes = [
        (ANNA, ProfileChanged(events=(("shop", "o-1"), ("shop", "o-2")), metrics_only=True)),
        (ANNA, ProfileChanged(events=(("shop", "o-3"), ("shop", "gone"), ("shop", "o-4")))),
        (BORIS, ProfileChanged(events=(("esp", "c-1"), ("shop", "o-5"), ("esp", "c-1")))),
        (VERA, ProfileChanged(events=(("web", "s-1"),), metrics_only=True)),
        (VERA, ProfileChanged(events=(("web", "s-2"),))),
        (VERA, ProfileChanged()),
    ]
    return [
        OutboxMessage(n, CHANGED_TOPIC, key, change.payload(), {}, 0)
        for n, (key, change) in enumerate(changes, 1)
    ]


def _segments() -> list[pb.Segment]:
    def behavior(**kwargs: Any) -> pb.RuleNode:
        return pb.RuleNode(behavior=pb.BehaviorCondition(**kwargs))

    return [
        pb.Segment(
            segment_id="two-orders",
            rule=behavior(
                event_type="order_placed",
                aggregate="count",
                comparison="ge",
                threshold=2,
                window_days=30,
            ),
        ),
        pb.Segment(
            segment_id="toy-buyers",
            rule=behavior(
                event_type="order_placed",
                aggregate="count",
                comparison="ge",
                threshold=1,
                window_days=30,
                filters={"category": "toys"},
            ),
        ),
        pb.Segment(
            segment_id="big-spenders",
            rule=behavior(
                event_type="order_placed",
                aggregate="sum",
                comparison="ge",
                threshold=1000,
                window_days=30,
            ),
        ),
        pb.Segment(
            segment_id="opened-by-email",
            rule=behavior(
                event_type="campaign_opened",
                aggregate="count",
                comparison="ge",
                threshold=1,
                window_days=3650,
                filters={"property.contact_channel": "email"},
            ),
        ),
    ]


_TABLES = {
    "customers": "SELECT * FROM customers ORDER BY customer_id",
    "events": "SELECT * FROM events ORDER BY source, message_id",
    "memberships": "SELECT segment_id, customer_id, label FROM memberships "
    "ORDER BY segment_id, customer_id",
    "membership_events": "SELECT segment_id, customer_id, kind, label FROM membership_events "
    "ORDER BY event_id",
}
# Times of writing (segmentation's, and the profile's in each database), not of the data.
_WRITE_TIMES = {"applied_at", "profile_created_at", "profile_updated_at"}


async def _announce(profile_url: str, columns: bool) -> dict[str, list[dict[str, Any]]]:
    store = ProfileStore(create_engine(profile_url))
    service = ProfileService(store, directory=Any)
    for customer, event in _events():
        await service.apply_event(customer, event)
    segmentation_url = (
        make_url(profile_url)
        .set(username=role_name("segmentation"))
        .render_as_string(hide_password=False)
    )
    engine = create_engine(segmentation_url)
    server = grpc.aio.server()
    segmentation_pb2_grpc.add_SegmentationServiceServicer_to_server(
        SegmentationServicer(SegmentationService(SegmentationStore(engine))), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        stub = segmentation_pb2_grpc.SegmentationServiceStub(channel)
        for segment in _segments():
            await stub.CreateSegment(pb.CreateSegmentRequest(segment=segment), timeout=10)
        announcer = SegmentationAnnouncer(store, channel, 10.0, "RUB", event_columns=columns)
        answers = await announcer.changed(_messages())
        assert answers == [None] * len(answers)
    finally:
        await channel.close()
        await server.stop(None)
        await engine.dispose()
        await store.engine.dispose()
    tables: dict[str, list[dict[str, Any]]] = {}
    with psycopg.connect(libpq_url(segmentation_url)) as conn:
        conn.execute("SET search_path = segmentation")
        for table, query in _TABLES.items():
            cursor = conn.execute(query)
            names = [d.name for d in cursor.description or ()]
            tables[table] = [
                {n: v for n, v in zip(names, row, strict=True) if n not in _WRITE_TIMES}
                for row in cursor.fetchall()
            ]
    return tables


def test_event_columns_leave_the_read_model_as_timeline_entries_did(
    profile_urls: Callable[[], str],
) -> None:
    entries = asyncio.run(_announce(profile_urls(), columns=False))
    columns = asyncio.run(_announce(profile_urls(), columns=True))
    for table in _TABLES:
        assert columns[table] == entries[table], table
        # Stored text as well as values (12.5 is not 12.50 to a rule comparing text).
        assert repr(columns[table]) == repr(entries[table]), table
    # The comparison is about something: every event and kind of value is there.
    events = {(e["source"], e["message_id"]): e for e in columns["events"]}
    assert len(events) == 8 and ("shop", "gone") not in events
    assert events[("shop", "o-1")]["categories"] == [
        "toys",
        'board "games"',
        "a,b",
        "NULL",
        "щётки\\",
    ]
    assert events[("shop", "o-1")]["amount"] == Decimal("1042.5")
    assert events[("shop", "o-2")]["amount"] == Decimal("1E-9")
    assert events[("shop", "o-3")]["channel"] == ""
    assert events[("shop", "o-4")]["amount"] is None
    assert events[("esp", "c-1")]["properties"]["contact_channel"] == "email"
    assert events[("web", "s-2")]["occurred_at"].microsecond == 999999
    assert events[("web", "s-2")]["channel"] == "app"
    assert events[("web", "s-1")]["occurred_at"].year == 1900
    members = {(m["segment_id"], m["customer_id"]) for m in columns["memberships"]}
    assert members == {
        ("two-orders", uuid.UUID(ANNA)),
        ("toy-buyers", uuid.UUID(ANNA)),
        ("toy-buyers", uuid.UUID(BORIS)),
        ("big-spenders", uuid.UUID(ANNA)),
        ("big-spenders", uuid.UUID(BORIS)),
        ("opened-by-email", uuid.UUID(BORIS)),
    }
    assert len(columns["membership_events"]) == len(members)
    assert {c["customer_id"] for c in columns["customers"]} == {
        uuid.UUID(c) for c in (ANNA, BORIS, VERA)
    }
