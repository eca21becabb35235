"""What a service raises when a peer's call fails: the same answer from every client."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from svod_runtime.clients import delivery_error, peer_error
from svod_runtime.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable


def _refusal(
    code: grpc.StatusCode, details: str = "", trailers: grpc.aio.Metadata | None = None
) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailers or grpc.aio.Metadata(), details)


def test_anything_not_passed_on_means_the_peer_cannot_answer_now() -> None:
    for code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INTERNAL):
        error = peer_error(_refusal(code, "why"), "identity could not erase")
        assert isinstance(error, Unavailable)
        assert error.message == f"identity could not erase: {code.name}"


def test_refusals_about_the_request_are_passed_on_where_asked() -> None:
    not_found = peer_error(_refusal(grpc.StatusCode.NOT_FOUND), "p", not_found="no such profile")
    assert isinstance(not_found, NotFound) and not_found.message == "no such profile"
    named = peer_error(_refusal(grpc.StatusCode.NOT_FOUND, "customer c"), "p", not_found="x")
    assert named.message == "customer c"
    invalid = peer_error(
        _refusal(grpc.StatusCode.INVALID_ARGUMENT, "bad phone"), "p", invalid_field="identifier"
    )
    assert isinstance(invalid, InvalidArgument)
    assert [(v.field, v.description) for v in invalid.violations] == [("identifier", "bad phone")]
    missing = peer_error(_refusal(grpc.StatusCode.UNIMPLEMENTED), "p", unimplemented="not yet")
    assert isinstance(missing, FailedPrecondition) and missing.message == "not yet"


def test_a_precondition_keeps_the_peers_reason_and_metadata() -> None:
    info = error_details_pb2.ErrorInfo(reason="IDENTIFIER_SHARED", metadata={"candidates": "a,b"})
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(code=9, message="shared", details=[detail])
    trailers = grpc.aio.Metadata(("grpc-status-details-bin", status.SerializeToString()))
    error = peer_error(
        _refusal(grpc.StatusCode.FAILED_PRECONDITION, "shared", trailers), "p", preconditions=True
    )
    assert isinstance(error, FailedPrecondition)
    assert (error.message, error.reason, error.metadata) == (
        "shared",
        "IDENTIFIER_SHARED",
        {"candidates": "a,b"},
    )
    plain = peer_error(_refusal(grpc.StatusCode.FAILED_PRECONDITION), "identity service")
    assert isinstance(plain, Unavailable)


def test_a_relay_reads_the_peers_status_and_may_wait_for_an_rpc_not_built_yet() -> None:
    refused = delivery_error(_refusal(grpc.StatusCode.INVALID_ARGUMENT, "no"))
    assert (refused.status, refused.permanent, str(refused)) == (
        "INVALID_ARGUMENT",
        True,
        "INVALID_ARGUMENT: no",
    )
    assert delivery_error(_refusal(grpc.StatusCode.UNIMPLEMENTED)).status == "UNIMPLEMENTED"
    later = delivery_error(_refusal(grpc.StatusCode.UNIMPLEMENTED), unimplemented_is_outage=True)
    assert later.status == "UNAVAILABLE" and not later.permanent
