"""Validation of segment definitions: every error names the offending node by its path."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from decimal import Decimal

from svod_runtime import bounds
from svod_runtime.custom_attributes import EXPECTED as ATTRIBUTE_EXPECTED
from svod_runtime.custom_attributes import AttributeType
from svod_runtime.custom_attributes import normalize as normalize_attribute
from svod_runtime.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    ViolationCollector,
)
from svod_segmentation.domain import builtins
from svod_segmentation.domain.fields import (
    ATTRIBUTE_PREFIX,
    CONSENT_STATES,
    NO_DECLARATIONS,
    OPERATORS,
    ORDERING,
    RELATIVE_OPERATORS,
    FieldType,
    declared_attribute,
    field_type,
)
from svod_segmentation.domain.rules import (
    AGGREGATES,
    MAX_EXPANDED_NODES,
    MAX_RULE_DEPTH,
    MAX_RULE_NODES,
    MAX_TOTAL_EXPANDED_NODES,
    MAX_WINDOW_DAYS,
    Aggregate,
    AllOf,
    AnyOf,
    BehaviorCondition,
    Empty,
    FieldCondition,
    InSegment,
    Not,
    Rule,
    SegmentDefinition,
    child_path,
    children,
    expanded_sizes,
    rule_size,
    walk,
)

SEGMENT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
EVENT_TYPES = (
    "order_placed",
    "order_returned",
    "cart_updated",
    "cart_abandoned",
    "page_viewed",
    "product_viewed",
    "campaign_delivered",
    "campaign_opened",
    "campaign_clicked",
    "campaign_unsubscribed",
    "support_ticket_opened",
    "support_ticket_resolved",
    "loyalty_accrued",
    "loyalty_redeemed",
    "survey_answered",
    "session_started",
    "contact_failed",
)
COMPARISONS = ("eq", "ne", "lt", "le", "gt", "ge")
FILTER_KEYS = ("category", "source", "channel", "discounted")
PROPERTY_PREFIX = "property."
SOURCE_CHANNELS = ("pos", "web", "app", "call_center", "form", "campaign", "back_office")
GENDERS = ("female", "male")


def _number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def parse_time(value: str) -> dt.datetime | None:
    """An ISO 8601 date or date-time; naive values are UTC."""
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _days(value: str) -> int | None:
    return int(value) if re.fullmatch(r"[0-9]{1,5}", value) else None


def _check_values(  # noqa: C901, PLR0911, PLR0912
    cond: FieldCondition, ftype: FieldType, path: str, kind: AttributeType | None = None
) -> list[FieldViolation]:
    """``kind``: the declared type of a custom attribute (its values are read as that type:
    "38,5" is the number 38.5, "да" is true, "01.06.2020" a date)."""
    op, values, where = cond.operator, cond.values, f"{path}.field.values"
    if op == "is_set":
        if len(values) > 1 or (values and values[0] not in ("true", "false")):
            return [FieldViolation(where, "is_set takes no value, or 'true' or 'false'")]
        return []
    if op == "between":
        if len(values) != 2:
            return [FieldViolation(where, "between takes exactly 2 values (low, high)")]
    elif op == "in" or (op == "contains" and ftype is FieldType.TEXT_LIST):
        if not values:
            return [FieldViolation(where, f"{op} takes at least one value")]
    elif len(values) != 1:
        return [FieldViolation(where, f"{op} takes exactly 1 value")]
    if op in RELATIVE_OPERATORS:
        days = _days(values[0])
        if days is None or not 1 <= days <= MAX_WINDOW_DAYS:
            return [
                FieldViolation(
                    f"{where}[0]", f"{op} takes a number of days from 1 to {MAX_WINDOW_DAYS}"
                )
            ]
        return []
    if kind is not None and kind is not AttributeType.STRING:
        return _check_typed_values(cond, kind, where)
    errors: list[FieldViolation] = []
    numeric = ftype in (FieldType.NUMBER, FieldType.INTEGER) or (
        cond.field.startswith(ATTRIBUTE_PREFIX) and op in (*ORDERING, "between")
    )
    for index, value in enumerate(values):
        at = f"{where}[{index}]"
        if numeric:
            number = _number(value)
            if number is None:
                errors.append(
                    FieldViolation(
                        at, f"{cond.field} is compared as a number; {value!r} is not one"
                    )
                )
            elif ftype is FieldType.INTEGER and number != int(number):
                errors.append(FieldViolation(at, f"{cond.field} is a whole number"))
        elif ftype in (FieldType.TIMESTAMP, FieldType.DATE):
            if parse_time(value) is None:
                errors.append(
                    FieldViolation(at, f"{cond.field} is a {ftype}; {value!r} is not an ISO date")
                )
        elif cond.field.startswith("consents.") and value not in CONSENT_STATES:
            errors.append(FieldViolation(at, f"one of {', '.join(CONSENT_STATES)}"))
        elif cond.field == "gender" and value not in GENDERS:
            errors.append(FieldViolation(at, f"one of {', '.join(GENDERS)}"))
    if not errors and op == "between":
        low, high = values
        if numeric and float(low) > float(high):
            errors.append(FieldViolation(where, "low is greater than high"))
        elif not numeric and (parse_time(low) or 0) > (parse_time(high) or 0):  # type: ignore[operator]
            errors.append(FieldViolation(where, "low is later than high"))
    return errors


# Text a rule may hold: a value compared with, a filter, a label, an operator's name.
MAX_RULE_TEXT = 1000
MAX_VALUES = 1000
MAX_FILTERS = 20
MAX_LABELS = 20
MAX_DISPLAY_NAME = 200
MAX_DESCRIPTION = 2000
MAX_PARAMETERS = 20
# A filter's or parameter's name: it is echoed (cut to this length) inside violation paths.
MAX_NAME = 64


def _text_errors(values: dict[str, str], path: str) -> list[FieldViolation]:
    """Bounded texts without NUL (PostgreSQL cannot store it), named ``path.<key>``."""
    collector = ViolationCollector()
    for key, value in values.items():
        where = f"{path}{key}" if key.startswith("[") else f"{path}.{key}"
        limit = MAX_NAME if key.endswith("] name") else MAX_RULE_TEXT
        bounds.check_text(value, where, limit, collector)
    return collector.violations


def _node_text_errors(node: Rule, path: str) -> list[FieldViolation]:
    if isinstance(node, FieldCondition):
        where = f"{path}.field"
        if len(node.values) > MAX_VALUES:
            return [FieldViolation(f"{where}.values", f"at most {MAX_VALUES:,} values")]
        texts = {"field": node.field, "operator": node.operator}
        texts.update({f"values[{i}]": v for i, v in enumerate(node.values)})
        return _text_errors(texts, where)
    if isinstance(node, BehaviorCondition):
        where = f"{path}.behavior"
        if len(node.filters) > MAX_FILTERS:
            return [FieldViolation(f"{where}.filters", f"at most {MAX_FILTERS} filters")]
        texts = {
            "event_type": node.event_type,
            "aggregate": node.aggregate,
            "comparison": node.comparison,
            "measure": node.measure,
        }
        texts.update({f"filters[{k[:MAX_NAME]}]": v for k, v in node.filters})
        texts.update({f"filters[{k[:MAX_NAME]}] name": k for k, _ in node.filters})
        return _text_errors(texts, where)
    if isinstance(node, InSegment):
        where = f"{path}.in_segment"
        if len(node.labels) > MAX_LABELS:
            return [FieldViolation(f"{where}.labels", f"at most {MAX_LABELS} labels")]
        texts = {"segment_id": node.segment_id}
        texts.update({f"labels[{i}]": v for i, v in enumerate(node.labels)})
        return _text_errors(texts, where)
    return []


def check_descriptions(display_name: str, description: str, path: str = "segment") -> None:
    """A segment's display name and description: bounded text."""
    errors = ViolationCollector()
    bounds.check_text(display_name, f"{path}.display_name", MAX_DISPLAY_NAME, errors)
    bounds.check_text(description, f"{path}.description", MAX_DESCRIPTION, errors)
    errors.raise_if_any()


def _check_typed_values(
    cond: FieldCondition, kind: AttributeType, where: str
) -> list[FieldViolation]:
    errors: list[FieldViolation] = []
    canonical = []
    for index, value in enumerate(cond.values):
        typed = normalize_attribute(kind, value)
        if typed is None:
            errors.append(
                FieldViolation(
                    f"{where}[{index}]",
                    f"{cond.field} is declared {kind}: must be {ATTRIBUTE_EXPECTED[kind]}, "
                    f"not {value!r}",
                )
            )
        canonical.append(typed)
    if not errors and cond.operator == "between":
        low, high = canonical
        ordered = (
            Decimal(low) <= Decimal(high)  # type: ignore[arg-type]
            if kind in (AttributeType.NUMBER, AttributeType.INTEGER)
            else low <= high  # type: ignore[operator]  # ISO dates sort as text
        )
        if not ordered:
            errors.append(FieldViolation(where, "low is greater than high"))
    return errors


def _check_field(
    cond: FieldCondition, path: str, declared: Mapping[str, AttributeType] = NO_DECLARATIONS
) -> list[FieldViolation]:
    ftype = field_type(cond.field, declared)
    if ftype is None:
        return [FieldViolation(f"{path}.field.field", f"unknown field {cond.field!r}")]
    kind = declared_attribute(cond.field, declared)
    allowed = OPERATORS[ftype]
    if cond.field.startswith(ATTRIBUTE_PREFIX) and kind in (None, AttributeType.STRING):
        # Text attributes compare as numbers under ordering operators (when they are numbers).
        allowed = (*allowed, *ORDERING, "between")
    if cond.operator not in allowed:
        return [
            FieldViolation(
                f"{path}.field.operator",
                f"operator {cond.operator!r} does not apply to {cond.field} ({ftype}); "
                f"use one of {', '.join(allowed)}",
            )
        ]
    return _check_values(cond, ftype, path, kind)


def _check_behavior(cond: BehaviorCondition, path: str) -> list[FieldViolation]:  # noqa: C901
    base = f"{path}.behavior"
    errors: list[FieldViolation] = []
    if cond.event_type not in EVENT_TYPES:
        errors.append(
            FieldViolation(f"{base}.event_type", f"unknown event type {cond.event_type!r}")
        )
    if cond.aggregate not in AGGREGATES:
        errors.append(FieldViolation(f"{base}.aggregate", "'count' or 'sum'"))
    if cond.measure and (
        cond.aggregate != Aggregate.SUM or cond.measure not in ("amount", "discount")
    ):
        errors.append(
            FieldViolation(f"{base}.measure", "only with sum: 'amount' (default) or 'discount'")
        )
    if cond.comparison not in COMPARISONS:
        errors.append(FieldViolation(f"{base}.comparison", f"one of {', '.join(COMPARISONS)}"))
    if not math.isfinite(cond.threshold) or cond.threshold < 0:
        errors.append(FieldViolation(f"{base}.threshold", "a finite number, not negative"))
    elif cond.aggregate == Aggregate.COUNT and cond.threshold != int(cond.threshold):
        errors.append(FieldViolation(f"{base}.threshold", "a count is a whole number"))
    if cond.window_days <= 0:
        errors.append(
            FieldViolation(f"{base}.window_days", "the window must be positive (days, at least 1)")
        )
    elif cond.window_days > MAX_WINDOW_DAYS:
        errors.append(FieldViolation(f"{base}.window_days", f"at most {MAX_WINDOW_DAYS} days"))
    for key, value in cond.filters:
        where = f"{base}.filters[{key}]"
        if key.startswith(PROPERTY_PREFIX) and len(key) > len(PROPERTY_PREFIX):
            continue
        if key not in FILTER_KEYS:
            errors.append(
                FieldViolation(
                    where, f"unknown filter; one of {', '.join(FILTER_KEYS)}, property.<name>"
                )
            )
        elif key == "discounted" and value not in ("true", "false"):
            errors.append(FieldViolation(where, "'true' or 'false'"))
        elif key == "channel" and value not in SOURCE_CHANNELS:
            errors.append(FieldViolation(where, f"one of {', '.join(SOURCE_CHANNELS)}"))
    return errors


def _check_reference(
    ref: InSegment, path: str, segments: Mapping[str, SegmentDefinition]
) -> list[FieldViolation]:
    where = f"{path}.in_segment"
    target = segments.get(ref.segment_id)
    if target is None:
        return [FieldViolation(f"{where}.segment_id", f"no segment {ref.segment_id!r}")]
    if ref.labels:
        if not target.builtin:
            return [FieldViolation(f"{where}.labels", "labels apply to built-in segments only")]
        known = builtins.LABELS[target.builtin]
        for index, label in enumerate(ref.labels):
            if label not in known:
                return [
                    FieldViolation(
                        f"{where}.labels[{index}]",
                        f"{target.builtin} has no class {label!r}; one of {', '.join(known)}",
                    )
                ]
    return []


def _depth_errors(node: Rule, path: str, depth: int) -> list[FieldViolation]:
    if depth > MAX_RULE_DEPTH:
        return [FieldViolation(path, f"the rule tree is deeper than {MAX_RULE_DEPTH} levels")]
    out: list[FieldViolation] = []
    for index, child in enumerate(children(node)):
        out.extend(_depth_errors(child, child_path(path, node, index), depth + 1))
    return out


def rule_violations(
    rule: Rule,
    path: str,
    segments: Mapping[str, SegmentDefinition],
    declared: Mapping[str, AttributeType] = NO_DECLARATIONS,
) -> list[FieldViolation]:
    """Everything wrong with a rule tree; ``segments`` are the ones it may refer to,
    ``declared`` the custom attributes' types."""
    depth = _depth_errors(rule, path, 1)
    if depth:
        return depth[:1]
    nodes = walk(rule, path)
    if len(nodes) > MAX_RULE_NODES:
        return [FieldViolation(path, f"the rule tree has more than {MAX_RULE_NODES} nodes")]
    errors: list[FieldViolation] = []
    for located in nodes:
        errors.extend(_node_text_errors(located.node, located.path))
    if errors:
        return errors
    for located in nodes:
        node, where = located.node, located.path
        if isinstance(node, Empty):
            errors.append(
                FieldViolation(
                    where,
                    "empty node: set one of all, any, not, field, "
                    "behavior, in_segment_id, in_segment",
                )
            )
        elif isinstance(node, AllOf | AnyOf) and not node.nodes:
            kind = "all" if isinstance(node, AllOf) else "any"
            errors.append(FieldViolation(f"{where}.{kind}.nodes", "at least one node"))
        elif isinstance(node, Not) and node.node is None:
            errors.append(FieldViolation(f"{where}.not", "a node to negate"))
        elif isinstance(node, FieldCondition):
            errors.extend(_check_field(node, where, declared))
        elif isinstance(node, BehaviorCondition):
            errors.extend(_check_behavior(node, where))
        elif isinstance(node, InSegment):
            errors.extend(_check_reference(node, where, segments))
    return errors


def cycle_path(segment_id: str, segments: Mapping[str, SegmentDefinition]) -> list[str] | None:
    """A chain of references from ``segment_id`` back to itself, if there is one."""

    def visit(current: str, trail: list[str], seen: set[str]) -> list[str] | None:
        definition = segments.get(current)
        if definition is None:
            return None
        for ref in sorted(definition.references()):
            if ref == segment_id:
                return [*trail, ref]
            if ref not in seen:
                seen.add(ref)
                found = visit(ref, [*trail, ref], seen)
                if found:
                    return found
        return None

    return visit(segment_id, [segment_id], {segment_id})


def validate_definition(
    definition: SegmentDefinition,
    segments: Mapping[str, SegmentDefinition],
    path: str = "segment",
    declared: Mapping[str, AttributeType] = NO_DECLARATIONS,
) -> None:
    """Raises InvalidArgument naming every offending node; ``segments`` are the stored ones."""
    errors: list[FieldViolation] = []
    if not SEGMENT_ID.match(definition.segment_id):
        errors.append(
            FieldViolation(
                f"{path}.segment_id",
                "1-63 characters of [a-z0-9_-], starting with a letter or digit",
            )
        )
    parameters = definition.parameters
    if len(parameters) > MAX_PARAMETERS:
        errors.append(
            FieldViolation(f"{path}.builtin_parameters", f"at most {MAX_PARAMETERS} parameters")
        )
    else:
        errors.extend(
            _text_errors(
                {f"[{k[:MAX_NAME]}]": v for k, v in parameters.items()}
                | {f"[{k[:MAX_NAME]}] name": k for k in parameters},
                f"{path}.builtin_parameters",
            )
        )
    if errors:
        raise InvalidArgument(errors)
    if definition.builtin:
        if definition.rule is not None:
            errors.append(FieldViolation(f"{path}.rule", "a built-in segment has no rule"))
        errors.extend(builtins.validate_builtin(definition.builtin, definition.parameters, path))
        for name in ("population", "seed"):
            other = definition.parameters.get(name, "")
            if other and segments.get(other) is None:
                errors.append(
                    FieldViolation(f"{path}.builtin_parameters[{name}]", f"no segment {other!r}")
                )
    elif definition.rule is None:
        errors.append(FieldViolation(f"{path}.rule", "required (or set builtin)"))
    else:
        errors.extend(rule_violations(definition.rule, f"{path}.rule", segments, declared))
    graph = {**segments, definition.segment_id: definition}
    if not errors:
        cycle = cycle_path(definition.segment_id, graph)
        if cycle:
            errors.append(
                FieldViolation(
                    _reference_path(definition, cycle[1], path),
                    "cycle between segments: " + " -> ".join(cycle),
                )
            )
        else:
            errors.extend(_expansion_errors(definition, graph, path))
    if errors:
        raise InvalidArgument(errors)
    _check_total(graph)


def _expansion_errors(
    definition: SegmentDefinition, graph: Mapping[str, SegmentDefinition], path: str
) -> list[FieldViolation]:
    """The segment, and every segment that refers to it, must stay within MAX_EXPANDED_NODES
    once references are expanded (the compiled SQL inlines them)."""
    where = f"{path}.builtin_parameters[population]" if definition.builtin else f"{path}.rule"
    sizes = expanded_sizes(graph)
    own = sizes[definition.segment_id]
    if own > MAX_EXPANDED_NODES:
        return [
            FieldViolation(
                where,
                f"with the segments it refers to expanded, this rule has {own:,} nodes; at most "
                f"{MAX_EXPANDED_NODES:,} (refer to fewer or smaller segments)",
            )
        ]
    for other_id in sorted(graph):
        if other_id != definition.segment_id and sizes[other_id] > MAX_EXPANDED_NODES:
            return [
                FieldViolation(
                    where,
                    f"segment {other_id!r} refers to this one and would have "
                    f"{sizes[other_id]:,} nodes with references expanded; at most "
                    f"{MAX_EXPANDED_NODES:,}",
                )
            ]
    return []


def _check_total(graph: Mapping[str, SegmentDefinition]) -> None:
    total = sum(expanded_sizes(graph).values())
    if total > MAX_TOTAL_EXPANDED_NODES:
        raise FailedPrecondition(
            f"all segments together would have {total:,} rule nodes with references expanded; "
            f"at most {MAX_TOTAL_EXPANDED_NODES:,} (every profile change evaluates them all): "
            "delete or simplify segments first"
        )


def _reference_path(definition: SegmentDefinition, target: str, path: str) -> str:
    if definition.rule is not None:
        for located in walk(definition.rule, f"{path}.rule"):
            if isinstance(located.node, InSegment) and located.node.segment_id == target:
                return f"{located.path}.in_segment.segment_id"
    return f"{path}.builtin_parameters[population]"


def validate_preview(
    rule: Rule | None,
    segments: Mapping[str, SegmentDefinition],
    declared: Mapping[str, AttributeType] = NO_DECLARATIONS,
) -> None:
    if rule is None:
        raise InvalidArgument([FieldViolation("rule", "required")])
    errors = rule_violations(rule, "rule", segments, declared)
    if not errors:
        sizes = expanded_sizes(segments)
        size = rule_size(rule, lambda segment_id: sizes.get(segment_id, 1))
        if size > MAX_EXPANDED_NODES:
            errors.append(
                FieldViolation(
                    "rule",
                    f"with the segments it refers to expanded, this rule has {size:,} nodes; "
                    f"at most {MAX_EXPANDED_NODES:,}",
                )
            )
    if errors:
        raise InvalidArgument(errors)
