"""Latency figures shared by the benchmark scripts."""

from __future__ import annotations

import statistics


def percentile(values: list[float], q: float) -> float:
    """The value below which a share ``q`` of the samples fall (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency_summary(samples_ms: list[float]) -> dict[str, float]:
    return {
        "calls": len(samples_ms),
        "p50_ms": round(statistics.median(samples_ms), 3),
        "p99_ms": round(percentile(samples_ms, 0.99), 3),
        "mean_ms": round(statistics.fmean(samples_ms), 3),
    }
