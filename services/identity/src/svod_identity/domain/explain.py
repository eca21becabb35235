"""Why records are one customer: the chain of evidence through the identity graph.

The evidence graph of a customer has its records as nodes and three kinds of edges: records
carrying the same linking identifier, a fuzzy match a record was linked by (with its score),
and merges a person made (manual merges, accepted review items). ``explain_pair`` returns the
shortest chain between two records; ``explain_customer`` how each record joined and every
merge and split of the customer.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.ledger import LedgerKind
from svod_identity.domain.matching.scoring import PairScore
from svod_identity.domain.model import EvidenceKind, RecordRef

# The ledger entries that join or part customers, and the step each makes in an explanation.
_MERGE_KINDS = {
    LedgerKind.MANUAL_MERGE: "manual_merge",
    LedgerKind.REVIEW_ACCEPTED: "review_accepted",
    LedgerKind.CUSTOMERS_MERGED: "automatic_merge",
    LedgerKind.CUSTOMER_SPLIT: "split",
}


@dataclass(frozen=True)
class Evidence:
    kind: str
    from_pk: int | None = None
    to_pk: int | None = None
    identifier: IdentifierKey | None = None
    score: float = 0.0
    rule: str = ""
    actor: str = ""
    reason: str = ""
    at: dt.datetime | None = None
    from_ref: RecordRef | None = None
    to_ref: RecordRef | None = None
    disagreements: tuple[str, ...] = ()
    vetoes: tuple[str, ...] = ()
    levels: Mapping[str, str] = field(default_factory=dict)
    decision: str = ""

    def with_refs(self, refs: Mapping[int, RecordRef]) -> Evidence:
        return replace(
            self,
            from_ref=refs.get(self.from_pk) if self.from_pk else None,
            to_ref=refs.get(self.to_pk) if self.to_pk else None,
        )


def _edges(material: Mapping[str, Any]) -> dict[int, list[tuple[int, Evidence]]]:  # noqa: C901
    graph: dict[int, list[tuple[int, Evidence]]] = {r.record_pk: [] for r in material["records"]}

    def add(a: int, b: int, evidence: Evidence) -> None:
        if a in graph and b in graph and a != b:
            graph[a].append((b, evidence))
            graph[b].append((a, replace(evidence, from_pk=b, to_pk=a)))

    carriers: dict[IdentifierKey, list[int]] = {}
    for row in material["carried"]:
        if row.linking:
            key = IdentifierKey(row.id_type, row.value, row.namespace)
            carriers.setdefault(key, []).append(int(row.record_pk))
    placed = {int(r.record_pk): r.resolved_at for r in material["records"]}
    for key, pks in carriers.items():
        pks.sort()
        for pk in pks[1:]:
            # The link was made when the later record was placed.
            add(
                pk,
                pks[0],
                Evidence(
                    EvidenceKind.SHARED_IDENTIFIER, pk, pks[0], identifier=key, at=placed.get(pk)
                ),
            )
    for row in material["records"]:
        evidence = row.evidence or {}
        if evidence.get("kind") == EvidenceKind.FUZZY_MATCH:
            add(
                int(row.record_pk),
                int(evidence["record_pk"]),
                Evidence(
                    EvidenceKind.FUZZY_MATCH,
                    int(row.record_pk),
                    int(evidence["record_pk"]),
                    score=float(evidence.get("probability", 0.0)),
                    rule=row.rule,
                    at=row.resolved_at,
                ),
            )
    for entry in material["ledger"]:
        detail = entry.detail or {}
        anchors: list[int] = []
        if entry.kind == LedgerKind.MANUAL_MERGE:
            anchors = [pk for pks in (detail.get("anchors") or {}).values() for pk in pks[:1]]
        elif entry.kind == LedgerKind.REVIEW_ACCEPTED:
            anchors = [int(p) for p in detail.get("anchors_pair") or () if p]
        for other in anchors[1:]:
            add(
                anchors[0],
                other,
                Evidence(
                    entry.kind,
                    anchors[0],
                    other,
                    score=float(detail.get("probability", 0.0)),
                    actor=entry.actor,
                    reason=entry.reason,
                    at=entry.at,
                ),
            )
    return graph


def explain_pair(material: Mapping[str, Any], first: int, second: int) -> list[Evidence]:
    """The shortest chain of evidence from record ``first`` to record ``second``."""
    if first == second:
        return []
    graph = _edges(material)
    previous: dict[int, tuple[int, Evidence]] = {}
    queue = deque([first])
    seen = {first}
    while queue:
        node = queue.popleft()
        if node == second:
            break
        for neighbour, evidence in graph.get(node, ()):
            if neighbour not in seen:
                seen.add(neighbour)
                previous[neighbour] = (node, evidence)
                queue.append(neighbour)
    if second not in previous:
        # Joined by something the graph cannot show record to record: list the merges.
        return [s for s in explain_customer(material) if s.kind in _MERGE_KINDS.values()]
    steps = []
    node = second
    while node != first:
        node, evidence = previous[node]
        steps.append(evidence)
    return steps[::-1]


def explain_customer(material: Mapping[str, Any]) -> list[Evidence]:
    """How each record joined the customer, then its merges and splits, in order."""
    steps: list[Evidence] = []
    first_carrier: dict[IdentifierKey, int] = {}
    for row in sorted(material["carried"], key=lambda r: r.record_pk):
        if row.linking:
            key = IdentifierKey(row.id_type, row.value, row.namespace)
            first_carrier.setdefault(key, int(row.record_pk))
    for row in material["records"]:
        evidence = row.evidence or {}
        kind = evidence.get("kind", EvidenceKind.NEW_CUSTOMER)
        pk = int(row.record_pk)
        if kind == EvidenceKind.SHARED_IDENTIFIER:
            t, ns, v = evidence["identifier"]
            key = IdentifierKey(t, v, ns)
            target = first_carrier.get(key)
            steps.append(
                Evidence(
                    kind,
                    pk,
                    target if target != pk else None,
                    identifier=key,
                    rule=row.rule,
                    at=row.resolved_at,
                )
            )
        elif kind == EvidenceKind.FUZZY_MATCH:
            steps.append(
                Evidence(
                    kind,
                    pk,
                    int(evidence["record_pk"]),
                    score=float(evidence.get("probability", 0.0)),
                    rule=row.rule,
                    at=row.resolved_at,
                )
            )
        else:
            steps.append(Evidence(kind, pk, rule=row.rule, at=row.resolved_at))
    for entry in material["ledger"]:
        if entry.kind not in _MERGE_KINDS:
            continue
        detail = entry.detail or {}
        record = detail.get("record_pk")
        steps.append(
            Evidence(
                _MERGE_KINDS[entry.kind],
                int(record) if record else None,
                rule=str(detail.get("rule", "")),
                score=float(detail.get("probability", 0.0)),
                actor=entry.actor,
                reason=entry.reason,
                at=entry.at,
            )
        )
    return steps


# -- why two records are kept apart ----------------------------------------------------------

# The fields whose disagreement proves two people (``scoring.conflicts``).
_CONFLICT_FIELDS = ("first_name", "birth_date", "middle_name")
_DISAGREE = frozenset({"disagree", "other"})


@dataclass(frozen=True)
class Decision:
    """A person's decision keeping two customers apart (a rejected review, a split)."""

    kind: str  # "review_rejected" | "customer_split"
    actor: str
    reason: str
    at: dt.datetime


@dataclass(frozen=True)
class OpenReview:
    probability: float
    at: dt.datetime
    explanation: Mapping[str, Any]


@dataclass(frozen=True)
class SharedIdentifier:
    """An identifier both records carry that does not link them."""

    key: IdentifierKey
    # "configured" | "placeholder" | "frequency" (blocked), or "" when it is held by one side
    # and refused to the other.
    blocked_reason: str


def disagreements(levels: Mapping[str, str]) -> tuple[str, ...]:
    """The identity fields on which two records disagree."""
    return tuple(f for f in _CONFLICT_FIELDS if levels.get(f) in _DISAGREE)


def explain_apart(
    first: int,
    second: int,
    decisions: Sequence[Decision],
    reviews: Sequence[OpenReview],
    shared: Sequence[SharedIdentifier],
    conflict: tuple[int, int, Mapping[str, str]] | None,
    pair: PairScore,
) -> list[Evidence]:
    """Why records ``first`` and ``second`` belong to different customers: a person's
    decisions, reviews waiting for one, identifiers both carry that do not link them, a
    conflicting pair of records of the two sides, and the two records' match score now."""
    steps = [
        Evidence(
            "kept_apart",
            first,
            second,
            actor=d.actor,
            reason=(
                "a reviewer rejected the match"
                if d.kind == LedgerKind.REVIEW_REJECTED
                else "a split"
            )
            + (f": {d.reason}" if d.reason else ""),
            at=d.at,
        )
        for d in decisions
    ]
    for review in reviews:
        features = review.explanation.get("features", [])
        steps.append(
            Evidence(
                "review_open",
                first,
                second,
                score=review.probability,
                reason="a suspected duplicate waits for a person's decision",
                at=review.at,
                vetoes=tuple(review.explanation.get("vetoes", ())),
                levels={f["feature"]: f["level"] for f in features},
            )
        )
    for item in shared:
        if item.blocked_reason:
            steps.append(
                Evidence(
                    "identifier_blocked",
                    first,
                    second,
                    identifier=item.key,
                    reason=f"the identifier is blocked ({item.blocked_reason}) and links nobody",
                )
            )
        else:
            steps.append(
                Evidence(
                    "identifier_refused",
                    first,
                    second,
                    identifier=item.key,
                    reason="the identifier is shared by customers kept apart: it links neither",
                )
            )
    if conflict is not None:
        a, b, levels = conflict
        differ = disagreements(levels)
        steps.append(
            Evidence(
                "conflict",
                a,
                b,
                reason=(
                    " and ".join(differ) + (" disagree" if len(differ) > 1 else " disagrees")
                    if differ
                    else "the two sides conflict"
                ),
                disagreements=differ,
                levels=dict(levels),
            )
        )
    steps.append(
        Evidence(
            "match_score",
            first,
            second,
            score=pair.probability,
            reason=f"scored now: {pair.decision}",
            disagreements=disagreements(pair.levels),
            vetoes=pair.vetoes,
            levels=dict(pair.levels),
            decision=pair.decision,
        )
    )
    return steps
