"""Per-principal rate limits (token buckets) and caps on concurrent streams.

Each principal gets a bucket of ``burst`` calls refilled at ``rate_per_s``; a call finding it
empty is refused with RESOURCE_EXHAUSTED and a ``google.rpc.RetryInfo`` saying when a call
would pass. Streaming calls (imports, exports, watches) also take one of the principal's
``max_streams`` slots until they end. The limits are per service process: a service with N
replicas lets a principal through N times the rate. The services' own principals and the
anonymous principal (authentication off) are not limited: the services throttle themselves
through their outbox relays.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from svod_runtime.auth import Principal
from svod_runtime.errors import ResourceExhausted


@dataclass(frozen=True)
class LimitDefaults:
    rate_per_s: float = 1000.0
    burst: int = 2000
    max_streams: int = 16


class TokenBucket:
    def __init__(self, rate_per_s: float, burst: int, clock: float) -> None:
        self.rate = rate_per_s
        self.burst = burst
        self.tokens = float(burst)
        self.updated = clock

    def take(self, now: float) -> float:
        """0 when a token was taken; else the seconds until one is there."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class PrincipalLimits:
    def __init__(
        self, defaults: LimitDefaults | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.defaults = defaults or LimitDefaults()
        self.clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._streams: dict[str, int] = {}
        # Calls are admitted on the event loop, but a lock keeps this safe for any caller.
        self._lock = threading.Lock()

    def admit_call(self, principal: Principal) -> None:
        """Takes a token or raises ResourceExhausted with the time to wait."""
        if not principal.limited:
            return
        rate = principal.rate_per_s or self.defaults.rate_per_s
        burst = principal.burst or self.defaults.burst
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(principal.name)
            if bucket is None or bucket.rate != rate or bucket.burst != burst:
                bucket = self._buckets[principal.name] = TokenBucket(rate, burst, now)
            wait = bucket.take(now)
        if wait > 0:
            raise ResourceExhausted(
                f"principal {principal.name!r} is over its rate limit of {rate:g} calls/s "
                f"(burst {burst}); retry in {math.ceil(wait * 1000)} ms",
                retry_after_s=wait,
            )

    def open_stream(self, principal: Principal) -> bool:
        """Takes a stream slot (release with close_stream) or raises ResourceExhausted."""
        if not principal.limited:
            return False
        cap = principal.max_streams or self.defaults.max_streams
        with self._lock:
            open_now = self._streams.get(principal.name, 0)
            if open_now >= cap:
                raise ResourceExhausted(
                    f"principal {principal.name!r} already has {open_now} streams open "
                    f"(at most {cap}); retry when one ends",
                    retry_after_s=1.0,
                )
            self._streams[principal.name] = open_now + 1
        return True

    def close_stream(self, principal: Principal) -> None:
        with self._lock:
            left = self._streams.get(principal.name, 0) - 1
            if left > 0:
                self._streams[principal.name] = left
            else:
                self._streams.pop(principal.name, None)
