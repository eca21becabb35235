"""The profile.changed payload: outbox rows written before a release are read after it."""

from __future__ import annotations

import dataclasses

import pytest

from svod_profile.domain.announcements import ProfileChanged, SplitPart, metrics_only_payload
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
    ("version", "consented", "created", "alone"),
    [
        (2, False, False, True),
        (1, False, True, True),  # created by the batch: nothing but metrics yet
        (1, False, False, False),  # created before, never announced: may hold more
        (7, True, False, False),  # a consent changed too
        (1, True, True, False),
    ],
)
def test_a_batch_that_changed_only_metrics_announces_them_alone(
    version: int, consented: bool, created: bool, alone: bool
) -> None:
    assert metrics_only(version, consented, created) is alone


@pytest.mark.parametrize(
    "payload",
    [
        b'{"events": [["shop", "o1"], ["shop", "o2"]]}',  # as an import's fold builds it (SQL)
        ProfileChanged(events=(("shop", "o3"),)).payload(),  # a part of a long announcement
    ],
)
def test_an_import_announcement_marked_metrics_only_reads_back_so(payload: bytes) -> None:
    marked = metrics_only_payload(payload)
    assert ProfileChanged.parse(marked) == dataclasses.replace(
        ProfileChanged.parse(payload), metrics_only=True
    )
    with pytest.raises(ValueError, match="events alone"):
        metrics_only_payload(marked)
