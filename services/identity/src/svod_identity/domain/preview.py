"""Comparing the current record -> customer mapping with a re-resolution under other rules."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from svod_identity.domain.identifiers import IdentifierKey
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
    identifier_changes: list[IdentifierChange] = field(default_factory=list)


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


# -- a person's decisions, kept as the service keeps them -------------------------------------


def keep_decisions(
    proposed: Mapping[int, str],
    current: Mapping[int, str],
    merges: Sequence[Sequence[int]],
    kept_apart: Iterable[frozenset[str]],
) -> dict[int, str]:
    """The proposed record -> customer mapping after a person's decisions, which the rules do
    not undo: records a person merged (manual merges and accepted reviews, given by one record
    of each side, and still one customer now) stay together, and current customers a person
    kept apart (rejected reviews, splits) are not put together (a proposed customer holding
    both is divided, greedily, biggest part first)."""
    parent: dict[str, str] = {}

    def root(cluster: str) -> str:
        while parent.get(cluster, cluster) != cluster:
            cluster = parent[cluster]
        return cluster

    for anchors in merges:
        present = [pk for pk in anchors if pk in proposed and pk in current]
        if len({current[pk] for pk in present}) != 1:
            continue  # undone since (a split), or its records are gone
        roots = sorted({root(proposed[pk]) for pk in present})
        for other in roots[1:]:
            parent[other] = roots[0]
    joined = {pk: root(cluster) for pk, cluster in proposed.items()}
    apart = {pair for pair in kept_apart if len(pair) == 2}
    if not apart:
        return joined
    members: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for pk, cluster in joined.items():
        members[cluster][current[pk]] += 1
    part_of: dict[tuple[str, str], str] = {}
    for cluster, customers in members.items():
        groups: list[set[str]] = []
        for customer in sorted(customers, key=lambda c: (-customers[c], c)):
            for index, group in enumerate(groups):
                if all(frozenset((customer, other)) not in apart for other in group):
                    group.add(customer)
                    part_of[(cluster, customer)] = f"{cluster}#{index}"
                    break
            else:
                groups.append({customer})
                part_of[(cluster, customer)] = f"{cluster}#{len(groups) - 1}"
    return {pk: part_of[(cluster, current[pk])] for pk, cluster in joined.items()}


# -- identifiers changing hands -------------------------------------------------------------


@dataclass(frozen=True)
class IdentifierChange:
    key: IdentifierKey
    current_customer_id: str  # "" when nobody holds it now
    change: str  # "moves" | "unlinked" | "linked"
    proposed_customer_id: str = ""  # a current customer, or "" for a new one
    reason: str = ""


def name_proposed(proposed: Mapping[int, str], current: Mapping[int, str]) -> dict[str, str]:
    """Each proposed customer -> the current customer it continues ("" for a new one): pairs
    taken by how much their records overlap (Jaccard), the closest first, each current
    customer continued at most once."""
    overlap: dict[tuple[str, str], int] = defaultdict(int)
    cluster_size: dict[str, int] = defaultdict(int)
    customer_size: dict[str, int] = defaultdict(int)
    for pk, cluster in proposed.items():
        overlap[(cluster, current[pk])] += 1
        cluster_size[cluster] += 1
        customer_size[current[pk]] += 1

    def closeness(pair: tuple[str, str]) -> tuple[float, int, str, str]:
        both = overlap[pair]
        union = cluster_size[pair[0]] + customer_size[pair[1]] - both
        return (-both / union, -both, *pair)

    named: dict[str, str] = dict.fromkeys(cluster_size, "")
    taken: set[str] = set()
    for cluster, customer in sorted(overlap, key=closeness):
        if not named[cluster] and customer not in taken:
            named[cluster] = customer
            taken.add(customer)
    return named


def identifier_changes(
    current_owners: Mapping[IdentifierKey, str],
    proposed_owners: Mapping[IdentifierKey, str],
    named: Mapping[str, str],
    unlinked: Mapping[IdentifierKey, str],
) -> list[IdentifierChange]:
    """Identifiers whose holder would change: ``proposed_owners`` maps keys to proposed
    customers, ``named`` proposed customers to the current ones they continue, ``unlinked``
    keys no proposed customer holds to why."""
    changes: list[IdentifierChange] = []
    for key in sorted(set(current_owners) | set(proposed_owners)):
        now = current_owners.get(key, "")
        cluster = proposed_owners.get(key)
        if cluster is None:
            if now:
                changes.append(IdentifierChange(key, now, "unlinked", "", unlinked.get(key, "")))
            continue
        then = named.get(cluster, "")
        if not now:
            changes.append(IdentifierChange(key, "", "linked", then))
        elif then != now:
            changes.append(IdentifierChange(key, now, "moves", then))
    return changes
