"""Comparing the current record -> customer mapping with a re-resolution under other rules."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from svod_identity.domain.model import RecordRef

MAX_SAMPLES = 20


@dataclass(frozen=True)
class PreviewResult:
    would_merge_count: int
    would_split_count: int
    sample_merges: list[tuple[RecordRef, RecordRef]] = field(default_factory=list)
    sample_splits: list[tuple[RecordRef, RecordRef]] = field(default_factory=list)
    records: int = 0
    customers_before: int = 0
    customers_after: int = 0


def compare_clusterings(
    current: Mapping[int, str], proposed: Mapping[int, str], refs: Mapping[int, RecordRef]
) -> PreviewResult:
    """Merges (current customers put together) and splits (current customers broken apart)."""
    by_proposed: dict[str, dict[str, int]] = defaultdict(dict)
    by_current: dict[str, dict[str, int]] = defaultdict(dict)
    for pk in sorted(current):
        by_proposed[proposed[pk]].setdefault(current[pk], pk)
        by_current[current[pk]].setdefault(proposed[pk], pk)
    merges = splits = 0
    merge_samples: list[tuple[RecordRef, RecordRef]] = []
    split_samples: list[tuple[RecordRef, RecordRef]] = []
    for members in by_proposed.values():
        firsts = list(members.values())
        merges += len(firsts) - 1
        for other in firsts[1:]:
            if len(merge_samples) < MAX_SAMPLES:
                merge_samples.append((refs[firsts[0]], refs[other]))
    for parts in by_current.values():
        if len(parts) > 1:
            splits += 1
            firsts = list(parts.values())
            if len(split_samples) < MAX_SAMPLES:
                split_samples.append((refs[firsts[0]], refs[firsts[1]]))
    return PreviewResult(
        merges,
        splits,
        merge_samples,
        split_samples,
        len(current),
        len(by_current),
        len(by_proposed),
    )
