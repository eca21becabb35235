"""The front door under hostile input: valid Identify and Track calls with a few fields spoilt
(hypothesis ``near``), alone and in streams.

Properties: every answer is OK or a precise refusal; a refused message leaves nothing stored
(GetRecordStatus answers as before the call); in a stream, the bad messages are refused alone,
each reported with its index, and every other message is stored.
"""

from __future__ import annotations

import grpc
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from svod.common.v1 import common_pb2
from svod.ingestion.v1 import ingestion_pb2
from tests.builders import PHONE, identify, track, unique
from tests.properties.harness import ALLOWED, MAX_SENT_BYTES, Answer, call, describe, methods
from tests.properties.strategies import near

pytestmark = pytest.mark.filterwarnings(
    # The services run in this process: their own use of `random` (trace ids, jitter) is seen
    # by hypothesis as strategies touching global randomness.
    "ignore::hypothesis.errors.HypothesisDeprecationWarning"
)
T = 15.0
_METHODS = {m.name: m for m in methods("ingestion")}


def _identify_template(known) -> ingestion_pb2.IdentifyRequest:
    request = identify(known.source, phones=(known.phones[0],), first_name="Мария")
    request.record.addresses.add(city="Москва", address_line="ул. Тверская, 1")
    request.record.birth_date.year, request.record.birth_date.month = 1990, 5
    request.record.birth_date.day = 17
    request.observed_time.FromJsonString("2026-01-10T10:00:00Z")
    return request


def _track_template(known) -> ingestion_pb2.TrackRequest:
    request = track(
        known.source,
        common_pb2.EVENT_TYPE_ORDER_PLACED,
        common_pb2.Identifier(type=PHONE, value=known.phones[0]),
        occurred="2026-01-10T10:00:00Z",
        total="1499.90",
        lines=(("shoes", 1, "1499.90", "100"),),
        order_id="o-1",
    )
    request.event.properties["page"] = "/cart"
    return request


def _fresh(request, known_refs):
    """The request under a message id nobody used, unless the spoiling chose one on purpose."""
    if request.record_ref.message_id not in known_refs:
        request.record_ref.message_id = unique("prop")
    return request


def _status(suite, ref: common_pb2.RecordRef) -> tuple[str, str]:
    try:
        status = suite.ingestion.GetRecordStatus(
            ingestion_pb2.GetRecordStatusRequest(record_ref=ref), timeout=T
        )
    except grpc.RpcError as error:
        return error.code().name, ""
    return "FOUND", status.record_id


def _one(suite, known, method: str, request) -> Answer:
    before = _status(suite, request.record_ref)
    answer = call(suite.channels["ingestion"], _METHODS[method], request)
    assert answer.code in ALLOWED, describe(_METHODS[method], request, answer)
    after = _status(suite, request.record_ref)
    if answer.ok:
        assert after[0] == "FOUND"
    else:
        assert after == before, f"a refused {method} changed what is stored: {before} -> {after}"
    return answer


def test_a_spoilt_identify_is_accepted_or_refused_and_then_leaves_nothing(suite, known) -> None:
    template = _identify_template(known)
    refs = {r.message_id for r in known.refs}

    @given(request=near(template, known.pools))
    def check(request) -> None:
        assume(request.ByteSize() < MAX_SENT_BYTES)
        _one(suite, known, "Identify", _fresh(request, refs))

    check()


def test_a_spoilt_track_is_accepted_or_refused_and_then_leaves_nothing(suite, known) -> None:
    template = _track_template(known)
    refs = {r.message_id for r in known.refs}

    @given(request=near(template, known.pools))
    def check(request) -> None:
        assume(request.ByteSize() < MAX_SENT_BYTES)
        _one(suite, known, "Track", _fresh(request, refs))

    check()


def _stream_property(suite, known, method: str, template) -> None:
    @given(
        spoilt=st.lists(st.one_of(st.none(), near(template, known.pools)), min_size=1, max_size=8)
    )
    def check(spoilt) -> None:
        requests = []
        for item in spoilt:
            request = type(template)()
            request.CopyFrom(item if item is not None else template)
            request.record_ref.source = (
                request.record_ref.source if item is not None else template.record_ref.source
            )
            request.record_ref.message_id = unique("prop-stream")
            requests.append(request)
        assume(sum(r.ByteSize() for r in requests) < MAX_SENT_BYTES)
        answer = call(suite.channels["ingestion"], _METHODS[method], requests)
        assert answer.ok, describe(_METHODS[method], requests, answer)
        reply: ingestion_pb2.BulkResponse = answer.reply
        refused = {r.index for r in reply.rejected}
        assert reply.rejected_count == len(refused)
        assert reply.accepted_count + reply.rejected_count == len(requests)
        for index, request in enumerate(requests):
            stored = _status(suite, request.record_ref)[0] == "FOUND"
            assert stored != (index in refused), (index, reply)
        # The unspoilt messages are never refused because of the others.
        for index, item in enumerate(spoilt):
            if item is None:
                assert index not in refused, reply.rejected

    check()


def test_a_bad_identify_in_a_stream_is_refused_alone(suite, known) -> None:
    _stream_property(suite, known, "IdentifyStream", _identify_template(known))


def test_a_bad_track_in_a_stream_is_refused_alone(suite, known) -> None:
    _stream_property(suite, known, "TrackStream", _track_template(known))
