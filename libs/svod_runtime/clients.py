"""Channels to peer services: traced, authenticated when keys are on, a deadline on every call,
UNAVAILABLE retried with backoff (svod_runtime.retries)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from svod_runtime.config import PeerSecurity
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
