"""The rule tree of a segment, as plain values (no protobuf, no SQL)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

# A rule tree deeper than this many levels is refused (the root is level 1).
MAX_RULE_DEPTH = 8
# A rule tree with more nodes than this is refused.
MAX_RULE_NODES = 200
# Longest behaviour window, in days.
MAX_WINDOW_DAYS = 3650
# References to other segments are compiled inline (a segment's SQL contains the SQL of every
# segment it refers to, at each reference), so what a rule costs is its size with every
# reference expanded: at most this many nodes for one segment, and at most
# MAX_TOTAL_EXPANDED_NODES for all segments together (one statement evaluates every segment
# on each profile change). Measured on PostgreSQL 15: about 55 characters of SQL and 5 ms of
# planning and 5 ms of execution per 1,000 expanded nodes; four levels of 199 references each
# expanded to ~1.5e9 nodes (gigabytes of SQL) and stalled every profile change.
MAX_EXPANDED_NODES = 2_000
MAX_TOTAL_EXPANDED_NODES = 20_000
# What a built-in segment counts for (its classes' conditions), besides its population.
BUILTIN_NODES = 50


@dataclass(frozen=True)
class AllOf:
    nodes: tuple[Rule, ...]


@dataclass(frozen=True)
class AnyOf:
    nodes: tuple[Rule, ...]


@dataclass(frozen=True)
class Not:
    node: Rule | None


@dataclass(frozen=True)
class FieldCondition:
    field: str
    operator: str
    values: tuple[str, ...]


class Aggregate(StrEnum):
    """What a behaviour condition counts: its events, or a sum over them (``measure``)."""

    COUNT = "count"
    SUM = "sum"


AGGREGATES = tuple(a.value for a in Aggregate)


@dataclass(frozen=True)
class BehaviorCondition:
    event_type: str
    aggregate: str  # an Aggregate once validated
    comparison: str
    threshold: float
    window_days: int
    filters: tuple[tuple[str, str], ...] = ()
    measure: str = ""


@dataclass(frozen=True)
class InSegment:
    segment_id: str
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Empty:
    """A node with nothing set (always an error)."""


Rule = AllOf | AnyOf | Not | FieldCondition | BehaviorCondition | InSegment | Empty


@dataclass(frozen=True)
class Located:
    """A node with its path in the request, for error messages."""

    node: Rule
    path: str


def child_path(path: str, node: Rule, index: int | None = None) -> str:
    if isinstance(node, AllOf):
        return f"{path}.all.nodes[{index}]"
    if isinstance(node, AnyOf):
        return f"{path}.any.nodes[{index}]"
    if isinstance(node, Not):
        return f"{path}.not"
    return path


def children(node: Rule) -> tuple[Rule, ...]:
    if isinstance(node, AllOf | AnyOf):
        return node.nodes
    if isinstance(node, Not):
        return () if node.node is None else (node.node,)
    return ()


def walk(node: Rule, path: str) -> list[Located]:
    """Every node of the tree with its path, parents first."""
    out = [Located(node, path)]
    for index, child in enumerate(children(node)):
        out.extend(walk(child, child_path(path, node, index)))
    return out


def referenced_segments(node: Rule) -> set[str]:
    return {n.node.segment_id for n in walk(node, "") if isinstance(n.node, InSegment)}


@dataclass(frozen=True)
class SegmentDefinition:
    """What a segment is: a rule tree or a parameterised built-in."""

    segment_id: str
    rule: Rule | None = None
    builtin: str = ""
    parameters: dict[str, str] = field(default_factory=dict)

    def references(self) -> set[str]:
        refs = referenced_segments(self.rule) if self.rule is not None else set()
        for name in ("population", "seed"):
            other = self.parameters.get(name, "")
            if self.builtin and other:
                refs.add(other)
        return refs


def rule_to_json(node: Rule) -> dict[str, object]:
    """A plain-JSON form of a rule tree, for storage."""
    if isinstance(node, AllOf):
        return {"all": [rule_to_json(n) for n in node.nodes]}
    if isinstance(node, AnyOf):
        return {"any": [rule_to_json(n) for n in node.nodes]}
    if isinstance(node, Not):
        return {"not": None if node.node is None else rule_to_json(node.node)}
    if isinstance(node, FieldCondition):
        return {"field": {"field": node.field, "operator": node.operator, "values": node.values}}
    if isinstance(node, BehaviorCondition):
        return {
            "behavior": {
                "event_type": node.event_type,
                "aggregate": node.aggregate,
                "comparison": node.comparison,
                "threshold": node.threshold,
                "window_days": node.window_days,
                "filters": dict(node.filters),
                "measure": node.measure,
            }
        }
    if isinstance(node, InSegment):
        return {"in_segment": {"segment_id": node.segment_id, "labels": list(node.labels)}}
    return {}


def rule_from_json(raw: dict[str, object]) -> Rule:
    if "all" in raw:
        return AllOf(tuple(rule_from_json(n) for n in raw["all"]))  # type: ignore[attr-defined]
    if "any" in raw:
        return AnyOf(tuple(rule_from_json(n) for n in raw["any"]))  # type: ignore[attr-defined]
    if "not" in raw:
        inner = raw["not"]
        return Not(None if inner is None else rule_from_json(inner))  # type: ignore[arg-type]
    if "field" in raw:
        f: dict[str, Any] = raw["field"]  # type: ignore[assignment]
        return FieldCondition(f["field"], f["operator"], tuple(f["values"]))
    if "behavior" in raw:
        b: dict[str, Any] = raw["behavior"]  # type: ignore[assignment]
        return BehaviorCondition(
            b["event_type"],
            b["aggregate"],
            b["comparison"],
            float(b["threshold"]),
            int(b["window_days"]),
            tuple(sorted(b.get("filters", {}).items())),
            b.get("measure", ""),
        )
    if "in_segment" in raw:
        s: dict[str, Any] = raw["in_segment"]  # type: ignore[assignment]
        return InSegment(s["segment_id"], tuple(s.get("labels", ())))
    return Empty()


def expanded_sizes(segments: Mapping[str, SegmentDefinition]) -> dict[str, int]:
    """Each segment's size with every reference expanded (what its compiled SQL is made of).
    A reference to an unknown segment counts as one node; a cycle is cut where it closes (both
    are refused by validation anyway)."""
    sizes: dict[str, int] = {}
    open_ids: set[str] = set()

    def size_of(segment_id: str) -> int:
        if segment_id in sizes:
            return sizes[segment_id]
        definition = segments.get(segment_id)
        if definition is None or segment_id in open_ids:
            return 1
        open_ids.add(segment_id)
        if definition.builtin:
            population = definition.parameters.get("population", "")
            total = BUILTIN_NODES + (size_of(population) if population else 0)
        elif definition.rule is None:
            total = 1
        else:
            total = rule_size(definition.rule, size_of)
        open_ids.discard(segment_id)
        sizes[segment_id] = total
        return total

    for segment_id in segments:
        size_of(segment_id)
    return sizes


def rule_size(node: Rule, size_of: Callable[[str], int]) -> int:
    """Nodes of a rule tree, each reference counted with the expanded size of its target."""
    total = 0
    for located in walk(node, ""):
        total += 1
        if isinstance(located.node, InSegment):
            total += size_of(located.node.segment_id)
    return total
