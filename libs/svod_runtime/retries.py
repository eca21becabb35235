"""The gRPC retry policy of every client channel Svod opens (peers, ``svod``, the tests' and
benchmarks' clients): UNAVAILABLE is retried with exponential backoff by gRPC itself.

UNAVAILABLE is what a service answers when its database cannot be reached (a restart, a
failover: ``svod_runtime.db.database_unavailable``) or what the channel reports when the peer
is not listening (a pod restarting). Both pass within seconds, and every Svod call that writes
is idempotent by its message id (or changes nothing when refused), so a retry is safe.

Up to 5 attempts (gRPC's own ceiling), backoffs drawn at random below 0.2, 0.6, 1.8 and 5 s:
about 4 s of waiting on average, 7.6 s at most, before the caller sees UNAVAILABLE. A retried
client stream is replayed from gRPC's buffer (256 KiB per call): a longer stream already
committed to the server is not retried by gRPC, and its caller retries it whole with the same
message ids (duplicates are answered as such). Retry throttling stops retries when more than
half of a channel's recent calls failed, so a long outage does not multiply the load.
"""

from __future__ import annotations

import json
from typing import Any

RETRY_POLICY: dict[str, Any] = {
    "maxAttempts": 5,
    "initialBackoff": "0.2s",
    "maxBackoff": "5s",
    "backoffMultiplier": 3,
    "retryableStatusCodes": ["UNAVAILABLE"],
}

SERVICE_CONFIG: dict[str, Any] = {
    # ``{}``: every method of every service on the channel.
    "methodConfig": [{"name": [{}], "retryPolicy": RETRY_POLICY}],
    "retryThrottling": {"maxTokens": 20, "tokenRatio": 0.2},
}


def retry_options() -> list[tuple[str, Any]]:
    """Channel options that turn retries on with Svod's policy."""
    return [("grpc.enable_retries", 1), ("grpc.service_config", json.dumps(SERVICE_CONFIG))]
