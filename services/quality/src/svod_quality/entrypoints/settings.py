"""Settings of the quality service beyond the shared ServiceConfig (from the environment).

* ``SVOD_QUALITY_WORKERS``: worker processes for large StandardizeBatch calls (0: one thread);
  default the CPU count.
* ``SVOD_QUALITY_FRESHNESS_DAYS``: contact data older than this counts as stale; default 365.
* ``SVOD_QUALITY_REFRESH_INTERVAL_S``: how often to check that today's report snapshot exists
  (0: never); default 3600. ``SVOD_QUALITY_REFRESH_FIRST_DELAY_S``: the first check; default 300.
* ``SVOD_QUALITY_REFRESH_TIMEOUT_S``: deadline of the StreamProfiles read of a refresh; 900.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class QualitySettings:
    workers: int = 2
    freshness_days: int = 365
    refresh_interval_s: float = 3600.0
    # The first daily check waits this long after start (lets a fresh suite settle).
    refresh_first_delay_s: float = 300.0
    refresh_timeout_s: float = 900.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> QualitySettings:
        env = os.environ if env is None else env
        return cls(
            workers=max(0, int(env.get("SVOD_QUALITY_WORKERS", os.cpu_count() or 1))),
            freshness_days=int(env.get("SVOD_QUALITY_FRESHNESS_DAYS", 365)),
            refresh_interval_s=float(env.get("SVOD_QUALITY_REFRESH_INTERVAL_S", 3600)),
            refresh_first_delay_s=float(env.get("SVOD_QUALITY_REFRESH_FIRST_DELAY_S", 300)),
            refresh_timeout_s=float(env.get("SVOD_QUALITY_REFRESH_TIMEOUT_S", 900)),
        )
