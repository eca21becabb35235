"""Database connection pool metrics (OpenTelemetry database-client semantic conventions).

- ``db.client.connection.count`` (state ``used``/``idle``) and ``db.client.connection.max``:
  read from the pool when a scrape asks, nothing on the hot path;
- ``db.client.connection.checkouts``: connections taken from the pool;
- ``db.client.connection.wait_time``: how long the checkouts that *waited* took — those of
  ``WAIT_THRESHOLD_S`` or more: a new connection was opened, or the pool was exhausted. A
  pooled connection comes in microseconds and is only counted: recording it would cost more
  than the checkout (an OpenTelemetry histogram record measured 15-30 us on this machine under
  load, about a third of a server span), paid by every transaction;
- ``db.client.connection.timeouts``: checkouts that gave up waiting (the pool's own timeout).

Checkouts are timed by the pool class every engine uses (TimedQueuePool).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from sqlalchemy import exc
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry

WAIT_THRESHOLD_S = 0.0005
WAIT_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0)
POOL_NAME = "db.client.connection.pool.name"


class TimedQueuePool(AsyncAdaptedQueuePool):
    """The async engines' queue pool, telling an observer how long each checkout waited."""

    wait_observer: Callable[[float, bool], None] | None = None

    def _do_get(self) -> ConnectionPoolEntry:
        observer = self.wait_observer
        if observer is None:
            return super()._do_get()
        started = time.perf_counter()
        try:
            entry = super()._do_get()
        except exc.TimeoutError:
            observer(time.perf_counter() - started, True)
            raise
        observer(time.perf_counter() - started, False)
        return entry

    def recreate(self) -> TimedQueuePool:
        pool = super().recreate()
        pool.wait_observer = self.wait_observer  # type: ignore[attr-defined]
        return pool  # type: ignore[return-value]


def observe_pool(meter: Meter, engine: AsyncEngine, pool_name: str) -> None:
    """Registers the pool metrics of one engine under ``pool_name``."""
    pool: Any = engine.sync_engine.pool
    attributes = {POOL_NAME: pool_name}
    used = {**attributes, "db.client.connection.state": "used"}
    idle = {**attributes, "db.client.connection.state": "idle"}

    def count(_options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(pool.checkedout(), used), Observation(pool.checkedin(), idle)]

    def maximum(_options: CallbackOptions) -> Iterable[Observation]:
        overflow = getattr(pool, "_max_overflow", 0)
        return [Observation(pool.size() + max(0, overflow), attributes)]

    meter.create_observable_up_down_counter(
        "db.client.connection.count",
        callbacks=[count],
        unit="{connection}",
        description="Database connections by state (used: checked out)",
    )
    meter.create_observable_up_down_counter(
        "db.client.connection.max",
        callbacks=[maximum],
        unit="{connection}",
        description="The most connections the pool may open",
    )
    if not isinstance(pool, TimedQueuePool):
        return
    checkouts = [0]

    def checked_out(_options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(checkouts[0], attributes)]

    meter.create_observable_counter(
        "db.client.connection.checkouts",
        callbacks=[checked_out],
        unit="{checkout}",
        description="Connections taken from the pool",
    )
    wait_time = meter.create_histogram(
        "db.client.connection.wait_time",
        unit="s",
        description=(
            f"Time checkouts that waited ({WAIT_THRESHOLD_S * 1000:g} ms or more) took to get "
            "a connection: a new one opened, or the pool exhausted"
        ),
        explicit_bucket_boundaries_advisory=WAIT_BUCKETS_S,
    )
    timeouts = meter.create_counter(
        "db.client.connection.timeouts",
        unit="{timeout}",
        description="Checkouts that timed out waiting for a connection",
    )

    timeouts.add(0, attributes)

    def observe(seconds: float, timed_out: bool) -> None:
        checkouts[0] += 1
        if seconds >= WAIT_THRESHOLD_S or timed_out:
            wait_time.record(seconds, attributes)
        if timed_out:
            timeouts.add(1, attributes)

    pool.wait_observer = observe
