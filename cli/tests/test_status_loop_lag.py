"""``svod status``'s "loop held" figure from two scrapes of a service's loop-lag histogram."""

from __future__ import annotations

import json

from svod_cli.status import (
    LOOP_LAG_BUCKET,
    Samples,
    ServiceStatus,
    _held,
    longest_loop_lag,
    status_json,
)
from svod_runtime.metrics import LOOP_LAG_BUCKETS_S

BOUNDS = ("0.001", "0.01", "0.1", "1.0", "+Inf")


def _histogram(*counts: float) -> Samples:
    """Cumulative bucket counts, one per bound of BOUNDS."""
    return {
        (LOOP_LAG_BUCKET, (("le", bound),)): count
        for bound, count in zip(BOUNDS, counts, strict=True)
    }


def test_the_longest_lag_of_the_window_is_the_first_bucket_that_holds_all_its_samples() -> None:
    before = _histogram(10, 20, 20, 20, 20)
    # Four samples in the window: two under 1 ms, one under 10 ms, one between 0.1 and 1 s.
    after = _histogram(12, 23, 23, 24, 24)
    assert longest_loop_lag(before, after) == 1.0


def test_a_lag_past_the_last_bucket_and_a_window_without_samples() -> None:
    before = _histogram(10, 20, 20, 20, 20)
    assert longest_loop_lag(before, _histogram(10, 20, 20, 20, 21)) == float("inf")
    assert longest_loop_lag(before, before) is None
    assert longest_loop_lag({}, {}) is None


def test_the_column_shows_the_bucket_bound_as_it_is() -> None:
    assert [_held(b) for b in (0.0025, 0.025, 0.25, 1.0, 2.5, float("inf"), None)] == [
        "<= 2.5 ms",
        "<= 25 ms",
        "<= 250 ms",
        "<= 1 s",
        "<= 2.5 s",
        "> 5 s",
        "-",
    ]


def test_past_the_last_bucket_names_the_runtimes_last_bound() -> None:
    """The table writes the overflow bucket with a literal (the CLI does not load the metrics
    module to print it): it must be the bound the services' histogram ends at."""
    assert _held(float("inf")) == f"> {LOOP_LAG_BUCKETS_S[-1]:g} s"


def test_json_output_is_strict_json_with_the_overflow_written_as_prometheus_does() -> None:
    """``svod status --json`` is read by scripts: a lag past the last bucket must not come out
    as ``Infinity``, which strict JSON readers refuse."""

    def refuse(token: str) -> None:
        raise AssertionError(f"not strict JSON: {token}")

    held_long = ServiceStatus("profile", "127.0.0.1:50053", "SERVING", loop_held_max_s=float("inf"))
    held_short = ServiceStatus("identity", "127.0.0.1:50052", "SERVING", loop_held_max_s=0.05)
    unknown = ServiceStatus("segmentation", "127.0.0.1:50054", "unreachable (UNAVAILABLE)")
    text = json.dumps([status_json(s) for s in (held_long, held_short, unknown)])
    rows = json.loads(text, parse_constant=refuse)
    assert [r["loop_held_max_s"] for r in rows] == ["+Inf", 0.05, None]
