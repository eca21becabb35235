"""RFM cut-offs: absolute recency times, scores on and off the cut-offs, old states read."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from svod_segmentation.domain.builtins import RfmCutoffs, rfm_label, rfm_state

AT = dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)
DAY = 86400.0


def test_state_keeps_recency_cut_offs_as_times_and_shows_them_in_days() -> None:
    state = rfm_state(AT, [2 * DAY, 3 * DAY, 4.5 * DAY, 5 * DAY], [2, 3, 4, 5], [1, 2, 3, 4], 6)
    assert state["r_days"] == [2.0, 3.0, 4.5, 5.0]
    assert state["r_cutoff_times"][0] == (AT - dt.timedelta(days=2)).isoformat()
    cutoffs = RfmCutoffs.from_state({**state, "computed_time": AT.isoformat()})
    assert cutoffs is not None
    # Exactly on the 2-day cut-off earns its point; a microsecond older does not.
    on = AT - dt.timedelta(days=2)
    assert cutoffs.scores(on, 1, Decimal(1))[0] == 5  # all four passed: 1 + 4
    assert cutoffs.scores(on - dt.timedelta(microseconds=1), 1, Decimal(1))[0] == 4
    # Frequency and monetary must be more than the cut-off.
    assert cutoffs.scores(on, 3, Decimal(3))[1:] == (2, 3)
    assert cutoffs.scores(None, 0, Decimal(0)) is None


def test_states_kept_before_absolute_cut_offs_are_read_as_of_their_recompute() -> None:
    old = {"r": [2 * DAY], "f": [1.0], "m": [100.0], "computed_time": AT.isoformat()}
    cutoffs = RfmCutoffs.from_state(old)
    assert cutoffs is not None and cutoffs.recency == (AT - dt.timedelta(days=2),)
    assert RfmCutoffs.from_state({"customers": 0}) is None


def test_classes_from_scores() -> None:
    assert rfm_label(5, 5, 5) == "champions"
    assert rfm_label(1, 1, 1) == "lost"
