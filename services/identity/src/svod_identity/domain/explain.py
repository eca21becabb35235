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
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.model import RecordRef

_MERGE_KINDS = {
    "manual_merge": "manual_merge",
    "review_accepted": "review_accepted",
    "customers_merged": "automatic_merge",
    "customer_split": "split",
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

    def with_refs(self, refs: Mapping[int, RecordRef]) -> Evidence:
        return replace(
            self,
            from_ref=refs.get(self.from_pk) if self.from_pk else None,
            to_ref=refs.get(self.to_pk) if self.to_pk else None,
        )


def _edges(material: Mapping[str, Any]) -> dict[int, list[tuple[int, Evidence]]]:
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
    for key, pks in carriers.items():
        pks.sort()
        for pk in pks[1:]:
            add(pk, pks[0], Evidence("shared_identifier", pk, pks[0], identifier=key))
    for row in material["records"]:
        evidence = row.evidence or {}
        if evidence.get("kind") == "fuzzy_match":
            add(
                int(row.record_pk),
                int(evidence["record_pk"]),
                Evidence(
                    "fuzzy_match",
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
        if entry.kind == "manual_merge":
            anchors = [pk for pks in (detail.get("anchors") or {}).values() for pk in pks[:1]]
        elif entry.kind == "review_accepted":
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
        kind = evidence.get("kind", "new_customer")
        pk = int(row.record_pk)
        if kind == "shared_identifier":
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
        elif kind == "fuzzy_match":
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
