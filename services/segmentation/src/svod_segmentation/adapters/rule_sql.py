"""Compiles segment definitions to SQL over the read model (tables ``customers`` as ``c`` and
``events`` aggregated per customer as ``a``).

One compiler serves both full recomputes (every customer) and incremental evaluation (a few
customers): behaviour conditions become columns of one per-customer aggregate over the events
table, so a full recompute reads the events once per statement. Every user value is a bind
parameter. Besides the predicate, each segment yields "due" expressions: the times at which
its result may flip with nothing but the clock moving (an event leaving a window, a relative
date crossing its bound); the earliest future one is when the customer is looked at again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from svod_runtime.custom_attributes import AttributeType
from svod_runtime.custom_attributes import normalize as normalize_attribute
from svod_segmentation.domain import builtins
from svod_segmentation.domain.builtins import BehaviorRatio, Builtin, Condition
from svod_segmentation.domain.fields import (
    ATTRIBUTE_PREFIX,
    NO_DECLARATIONS,
    ORDERING,
    PREFERRED_CHANNEL,
    RELATIVE_OPERATORS,
    RESPONSIVENESS_CHANNELS,
    RESPONSIVENESS_PREFIX,
    FieldType,
    declared_attribute,
    field_type,
)
from svod_segmentation.domain.model import Segment
from svod_segmentation.domain.rules import (
    Aggregate,
    AllOf,
    AnyOf,
    BehaviorCondition,
    Empty,
    FieldCondition,
    InSegment,
    Not,
    Rule,
)
from svod_segmentation.domain.validation import parse_time

COLUMNS: dict[str, str] = {
    "first_name": "c.first_name",
    "last_name": "c.last_name",
    "middle_name": "c.middle_name",
    "gender": "c.gender",
    "city": "c.city",
    "region": "c.region",
    "country_code": "c.country_code",
    "postal_code": "c.postal_code",
    "currency": "c.currency",
    "birth_date": "c.birth_date",
    "create_time": "c.profile_created_at",
    "update_time": "c.profile_updated_at",
    "sources": "c.sources",
    "identifier_types": "c.identifier_types",
    "metrics.order_count": "c.order_count",
    "metrics.total_spent": "c.total_spent",
    "metrics.average_order_value": "c.average_order_value",
    "metrics.return_count": "c.return_count",
    "metrics.total_returned": "c.total_returned",
    "metrics.first_order_time": "c.first_order_at",
    "metrics.last_order_time": "c.last_order_at",
    "metrics.last_contact_time": "c.last_contact_at",
    "metrics.channels": "c.channels",
    "metrics.items_bought": "c.items_bought",
    "metrics.abandoned_cart_count": "c.abandoned_cart_count",
    "metrics.campaign_delivered_count": "c.campaign_delivered_count",
    "metrics.campaign_opened_count": "c.campaign_opened_count",
    "metrics.campaign_clicked_count": "c.campaign_clicked_count",
    "metrics.session_count": "c.session_count",
    "metrics.support_ticket_count": "c.support_ticket_count",
    "metrics.last_support_ticket_time": "c.last_support_ticket_at",
    "metrics.loyalty_points_balance": "c.loyalty_points_balance",
}
SQL_OPS = {"eq": "=", "ne": "<>", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
NUMERIC_TEXT = r"^\s*-?[0-9]+(\.[0-9]+)?\s*$"
AGE = "date_part('year', age(CAST(:now AS date), c.birth_date))"


@dataclass(frozen=True)
class Atom:
    """One aggregate over a customer's events in a window."""

    event_type: str
    window_days: int
    aggregate: str  # count / sum
    measure: str  # amount / discount ("" for count)
    filters: tuple[tuple[str, str], ...]


@dataclass
class SqlBuilder:
    """Bind parameters and event aggregates shared by everything compiled into one statement."""

    params: dict[str, Any] = field(default_factory=dict)
    atoms: dict[Atom, str] = field(default_factory=dict)
    atom_filters: dict[Atom, str] = field(default_factory=dict)
    # Set when a rule tests responsiveness.*: the per-customer join ``r`` is added.
    responsiveness: bool = False

    def bind(self, value: Any, cast: str = "") -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f"CAST(:{name} AS {cast})" if cast else f":{name}"

    def atom(self, cond: BehaviorCondition) -> Atom:
        measure = (cond.measure or "amount") if cond.aggregate == Aggregate.SUM else ""
        key = Atom(cond.event_type, cond.window_days, cond.aggregate, measure, cond.filters)
        if key not in self.atoms:
            alias = f"x{len(self.atoms)}"
            self.atoms[key] = alias
            self.atom_filters[key] = self._event_filter(key)
        return key

    def _event_filter(self, atom: Atom) -> str:
        parts = [
            f"e.event_type = {self.bind(atom.event_type)}",
            f"e.occurred_at > :now - make_interval(days => {int(atom.window_days)})",
        ]
        for key, value in atom.filters:
            if key == "category":
                parts.append(f"{self.bind(value)} = ANY(e.categories)")
            elif key == "source":
                parts.append(f"e.source = {self.bind(value)}")
            elif key == "channel":
                parts.append(f"e.channel = {self.bind(value)}")
            elif key == "discounted":
                op = ">" if value == "true" else "<="
                parts.append(f"coalesce(e.discount, 0) {op} 0")
            elif key.startswith("property."):
                name = key.removeprefix("property.")
                parts.append(f"e.properties ->> {self.bind(name)} = {self.bind(value)}")
        return " AND ".join(parts)

    def value(self, atom: Atom) -> str:
        return f"coalesce(a.{self.atoms[atom]}, 0)"

    def aggregate_join(self, customer_filter: str = "") -> str:
        """``LEFT JOIN (...) a`` with one column per atom (and its oldest event), and the
        responsiveness join ``r`` when a rule needs it; or ''."""
        joins = responsiveness_join(customer_filter) if self.responsiveness else ""
        if not self.atoms:
            return joins
        columns = []
        for atom, alias in self.atoms.items():
            where = self.atom_filters[atom]
            if atom.aggregate == Aggregate.COUNT:
                columns.append(f"count(*) FILTER (WHERE {where}) AS {alias}")
            else:
                columns.append(f"sum(e.{atom.measure}) FILTER (WHERE {where}) AS {alias}")
            columns.append(f"min(e.occurred_at) FILTER (WHERE {where}) AS {alias}_first")
        widest = max(atom.window_days for atom in self.atoms)
        types = sorted({atom.event_type for atom in self.atoms})
        type_list = self.bind(types, "text[]")
        restrict = f" AND {customer_filter}" if customer_filter else ""
        return (
            f"LEFT JOIN (SELECT e.customer_id, {', '.join(columns)} FROM events e "
            f"WHERE e.occurred_at > :now - make_interval(days => {widest}) "
            f"AND e.event_type = ANY({type_list}){restrict} GROUP BY e.customer_id) a "
            "ON a.customer_id = c.customer_id"
        ) + (f" {joins}" if joins else "")


@dataclass(frozen=True)
class Compiled:
    predicate: str
    label: str | None
    due: tuple[str, ...]


class RuleCompiler:
    """Compiles the stored segments; in_segment references are inlined (no cycles)."""

    def __init__(
        self,
        segments: Mapping[str, Segment],
        builder: SqlBuilder,
        declared: Mapping[str, AttributeType] = NO_DECLARATIONS,
    ) -> None:
        self.segments = segments
        self.b = builder
        # Declared custom attributes' types (SVOD_CUSTOM_ATTRIBUTES).
        self.declared = declared
        self._cache: dict[str, Compiled] = {}

    # -- segments ---------------------------------------------------------------------------
    def segment(self, segment_id: str) -> Compiled:
        if segment_id not in self._cache:
            seg = self.segments[segment_id]
            d = seg.definition
            if d.builtin:
                self._cache[segment_id] = self._builtin(seg)
            else:
                due: list[str] = []
                pred = self.rule(d.rule or AllOf(()), due)
                self._cache[segment_id] = Compiled(pred, None, tuple(due))
        return self._cache[segment_id]

    def population(self, seg: Segment, due: list[str]) -> str:
        population = seg.definition.parameters.get("population", "")
        if not population:
            return "TRUE"
        compiled = self.segment(population)
        due.extend(compiled.due)
        return f"({compiled.predicate})"

    def _builtin(self, seg: Segment) -> Compiled:
        kind = seg.definition.builtin
        due: list[str] = []
        population = self.population(seg, due)
        if kind in builtins.MODEL_BUILTINS:
            return self._lookalike(seg, population, due)
        if kind == Builtin.RFM:
            label = self._rfm_label(seg, due)
        elif kind == Builtin.ABC:
            label = self._abc_label(seg)
        else:
            classes = (
                builtins.temperature_classes(seg.definition.parameters)
                if kind == Builtin.TEMPERATURE
                else builtins.behavior_classes(seg.definition.parameters)
            )
            label = self._class_case(classes, due)
        label = f"(CASE WHEN {population} THEN {label} END)"
        selected = self.b.bind(
            list(builtins.selected_classes(kind, seg.definition.parameters)), "text[]"
        )
        return Compiled(f"coalesce({label} = ANY({selected}), FALSE)", label, tuple(due))

    def _lookalike(self, seg: Segment, population: str, due: list[str]) -> Compiled:
        """The customers the model chose (lookalike_scores), while not in the seed."""
        seed = self.segment(seg.definition.parameters["seed"])
        due.extend(seed.due)
        chosen = (
            "EXISTS (SELECT 1 FROM lookalike_scores ls WHERE ls.segment_id = "
            f"{self.b.bind(seg.segment_id)} AND ls.customer_id = c.customer_id)"
        )
        predicate = f"({chosen} AND {population} AND NOT coalesce({seed.predicate}, FALSE))"
        return Compiled(predicate, None, tuple(due))

    def _class_case(self, classes: builtins.ClassRules, due: list[str]) -> str:
        whens = []
        for label, conditions in classes:
            parts = [self._condition(cond, due) for cond in conditions] or ["TRUE"]
            whens.append(f"WHEN {' AND '.join(parts)} THEN {self.b.bind(label)}")
        return f"CASE {' '.join(whens)} END"

    def _condition(self, cond: Condition, due: list[str]) -> str:
        if isinstance(cond, BehaviorRatio):
            num = self.b.value(self._atom(cond.numerator, due))
            den = self.b.value(self._atom(cond.denominator, due))
            op = SQL_OPS[cond.comparison]
            ratio = f"(CAST({num} AS numeric) / NULLIF({den}, 0))"
            return f"coalesce({ratio} {op} {self.b.bind(Decimal(str(cond.threshold)))}, FALSE)"
        return self.rule(cond, due)

    def _rfm_label(self, seg: Segment, due: list[str]) -> str:
        """The class against the stored cut-offs (see builtins.RfmCutoffs; the same scores in
        SQL). Absolute recency cut-offs do not move with the clock: nothing falls due."""
        cutoffs = builtins.RfmCutoffs.from_state(seg.state)
        if cutoffs is None:
            return "CAST(NULL AS text)"
        r = self._points("c.last_order_at >= {}", cutoffs.recency, "timestamptz")
        f = self._points("c.order_count > {}", cutoffs.frequency)
        m = self._points("c.total_spent > {}", cutoffs.monetary)
        fm = f"(({f} + {m} + 1) / 2)"
        whens = []
        for label, (r_lo, r_hi), (fm_lo, fm_hi), (f_lo, f_hi) in builtins.RFM_MAP:
            whens.append(
                f"WHEN {r} BETWEEN {r_lo} AND {r_hi} AND {fm} BETWEEN {fm_lo} AND {fm_hi} "
                f"AND {f} BETWEEN {f_lo} AND {f_hi} THEN {self.b.bind(label)}"
            )
        return (
            "(CASE WHEN c.order_count <= 0 OR c.last_order_at IS NULL THEN NULL "
            f"{' '.join(whens)} END)"
        )

    def _points(self, test: str, cuts: tuple[Any, ...], cast: str = "") -> str:
        """1 + the number of cut-offs passed (a 1-5 score from four quintile cut-offs)."""
        terms = [f"CAST({test.format(self.b.bind(cut, cast))} AS int)" for cut in cuts]
        return "(1 + " + " + ".join(terms) + ")" if terms else "1"

    def _abc_label(self, seg: Segment) -> str:
        state = seg.state
        if state.get("a_min") is None:
            return "CAST(NULL AS text)"
        a_min = self.b.bind(Decimal(str(state["a_min"])))
        b_min = self.b.bind(Decimal(str(state.get("b_min", state["a_min"]))))
        return (
            f"(CASE WHEN c.total_spent <= 0 THEN NULL WHEN c.total_spent >= {a_min} THEN 'A' "
            f"WHEN c.total_spent >= {b_min} THEN 'B' ELSE 'C' END)"
        )

    # -- rule trees ---------------------------------------------------------------------------
    def rule(self, node: Rule, due: list[str]) -> str:  # noqa: PLR0911
        if isinstance(node, AllOf):
            if not node.nodes:
                return "TRUE"
            return "(" + " AND ".join(self.rule(n, due) for n in node.nodes) + ")"
        if isinstance(node, AnyOf):
            if not node.nodes:
                return "FALSE"
            return "(" + " OR ".join(self.rule(n, due) for n in node.nodes) + ")"
        if isinstance(node, Not):
            inner = "TRUE" if node.node is None else self.rule(node.node, due)
            return f"(NOT coalesce({inner}, FALSE))"
        if isinstance(node, FieldCondition):
            return f"coalesce({self._field(node, due)}, FALSE)"
        if isinstance(node, BehaviorCondition):
            atom = self._atom(node, due)
            op = SQL_OPS[node.comparison]
            return f"({self.b.value(atom)} {op} {self.b.bind(Decimal(str(node.threshold)))})"
        if isinstance(node, InSegment):
            compiled = self.segment(node.segment_id)
            due.extend(compiled.due)
            if node.labels and compiled.label is not None:
                labels = self.b.bind(list(node.labels), "text[]")
                return f"coalesce({compiled.label} = ANY({labels}), FALSE)"
            return f"({compiled.predicate})"
        if isinstance(node, Empty):
            return "FALSE"
        raise TypeError(f"unknown rule node {node!r}")

    def _atom(self, cond: BehaviorCondition, due: list[str]) -> Atom:
        atom = self.b.atom(cond)
        alias = self.b.atoms[atom]
        due.append(f"a.{alias}_first + make_interval(days => {int(atom.window_days)})")
        return atom

    def _field(self, cond: FieldCondition, due: list[str]) -> str:  # noqa: PLR0911
        ftype = field_type(cond.field, self.declared)
        kind = declared_attribute(cond.field, self.declared)
        if kind is not None and kind is not AttributeType.STRING and ftype is not None:
            return self._typed_attribute(cond, kind, ftype, due)
        op, values = cond.operator, cond.values
        expr, numeric = self._field_expr(cond, ftype)
        if op == "is_set":
            if ftype is FieldType.TEXT_LIST:
                test = f"(cardinality({expr}) > 0)"
            elif ftype is FieldType.TEXT:
                test = f"({expr} IS NOT NULL AND {expr} <> '')"
            else:
                test = f"({expr} IS NOT NULL)"
            return test if not values or values[0] == "true" else f"(NOT {test})"
        if op in ("within_last", "before_last"):
            days = int(values[0])
            bound = f":now - make_interval(days => {days})"
            due.append(f"{expr} + make_interval(days => {days})")
            return f"({expr} >= {bound})" if op == "within_last" else f"({expr} < {bound})"
        if ftype is FieldType.TEXT_LIST:  # contains
            return f"({expr} && {self.b.bind(list(values), 'text[]')})"
        if op == "contains":
            return f"({expr} ILIKE {self.b.bind('%' + _like_escape(values[0]) + '%')})"
        if op == "starts_with":
            return f"({expr} LIKE {self.b.bind(_like_escape(values[0]) + '%')})"
        cast = self._cast(ftype, numeric)
        if op == "in":
            array = [self._value(v, ftype, numeric) for v in values]
            return f"({expr} = ANY({self.b.bind(array, cast + '[]')}))"
        if op == "between":
            low, high = (self.b.bind(self._value(v, ftype, numeric), cast) for v in values)
            return f"({expr} BETWEEN {low} AND {high})"
        value = self.b.bind(self._value(values[0], ftype, numeric), cast)
        if op == "ne":
            return f"({expr} IS DISTINCT FROM {value})"
        return f"({expr} {SQL_OPS[op]} {value})"

    def _typed_attribute(  # noqa: PLR0911
        self, cond: FieldCondition, kind: AttributeType, ftype: FieldType, due: list[str]
    ) -> str:
        """A condition on a declared custom attribute, compared by its type. Values are read
        as the profile stores them ("38,5" in a rule is the number 38.5); a stored value that
        is not of the type (kept from before the declaration) matches nothing."""
        raw = f"(c.attributes ->> {self.b.bind(cond.field.removeprefix(ATTRIBUTE_PREFIX))})"
        op = cond.operator
        typed = [normalize_attribute(kind, v) for v in cond.values]
        if op not in ("is_set", *RELATIVE_OPERATORS) and None in typed:
            return "FALSE"  # a stored rule whose value the declared type cannot read
        if op == "is_set":
            test = f"({raw} IS NOT NULL AND {raw} <> '')"
            return test if not cond.values or cond.values[0] == "true" else f"(NOT {test})"
        if kind is AttributeType.LIST:  # contains: any of the items
            items = f"string_to_array({raw}, ',')"
            wanted = self.b.bind([t for t in typed if t is not None], "text[]")
            return f"(ARRAY(SELECT btrim(x) FROM unnest({items}) AS x) && {wanted})"
        if kind is AttributeType.BOOL:
            expr = f"(CASE WHEN {raw} IN ('true', 'false') THEN CAST({raw} AS boolean) END)"
            value = self.b.bind(typed[0] == "true", "boolean")
            return f"({expr} IS DISTINCT FROM {value})" if op == "ne" else f"({expr} = {value})"
        if kind is AttributeType.DATE:
            expr = f"date_or_null({raw})"
            if op in RELATIVE_OPERATORS:
                return self._relative(expr, cond, due)
            values: list[Any] = [None if t is None else dt.date.fromisoformat(t) for t in typed]
            cast = "date"
        else:
            pattern = self.b.bind(NUMERIC_TEXT)
            expr = f"(CASE WHEN {raw} ~ {pattern} THEN CAST({raw} AS numeric) END)"
            values = [None if t is None else Decimal(t) for t in typed]
            cast = "numeric"
        if op == "in":
            return f"({expr} = ANY({self.b.bind(values, cast + '[]')}))"
        if op == "between":
            low, high = (self.b.bind(v, cast) for v in values)
            return f"({expr} BETWEEN {low} AND {high})"
        value = self.b.bind(values[0], cast)
        if op == "ne":
            return f"({expr} IS DISTINCT FROM {value})"
        return f"({expr} {SQL_OPS[op]} {value})"

    @staticmethod
    def _relative(expr: str, cond: FieldCondition, due: list[str]) -> str:
        """within_last / before_last over a date or time expression."""
        days = int(cond.values[0])
        bound = f":now - make_interval(days => {days})"
        due.append(f"{expr} + make_interval(days => {days})")
        return f"({expr} >= {bound})" if cond.operator == "within_last" else f"({expr} < {bound})"

    def _field_expr(self, cond: FieldCondition, ftype: FieldType | None) -> tuple[str, bool]:
        name = cond.field
        if name.startswith(ATTRIBUTE_PREFIX):
            raw = f"(c.attributes ->> {self.b.bind(name.removeprefix(ATTRIBUTE_PREFIX))})"
            if cond.operator in (*ORDERING, "between"):
                pattern = self.b.bind(NUMERIC_TEXT)
                return f"(CASE WHEN {raw} ~ {pattern} THEN CAST({raw} AS numeric) END)", True
            return raw, False
        if name.startswith("consents."):
            return f"(c.consents ->> {self.b.bind(name.removeprefix('consents.'))})", False
        if name == "age":
            return AGE, True
        if name.startswith(RESPONSIVENESS_PREFIX):
            self.b.responsiveness = True
            return responsiveness_column(name), ftype in (FieldType.NUMBER, FieldType.INTEGER)
        return COLUMNS[name], ftype in (FieldType.NUMBER, FieldType.INTEGER)

    @staticmethod
    def _cast(ftype: FieldType | None, numeric: bool) -> str:
        if numeric:
            return "numeric"
        if ftype is FieldType.TIMESTAMP:
            return "timestamptz"
        if ftype is FieldType.DATE:
            return "date"
        return "text"

    @staticmethod
    def _value(raw: str, ftype: FieldType | None, numeric: bool) -> Any:
        if numeric:
            return Decimal(raw.strip())
        if ftype is FieldType.TIMESTAMP:
            return parse_time(raw)
        if ftype is FieldType.DATE:
            parsed = parse_time(raw)
            return parsed.date() if parsed else None
        return raw


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def earliest_future(due: list[str] | tuple[str, ...]) -> str:
    """The earliest of the due times that is still ahead, or NULL."""
    if not due:
        return "CAST(NULL AS timestamptz)"
    unique = list(dict.fromkeys(due))
    return "LEAST(" + ", ".join(f"CASE WHEN {d} > :now THEN {d} END" for d in unique) + ")"


# -- channel responsiveness (domain/responsiveness.py defines the values) -----------------------
CAMPAIGN_EVENTS = "('campaign_delivered', 'campaign_opened', 'campaign_clicked')"
RESPONSES = "('campaign_opened', 'campaign_clicked')"


def responsiveness_columns() -> str:
    """Per channel: delivered, opened, clicked, last response, deliveries since it."""
    columns = []
    for ch in RESPONSIVENESS_CHANNELS:
        on = f"x.ch = '{ch}'"
        columns += [
            f"count(*) FILTER (WHERE x.t = 'campaign_delivered' AND {on}) AS {ch}_delivered",
            f"count(*) FILTER (WHERE x.t = 'campaign_opened' AND {on}) AS {ch}_opened",
            f"count(*) FILTER (WHERE x.t = 'campaign_clicked' AND {on}) AS {ch}_clicked",
            f"max(x.at) FILTER (WHERE x.t IN {RESPONSES} AND {on}) AS {ch}_last",
            f"count(*) FILTER (WHERE x.t = 'campaign_delivered' AND {on} AND x.after_last) "
            f"AS {ch}_ignored",
        ]
    return ", ".join(columns)


def responsiveness_source(customer_filter: str = "") -> str:
    """One row per customer with responsiveness_columns(), over the customer's campaign events
    (all time). ``after_last``: the event is later than the channel's last response."""
    restrict = f" AND {customer_filter}" if customer_filter else ""
    return (
        f"SELECT x.customer_id, {responsiveness_columns()} FROM ("
        "SELECT e.customer_id, e.event_type AS t, e.occurred_at AS at, "
        "coalesce(e.properties ->> 'contact_channel', '') AS ch, "
        "e.occurred_at > coalesce(max(e.occurred_at) FILTER "
        f"(WHERE e.event_type IN {RESPONSES}) OVER (PARTITION BY e.customer_id, "
        "coalesce(e.properties ->> 'contact_channel', '')), '-infinity') AS after_last "
        f"FROM events e WHERE e.event_type IN {CAMPAIGN_EVENTS}{restrict}"
        ") x GROUP BY x.customer_id"
    )


def responsiveness_join(customer_filter: str = "") -> str:
    return (
        f"LEFT JOIN ({responsiveness_source(customer_filter)}) r ON r.customer_id = c.customer_id"
    )


def _rate(ch: str) -> str:
    return (
        f"LEAST(1.0, CAST(GREATEST(coalesce(r.{ch}_opened, 0), coalesce(r.{ch}_clicked, 0)) "
        f"AS numeric) / NULLIF(r.{ch}_delivered, 0))"
    )


def responsiveness_column(name: str) -> str:
    """The SQL of a responsiveness.* field over the join ``r``."""
    if name == PREFERRED_CHANNEL:
        rows = ", ".join(
            f"('{ch}', coalesce({_rate(ch)}, 0), r.{ch}_last)" for ch in RESPONSIVENESS_CHANNELS
        )
        return (
            f"coalesce((SELECT v.ch FROM (VALUES {rows}) AS v(ch, rate, last) "
            "WHERE v.last IS NOT NULL ORDER BY v.rate DESC, v.last DESC LIMIT 1), '')"
        )
    ch, metric = name.removeprefix(RESPONSIVENESS_PREFIX).split(".", 1)
    if metric == "last_response_time":
        return f"r.{ch}_last"
    if metric == "response_rate":
        return f"coalesce({_rate(ch)}, 0)"
    if metric == "ignored_in_a_row":
        return f"coalesce(r.{ch}_ignored, 0)"
    return f"coalesce(r.{ch}_{metric}, 0)"
