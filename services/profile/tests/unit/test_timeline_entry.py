"""timeline_entry, built in one constructor call, gives the entry it gave built field by field,
from an EventFact and from an event store row alike (what change announcements pass)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import replace
from decimal import Decimal
from types import SimpleNamespace

from benchmarks.profile.event_data import events
from svod.common.v1 import common_pb2
from svod.profile.v1 import profile_pb2
from svod_profile.domain.events import EventFact
from svod_profile.entrypoints.grpc_servicer import event_fact, timeline_entry, timeline_fields
from svod_runtime.money import decimal_to_money
from svod_runtime.protoconv import datetime_to_timestamp, enum_number

CUSTOMERS = [str(uuid.UUID(int=n)) for n in range(1, 30)]


def _field_by_field(event: EventFact) -> profile_pb2.TimelineEntry:
    """timeline_entry as it was written before (the reference)."""
    entry = profile_pb2.TimelineEntry(
        event_type=event.type,
        occurred_time=datetime_to_timestamp(event.occurred_at),
        source=event.source,
        channel=enum_number(common_pb2.SourceChannel.DESCRIPTOR, event.channel, "SOURCE_CHANNEL_"),
        summary=event.summary(),
        record_ref=common_pb2.RecordRef(source=event.source, message_id=event.message_id),
        categories=list(event.categories),
        properties=event.properties,
        reference_id=event.reference_id,
        order_id=event.order_id,
    )
    if event.contact_channel:
        entry.properties["contact_channel"] = event.contact_channel
    if event.currency:
        entry.amount.CopyFrom(decimal_to_money(event.amount, event.currency))
        entry.discount.CopyFrom(decimal_to_money(event.discount, event.currency))
    return entry


def _facts() -> list[EventFact]:
    facts = [event_fact(r, "RUB") for r in events(CUSTOMERS, 800, 9)]
    order = next(f for f in facts if f.type == "order_placed")
    return [
        *facts,
        # Amounts with more digits than a Money holds, a naive time, an unknown channel.
        replace(order, amount=Decimal("12.3456789995"), discount=Decimal("0.0000000004")),
        replace(order, occurred_at=dt.datetime(2024, 2, 29, 12, 30, 1, 5)),
        replace(order, channel="unspecified", properties={"contact_channel": "x", "k": "v"}),
    ]


def test_entries_are_those_built_field_by_field() -> None:
    for fact in _facts():
        expected = _field_by_field(fact).SerializeToString(deterministic=True)
        assert timeline_entry(fact, "RUB").SerializeToString(deterministic=True) == expected
        row = SimpleNamespace(**{**fact.__dict__, "categories": list(fact.categories)})
        assert timeline_entry(row, "RUB").SerializeToString(deterministic=True) == expected
        # As a change announcement builds it: in place, in the request.
        in_place = profile_pb2.GetTimelineResponse()
        in_place.entries.add(**timeline_fields(row, "RUB"))
        assert in_place.entries[0].SerializeToString(deterministic=True) == expected
