"""The event types rules may name are exactly the public API's (svod.common.v1.EventType)."""

from svod.common.v1 import common_pb2
from svod_segmentation.domain.validation import EVENT_TYPES


def test_event_types_follow_the_proto_enum() -> None:
    names = {
        v.name.removeprefix("EVENT_TYPE_").lower()
        for v in common_pb2.EventType.DESCRIPTOR.values
        if v.number != 0
    }
    assert set(EVENT_TYPES) == names
