"""Every public RPC of every service, called with hostile requests drawn from its proto.

The property: each answer is OK or a precise client error (INVALID_ARGUMENT, NOT_FOUND,
ALREADY_EXISTS, FAILED_PRECONDITION, OUT_OF_RANGE, PERMISSION_DENIED) - never INTERNAL,
UNKNOWN, a hang or a crash - whatever the request holds. Streams are drawn as lists of requests.
"""

from __future__ import annotations

import grpc
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tests.properties.harness import (
    ALLOWED,
    MAX_SENT_BYTES,
    call,
    describe,
    methods,
    request_class,
)
from tests.properties.strategies import messages

pytestmark = pytest.mark.filterwarnings(
    # The services run in this process: their own use of `random` (trace ids, jitter) is seen
    # by hypothesis as strategies touching global randomness.
    "ignore::hypothesis.errors.HypothesisDeprecationWarning"
)


def _draw_requests(data, method, pools):
    cls = request_class(method)
    if method.client_streaming:
        requests = data.draw(st.lists(messages(cls, pools), max_size=4), label="requests")
        assume(sum(r.ByteSize() for r in requests) < MAX_SENT_BYTES)
        return requests
    request = data.draw(messages(cls, pools), label="request")
    assume(request.ByteSize() < MAX_SENT_BYTES)
    return request


@pytest.mark.parametrize("service", ["ingestion", "identity", "profile", "quality", "segmentation"])
def test_any_request_gets_ok_or_a_precise_refusal(suite, known, service) -> None:
    channel: grpc.Channel = suite.channels[service]
    every = methods(service)

    @given(data=st.data())
    def check(data) -> None:
        method = data.draw(st.sampled_from(every), label="method")
        requests = _draw_requests(data, method, known.pools)
        answer = call(channel, method, requests)
        assert answer.code in ALLOWED, describe(method, requests, answer)

    check()


@pytest.mark.parametrize("service", ["ingestion", "identity", "profile", "quality", "segmentation"])
def test_any_bytes_get_ok_or_a_precise_refusal(suite, service) -> None:
    """What arrives on the wire need not parse at all (a string that is not UTF-8, a truncated
    field): such a request is the client's error too, never UNKNOWN."""
    channel: grpc.Channel = suite.channels[service]
    unary = [m for m in methods(service) if not m.client_streaming and not m.server_streaming]

    @given(data=st.data())
    def check(data) -> None:
        method = data.draw(st.sampled_from(unary), label="method")
        payload = data.draw(
            st.one_of(st.binary(max_size=200), st.just(b"\x0a\x04\xff\xfe\xfd\xfc")),
            label="bytes",
        )
        path = f"/{method.containing_service.full_name}/{method.name}"
        try:
            channel.unary_unary(path)(payload, timeout=30)
        except grpc.RpcError as error:
            assert error.code() in ALLOWED, (method.name, payload, error.details())

    check()
