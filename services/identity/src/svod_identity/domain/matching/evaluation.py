"""An in-memory stand-in for the service's matching loop, to measure the matcher on labelled data.

It does what the service does with SQL - block, compare candidate pairs, estimate the model by
EM, score, link - on a list of records, then compares the resulting clusters with the truth:

    python -m svod_identity.domain.matching.evaluation records.jsonl

The input is JSONL in the benchmark generator's format (raw source messages plus
``person_id``). Linking is transitive but guarded: two clusters are joined only if no pair
across them has a first-name, birth-date or patronymic conflict, the same rule the service
should apply before merging customers.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from svod_identity.domain.matching.blocking import MAX_BLOCK_SIZE, blocking_keys
from svod_identity.domain.matching.compare import Comparison, compare_records
from svod_identity.domain.matching.em import estimate_model
from svod_identity.domain.matching.model import MatchModel
from svod_identity.domain.matching.record import PersonRecord, build_person_record
from svod_identity.domain.matching.scoring import (
    PairScore,
    conflicts,
    score_comparison,
    tf_adjustments,
)

_IDENTIFIER_FIELDS = {"phone": "phones", "email": "emails", "loyalty_card": "cards"}


def record_from_message(message: Mapping[str, Any]) -> PersonRecord:
    """A PersonRecord from a raw source message (the generator's format)."""
    found: dict[str, list[str]] = defaultdict(list)
    for identifier in message.get("identifiers") or ():
        target = _IDENTIFIER_FIELDS.get(identifier.get("type", ""))
        if target and identifier.get("value"):
            found[target].append(str(identifier["value"]))
    return build_person_record(
        f"{message['source']}:{message['message_id']}",
        first_name=message.get("first_name"),
        last_name=message.get("last_name"),
        middle_name=message.get("middle_name"),
        birth_date=message.get("birth_date"),
        gender=message.get("gender"),
        phones=found["phones"],
        emails=found["emails"],
        cards=found["cards"],
        city=message.get("city"),
        address_line=message.get("address_line"),
        source=str(message.get("source", "")),
        observed_at=message.get("observed_at"),
    )


def candidate_pairs(
    records: Sequence[PersonRecord], max_block_size: int = MAX_BLOCK_SIZE
) -> list[tuple[int, int]]:
    """Index pairs sharing at least one blocking key; oversized blocks are skipped."""
    blocks: dict[str, list[int]] = defaultdict(list)
    for index, record in enumerate(records):
        for key in blocking_keys(record):
            blocks[key].append(index)
    pairs: set[tuple[int, int]] = set()
    for members in blocks.values():
        if 1 < len(members) <= max_block_size:
            pairs.update(combinations(members, 2))
    return sorted(pairs)


def compare_pairs(
    records: Sequence[PersonRecord], pairs: Iterable[tuple[int, int]]
) -> dict[tuple[int, int], Comparison]:
    return {(i, j): compare_records(records[i], records[j]) for i, j in pairs}


def train_model(comparisons: Iterable[Comparison], base: MatchModel | None = None) -> MatchModel:
    return estimate_model(comparisons, base)


class _Clusters:
    """Union-find that refuses merges across a first-name, birth-date or patronymic conflict."""

    def __init__(self, records: Sequence[PersonRecord], model: MatchModel | None = None) -> None:
        self.records = records
        self.model = model
        self.parent = list(range(len(records)))
        self.members: dict[int, list[int]] = {i: [i] for i in range(len(records))}

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def _compatible(self, a: int, b: int) -> bool:
        for i in self.members[a]:
            for j in self.members[b]:
                levels = compare_records(self.records[i], self.records[j])
                if conflicts(levels, self.model):
                    return False
        return True

    def union(self, i: int, j: int) -> bool:
        a, b = self.find(i), self.find(j)
        if a == b or not self._compatible(a, b):
            return False
        if len(self.members[a]) < len(self.members[b]):
            a, b = b, a
        self.parent[b] = a
        self.members[a].extend(self.members.pop(b))
        return True

    def clusters(self) -> list[list[int]]:
        return [sorted(m) for m in self.members.values()]


@dataclass(frozen=True)
class Resolution:
    clusters: list[list[str]]  # record keys per resolved person
    scores: dict[tuple[int, int], PairScore]
    model: MatchModel


def resolve(records: Sequence[PersonRecord], model: MatchModel | None = None) -> Resolution:
    """Blocks, estimates the model (unless given), scores and clusters ``records``."""
    comparisons = compare_pairs(records, candidate_pairs(records))
    if model is None:
        model = train_model(comparisons.values())
    scores = {
        (i, j): score_comparison(
            levels, model, tf_adjustments(records[i], records[j], levels, model)
        )
        for (i, j), levels in comparisons.items()
    }
    clusters = _Clusters(records, model)
    links = sorted(
        (pair for pair, s in scores.items() if s.decision == "link"),
        key=lambda pair: -scores[pair].score,
    )
    for i, j in links:
        clusters.union(i, j)
    keyed = [[records[i].record_key for i in c] for c in clusters.clusters()]
    return Resolution(keyed, scores, model)


@dataclass(frozen=True)
class Metrics:
    precision: float
    recall: float
    f1: float
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int
    clusters: int
    persons: int
    max_persons_per_cluster: int
    review_pairs: int

    def summary(self) -> str:
        return (
            f"pairwise precision={self.precision:.4f} recall={self.recall:.4f} "
            f"f1={self.f1:.4f} (true={self.true_pairs} predicted={self.predicted_pairs} "
            f"correct={self.correct_pairs}) clusters={self.clusters} persons={self.persons} "
            f"max_persons_per_cluster={self.max_persons_per_cluster} "
            f"review_pairs={self.review_pairs}"
        )


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def pairwise_metrics(
    clusters: Sequence[Sequence[str]], truth: Mapping[str, str], review_pairs: int = 0
) -> Metrics:
    """Pairwise precision/recall/F1 of ``clusters`` against record key → person id."""
    per_person: dict[str, int] = defaultdict(int)
    for person in truth.values():
        per_person[person] += 1
    true_pairs = sum(_pairs(n) for n in per_person.values())
    predicted = correct = mixed = 0
    for cluster in clusters:
        predicted += _pairs(len(cluster))
        counts: dict[str, int] = defaultdict(int)
        for key in cluster:
            counts[truth[key]] += 1
        correct += sum(_pairs(n) for n in counts.values())
        mixed = max(mixed, len(counts))
    precision = correct / predicted if predicted else 1.0
    recall = correct / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Metrics(
        precision=precision,
        recall=recall,
        f1=f1,
        true_pairs=true_pairs,
        predicted_pairs=predicted,
        correct_pairs=correct,
        clusters=len(clusters),
        persons=len(per_person),
        max_persons_per_cluster=mixed,
        review_pairs=review_pairs,
    )


def evaluate(messages: Sequence[Mapping[str, Any]], model: MatchModel | None = None) -> Metrics:
    """Resolves labelled messages (each with ``person_id``) and measures the result."""
    records = [record_from_message(m) for m in messages]
    truth = {r.record_key: str(m["person_id"]) for r, m in zip(records, messages, strict=True)}
    resolution = resolve(records, model)
    reviews = sum(1 for s in resolution.scores.values() if s.decision == "review")
    return pairwise_metrics(resolution.clusters, truth, reviews)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure the matcher on labelled JSONL records.")
    parser.add_argument("path", help="JSONL with person_id per record ('-' for stdin)")
    args = parser.parse_args(argv)
    if args.path == "-":
        lines = sys.stdin.readlines()
    else:
        with open(args.path, encoding="utf-8") as stream:
            lines = stream.readlines()
    messages = [json.loads(line) for line in lines if line.strip()]
    print(evaluate(messages).summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
