"""Channels to peer services: traced, with a deadline on every call."""

from __future__ import annotations

import grpc

from svod_runtime.telemetry import Telemetry


def peer_channel(target: str, telemetry: Telemetry) -> grpc.aio.Channel:
    """An aio channel whose calls carry the current trace context to the peer."""
    return grpc.aio.insecure_channel(
        target,
        interceptors=telemetry.client_interceptors(),
        options=[
            ("grpc.enable_retries", 1),
            ("grpc.keepalive_time_ms", 30_000),
            # Spread calls over every address a (headless) service name resolves to.
            ("grpc.lb_policy_name", "round_robin"),
        ],
    )
