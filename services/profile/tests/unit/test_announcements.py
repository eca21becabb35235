"""The profile.changed payload: outbox rows written before a release are read after it."""

from __future__ import annotations

import pytest

from svod_profile.domain.announcements import ProfileChanged, SplitPart
from svod_profile.service_layer.event_batcher import metrics_only

# Payloads as the outbox holds them (the shapes written since the topic exists).
STORED = [
    (b'{"events": []}', ProfileChanged()),
    (b'{"events": [["shop", "o1"]]}', ProfileChanged(events=(("shop", "o1"),))),
    (b'{"events": [], "merged": ["m1", "m2"]}', ProfileChanged(merged=("m1", "m2"))),
    (
        b'{"events": [], "merged": ["m1"], "split": {"source": "s", "moved": [["shop", "o2"]]}}',
        ProfileChanged(merged=("m1",), split=SplitPart("s", (("shop", "o2"),))),
    ),
    (
        b'{"events": [["shop", "o3"]], "metrics_only": true}',
        ProfileChanged(events=(("shop", "o3"),), metrics_only=True),
    ),
]


@pytest.mark.parametrize(("payload", "change"), STORED)
def test_stored_payloads_read_back_and_are_written_alike(
    payload: bytes, change: ProfileChanged
) -> None:
    assert ProfileChanged.parse(payload) == change
    assert change.payload() == payload


def test_a_split_moving_nothing_still_names_its_source() -> None:
    change = ProfileChanged(split=SplitPart("s", ()))
    assert ProfileChanged.parse(change.payload()) == change


@pytest.mark.parametrize(
    ("version", "consented", "alone"),
    [(1, False, False), (2, False, True), (7, True, False), (1, True, False)],
)
def test_only_a_known_profile_whose_batch_changed_its_metrics_alone_is_announced_so(
    version: int, consented: bool, alone: bool
) -> None:
    # Version 1: the batch created the profile; segmentation must get it whole once.
    assert metrics_only(version, consented) is alone
