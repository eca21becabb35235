"""The bounds of a bulk stream: how many messages one stream reads, and how many refusals its
answer lists (the limits are lowered here so the test stays small; the services run in this
process, so the servicer's module constants are theirs)."""

from __future__ import annotations

import grpc
import pytest

from svod.common.v1 import common_pb2
from svod.ingestion.v1 import ingestion_pb2
from svod_ingestion.entrypoints import grpc_servicer
from tests.builders import PHONE, identify, random_phone, track, unique

T = 15.0


def _status(suite, ref: common_pb2.RecordRef) -> grpc.StatusCode:
    try:
        suite.ingestion.GetRecordStatus(
            ingestion_pb2.GetRecordStatusRequest(record_ref=ref), timeout=T
        )
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def test_a_stream_past_its_limit_says_where_it_stopped(suite, monkeypatch) -> None:
    monkeypatch.setattr(grpc_servicer, "MAX_STREAM_MESSAGES", 5)
    source = unique("limit")
    requests = [
        track(
            source,
            common_pb2.EVENT_TYPE_PAGE_VIEWED,
            common_pb2.Identifier(type=PHONE, value=random_phone()),
        )
        for _ in range(8)
    ]
    reply = suite.ingestion.TrackStream(iter(requests), timeout=T)
    assert (reply.accepted_count, reply.rejected_count, reply.unread_from_index) == (5, 0, 5)
    assert [_status(suite, r.record_ref) for r in requests] == [grpc.StatusCode.OK] * 5 + [
        grpc.StatusCode.NOT_FOUND
    ] * 3


def test_a_stream_of_bad_messages_lists_the_first_refusals_and_counts_them_all(
    suite, monkeypatch
) -> None:
    monkeypatch.setattr(grpc_servicer, "MAX_LISTED_REJECTIONS", 3)
    source = unique("bad")
    requests = []
    for index in range(7):
        request = identify(source, phones=(random_phone(),))
        if index % 2 == 0:
            request.record.name.first_name = "x" * 201  # refused: over 200 characters
        requests.append(request)
    reply = suite.ingestion.IdentifyStream(iter(requests), timeout=T)
    assert (reply.accepted_count, reply.rejected_count) == (3, 4)
    assert [r.index for r in reply.rejected] == [0, 2, 4]
    assert {v.field for r in reply.rejected for v in r.field_violations} == {
        "record.name.first_name"
    }


@pytest.mark.parametrize(
    "seconds", [10**12, -(10**12), 253_402_300_800, 4_102_444_800, -2_208_988_801]
)
def test_a_timestamp_out_of_range_in_a_stream_is_refused_alone(suite, seconds) -> None:
    """Such a time was an OverflowError (INTERNAL) that aborted the stream after earlier
    chunks had been committed; now it is one refused message among accepted ones."""
    source = unique("ts")
    requests = [
        track(
            source,
            common_pb2.EVENT_TYPE_PAGE_VIEWED,
            common_pb2.Identifier(type=PHONE, value=random_phone()),
        )
        for _ in range(3)
    ]
    requests[1].event.occurred_time.seconds = seconds
    reply = suite.ingestion.TrackStream(iter(requests), timeout=T)
    assert (reply.accepted_count, reply.rejected_count) == (2, 1)
    (refused,) = reply.rejected
    assert refused.index == 1
    assert [v.field for v in refused.field_violations] == ["event.occurred_time"]
    with pytest.raises(grpc.RpcError) as single:
        suite.ingestion.Track(requests[1], timeout=T)
    assert single.value.code() == grpc.StatusCode.INVALID_ARGUMENT
