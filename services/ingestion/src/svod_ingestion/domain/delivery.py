"""When to retry a delivery downstream, and when to give up and keep the message as failed."""

from __future__ import annotations

import random

# Downstream answers that will not change on retry: the message is kept as failed, visibly.
PERMANENT_FAILURES = frozenset(
    {"INVALID_ARGUMENT", "FAILED_PRECONDITION", "ALREADY_EXISTS", "OUT_OF_RANGE"}
)
BASE_DELAY_S = 0.5
MAX_DELAY_S = 300.0


def is_permanent(status_name: str) -> bool:
    return status_name in PERMANENT_FAILURES


def retry_delay(attempts: int, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter, capped (attempts counts failures so far, from 1)."""
    ceiling = min(MAX_DELAY_S, BASE_DELAY_S * 2 ** max(0, attempts - 1))
    return (rng or random).uniform(ceiling / 2, ceiling)
