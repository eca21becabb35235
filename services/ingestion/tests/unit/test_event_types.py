"""The event types the front door accepts are exactly the public API's (EventType)."""

from svod.common.v1 import common_pb2
from svod_ingestion.domain.messages import EVENT_TYPES


def test_event_types_follow_the_proto_enum() -> None:
    names = {
        v.name.removeprefix("EVENT_TYPE_").lower()
        for v in common_pb2.EventType.DESCRIPTOR.values
        if v.number != 0
    }
    assert set(EVENT_TYPES) == names
