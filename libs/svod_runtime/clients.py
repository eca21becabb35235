"""Channels to peer services: traced, authenticated when keys are on, a deadline on every call,
UNAVAILABLE retried with backoff (svod_runtime.retries); and what a caller raises when a peer
refuses a call (``peer_error``, ``delivery_error``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

from svod_runtime.config import PeerSecurity
from svod_runtime.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    SvodError,
    Unavailable,
)
from svod_runtime.outbox import DeliveryError
from svod_runtime.retries import retry_options
from svod_runtime.telemetry import Telemetry
from svod_runtime.tls import aio_channel


def _with_key(details: grpc.aio.ClientCallDetails, key: str) -> grpc.aio.ClientCallDetails:
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    metadata.add("authorization", f"Bearer {key}")
    return grpc.aio.ClientCallDetails(
        details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
    )


class _UnaryUnaryKey(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, key: str) -> None:
        self.key = key

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        return await continuation(_with_key(details, self.key), request)


class _UnaryStreamKey(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, key: str) -> None:
        self.key = key

    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        return await continuation(_with_key(details, self.key), request)


class _StreamUnaryKey(grpc.aio.StreamUnaryClientInterceptor):
    def __init__(self, key: str) -> None:
        self.key = key

    async def intercept_stream_unary(
        self, continuation: Callable[..., Any], details: Any, requests: Any
    ) -> Any:
        return await continuation(_with_key(details, self.key), requests)


def peer_channel(
    target: str,
    telemetry: Telemetry,
    security: PeerSecurity | None = None,
    *,
    retries: bool = True,
) -> grpc.aio.Channel:
    """An aio channel whose calls carry the current trace context (and, when the deployment
    uses API keys, this service's own key) to the peer, over TLS when the service has TLS
    files (``security``: the service config's ``peer_security``; default: the environment).
    ``retries=False`` for a caller that must not wait for a peer that is down (it has its own
    answer to that, e.g. ingestion's front door accepting a record unchecked)."""
    security = security or PeerSecurity.from_env()
    interceptors: list[Any] = telemetry.client_interceptors()
    key = security.api_key
    if key:
        interceptors += [_UnaryUnaryKey(key), _UnaryStreamKey(key), _StreamUnaryKey(key)]
    return aio_channel(
        target,
        security.tls,
        interceptors=interceptors,
        options=[
            # UNAVAILABLE (the peer restarting, its database down) retried with backoff.
            *(retry_options() if retries else [("grpc.enable_retries", 0)]),
            ("grpc.keepalive_time_ms", 30_000),
            # Spread calls over every address a (headless) service name resolves to.
            ("grpc.lb_policy_name", "round_robin"),
        ],
    )


_DETAILS_KEY = "grpc-status-details-bin"


def error_info(error: grpc.aio.AioRpcError) -> tuple[str, dict[str, str]]:
    """The google.rpc.ErrorInfo (reason, metadata) of a peer's refusal, if it carries one."""
    for key, value in error.trailing_metadata() or ():
        if key != _DETAILS_KEY or not isinstance(value, bytes):
            continue
        for detail in status_pb2.Status.FromString(value).details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                return info.reason, dict(info.metadata)
    return "", {}


def peer_error(
    error: grpc.aio.AioRpcError,
    unavailable: str,
    *,
    not_found: str | None = None,
    invalid_field: str | None = None,
    preconditions: bool = False,
    unimplemented: str | None = None,
) -> SvodError:
    """The error a service raises for its own caller when a peer's call fails.

    Refusals about the caller's request are passed on only where the caller asked for them:
    ``not_found`` (NotFound with the peer's text, else this), ``invalid_field`` (the field of
    *our* request the peer's INVALID_ARGUMENT is about), ``preconditions`` (FAILED_PRECONDITION
    with its ErrorInfo reason and metadata), ``unimplemented`` (the peer does not offer the RPC
    yet: FailedPrecondition with this text). Anything else means the peer cannot answer now:
    Unavailable ``"<unavailable>: <STATUS>"``, which the caller's client may retry.
    """
    code = error.code()
    details = error.details() or ""
    if code == grpc.StatusCode.NOT_FOUND and not_found is not None:
        return NotFound(details or not_found)
    if code == grpc.StatusCode.INVALID_ARGUMENT and invalid_field is not None:
        return InvalidArgument([FieldViolation(invalid_field, details or "invalid")])
    if code == grpc.StatusCode.FAILED_PRECONDITION and preconditions:
        reason, metadata = error_info(error)
        return FailedPrecondition(
            details or "failed precondition", reason=reason, metadata=metadata
        )
    if code == grpc.StatusCode.UNIMPLEMENTED and unimplemented is not None:
        return FailedPrecondition(unimplemented)
    return Unavailable(f"{unavailable}: {code.name}")


def delivery_error(
    error: grpc.aio.AioRpcError, *, unimplemented_is_outage: bool = False
) -> DeliveryError:
    """An outbox relay's reading of a peer's refusal: the peer's status and text (the relay
    retries, backs off or dead-letters by the status). ``unimplemented_is_outage``: a peer
    that does not offer the RPC yet is retried later, as if it were down."""
    status = error.code().name
    if unimplemented_is_outage and error.code() == grpc.StatusCode.UNIMPLEMENTED:
        status = "UNAVAILABLE"
    return DeliveryError(status, error.details() or "")
