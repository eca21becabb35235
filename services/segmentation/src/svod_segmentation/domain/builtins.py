"""Built-in segments: RFM, ABC, temperature and behaviour types, with their parameters.

RFM and ABC rank customers against the population (quintiles, Pareto shares), so they keep a
computed state (cut-offs) refreshed by every full recompute; between recomputes a changed
customer is classified against the stored cut-offs. Temperature and behaviour types look at
one customer only and are written as ordered lists of (class, rule): the first rule that
holds gives the class. See services/segmentation/README.md for the definitions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from svod_runtime.errors import FieldViolation
from svod_segmentation.domain.rules import (
    Aggregate,
    AllOf,
    AnyOf,
    BehaviorCondition,
    Not,
    Rule,
)


class Builtin(StrEnum):
    """The built-in segments (a segment definition's ``builtin``)."""

    RFM = "rfm"
    ABC = "abc"
    TEMPERATURE = "temperature"
    BEHAVIOR_TYPE = "behavior_type"
    LOOKALIKE = "lookalike"


BUILTINS = tuple(b.value for b in Builtin)


@dataclass(frozen=True)
class Parameter:
    default: float
    low: float
    high: float
    integer: bool = True


# Every built-in also takes "classes" (comma-separated labels to keep; default all) and
# "population" (a segment id: rank and classify only its members; default everyone).
PARAMETERS: dict[str, dict[str, Parameter]] = {
    Builtin.RFM: {},
    Builtin.ABC: {
        "a_share": Parameter(0.8, 0.01, 0.99, integer=False),
        "b_share": Parameter(0.15, 0.0, 0.99, integer=False),
    },
    Builtin.TEMPERATURE: {
        "hot_days": Parameter(90, 1, 3650),
        "hot_min_orders": Parameter(2, 1, 1000),
        "ready_days": Parameter(7, 1, 3650),
        "warm_days": Parameter(30, 1, 3650),
        "negative_days": Parameter(90, 1, 3650),
    },
    # "seed" (required, a segment id) is checked beside "population"; see domain/lookalike.py.
    Builtin.LOOKALIKE: {
        "size": Parameter(1000, 1, 1_000_000),
        "min_score": Parameter(0.0, 0.0, 1.0, integer=False),
    },
    Builtin.BEHAVIOR_TYPE: {
        "window_days": Parameter(365, 1, 3650),
        "discount_share": Parameter(0.6, 0.01, 1.0, integer=False),
        "discount_min_orders": Parameter(2, 1, 1000),
        "loyal_min_orders": Parameter(4, 1, 1000),
        "looking_min_views": Parameter(5, 1, 100000),
    },
}
COMMON_PARAMETERS = ("classes", "population")

RFM_CLASSES = (
    "champions",
    "loyal",
    "new_customers",
    "potential_loyalists",
    "promising",
    "cant_lose",
    "at_risk",
    "hibernating",
    "lost",
)
# (class, R range, FM range, F range), first match wins; FM = round-half-up((F + M) / 2).
RFM_MAP: tuple[tuple[str, tuple[int, int], tuple[int, int], tuple[int, int]], ...] = (
    ("champions", (4, 5), (4, 5), (1, 5)),
    ("loyal", (3, 5), (3, 5), (1, 5)),
    ("new_customers", (4, 5), (1, 5), (1, 1)),
    ("potential_loyalists", (4, 5), (1, 5), (1, 5)),
    ("promising", (3, 3), (1, 5), (1, 5)),
    ("cant_lose", (1, 2), (4, 5), (1, 5)),
    ("at_risk", (2, 2), (3, 5), (1, 5)),
    ("hibernating", (2, 2), (1, 5), (1, 5)),
    ("lost", (1, 1), (1, 5), (1, 5)),
)
ABC_CLASSES = ("A", "B", "C")
TEMPERATURE_CLASSES = ("hot", "warm", "cold")
BEHAVIOR_CLASSES = ("discount_driven", "loyal", "just_looking", "impulsive", "purposeful")
LABELS: dict[str, tuple[str, ...]] = {
    Builtin.RFM: RFM_CLASSES,
    Builtin.ABC: ABC_CLASSES,
    Builtin.TEMPERATURE: TEMPERATURE_CLASSES,
    Builtin.BEHAVIOR_TYPE: BEHAVIOR_CLASSES,
    Builtin.LOOKALIKE: (),
}
# Built-ins whose members are chosen by a model trained on another segment (no classes).
MODEL_BUILTINS = (Builtin.LOOKALIKE,)

ENGAGEMENT_EVENTS = (
    "campaign_opened",
    "campaign_clicked",
    "page_viewed",
    "product_viewed",
    "session_started",
    "cart_updated",
    "cart_abandoned",
    "survey_answered",
)
VIEW_EVENTS = ("page_viewed", "product_viewed", "session_started")


def fm_score(f: int, m: int) -> int:
    return (f + m + 1) // 2


def rfm_label(r: int, f: int, m: int) -> str:
    fm = fm_score(f, m)
    for label, (r_lo, r_hi), (fm_lo, fm_hi), (f_lo, f_hi) in RFM_MAP:
        if r_lo <= r <= r_hi and fm_lo <= fm <= fm_hi and f_lo <= f <= f_hi:
            return label
    return "lost"


def score_higher_better(value: float, cuts: list[float]) -> int:
    """1-5 from quintile cut-offs (20/40/60/80 %); ties share a score."""
    return 1 + sum(1 for cut in cuts if value > cut)


def score_lower_better(value: float, cuts: list[float]) -> int:
    return 1 + sum(1 for cut in cuts if value <= cut)


@dataclass(frozen=True)
class RfmCutoffs:
    """An RFM built-in's quintile cut-offs, as the last full recompute computed them.

    Recency cut-offs are absolute times (a last order at or after a cut-off earns a point), not
    ages: a customer's R score does not drift with the clock between recomputes, so a change
    evaluated later, a preview and a recompute classify an unchanged customer alike, also when
    the last order falls exactly on a cut-off. Frequency and monetary cut-offs are values (more
    than a cut-off earns a point). Each score is 1-5; ties share a score.
    """

    recency: tuple[dt.datetime, ...]
    frequency: tuple[Decimal, ...]
    monetary: tuple[Decimal, ...]

    @classmethod
    def from_state(cls, state: Mapping[str, object]) -> RfmCutoffs | None:
        """None before any customer with orders was ranked."""
        f, m = state.get("f"), state.get("m")
        if not f or not m:
            return None
        times = state.get("r_cutoff_times")
        if times:
            recency = tuple(dt.datetime.fromisoformat(str(t)) for t in times)  # type: ignore[attr-defined]
        else:
            # Kept before cut-offs were absolute: ages as of the recompute that computed them.
            computed = dt.datetime.fromisoformat(str(state["computed_time"]))
            recency = tuple(
                computed - dt.timedelta(seconds=float(s))
                for s in state["r"]  # type: ignore[attr-defined]
            )
        return cls(
            recency,
            tuple(Decimal(str(x)) for x in f),  # type: ignore[attr-defined]
            tuple(Decimal(str(x)) for x in m),  # type: ignore[attr-defined]
        )

    def scores(
        self, last_order_at: dt.datetime | None, order_count: int, total_spent: Decimal
    ) -> tuple[int, int, int] | None:
        """(R, F, M); None for a customer without orders (not ranked)."""
        if order_count <= 0 or last_order_at is None:
            return None
        return (
            1 + sum(1 for cut in self.recency if last_order_at >= cut),
            1 + sum(1 for cut in self.frequency if Decimal(order_count) > cut),
            1 + sum(1 for cut in self.monetary if total_spent > cut),
        )


def rfm_state(
    computed_at: dt.datetime,
    recency_seconds: Sequence[float],
    frequency: Sequence[float],
    monetary: Sequence[float],
    customers: int,
) -> dict[str, object]:
    """The stored state of an RFM built-in: recency quintiles (ages in seconds at
    ``computed_at``) become absolute cut-off times, shown also as ages in days."""
    times = [computed_at - dt.timedelta(seconds=float(s)) for s in recency_seconds]
    return {
        "r_cutoff_times": [t.isoformat() for t in times],
        "r_days": [round(float(s) / 86400, 2) for s in recency_seconds],
        "f": list(frequency),
        "m": list(monetary),
        "customers": customers,
    }


def abc_label(spent: float, a_min: float, b_min: float) -> str | None:
    if spent <= 0:
        return None
    if spent >= a_min:
        return "A"
    if spent >= b_min:
        return "B"
    return "C"


def resolved(builtin: str, parameters: dict[str, str]) -> dict[str, float]:
    """The built-in's numeric parameters with defaults filled in (assumes validated input)."""
    out: dict[str, float] = {}
    for name, spec in PARAMETERS[builtin].items():
        raw = parameters.get(name)
        out[name] = float(raw) if raw else spec.default
    return out


def selected_classes(builtin: str, parameters: dict[str, str]) -> tuple[str, ...]:
    raw = parameters.get("classes", "")
    chosen = [c.strip() for c in raw.split(",") if c.strip()]
    return tuple(chosen) if chosen else LABELS[builtin]


def validate_builtin(builtin: str, parameters: dict[str, str], path: str) -> list[FieldViolation]:  # noqa: C901
    """Violations of a built-in's name and parameters; ``path`` names the segment."""
    if builtin not in BUILTINS:
        return [
            FieldViolation(f"{path}.builtin", f"unknown built-in; one of {', '.join(BUILTINS)}")
        ]
    errors: list[FieldViolation] = []
    specs = PARAMETERS[builtin]
    for name, raw in sorted(parameters.items()):
        where = f"{path}.builtin_parameters[{name}]"
        if name == "classes":
            unknown = [
                c.strip() for c in raw.split(",") if c.strip() and c.strip() not in LABELS[builtin]
            ]
            if unknown:
                errors.append(
                    FieldViolation(
                        where,
                        f"unknown class {unknown[0]!r}; one of {', '.join(LABELS[builtin])}",
                    )
                )
            continue
        if name == "population":
            continue
        if name == "seed" and builtin in MODEL_BUILTINS:
            continue
        if name == "classes" and builtin in MODEL_BUILTINS:
            errors.append(FieldViolation(where, "a look-alike has no classes"))
            continue
        spec = specs.get(name)
        if spec is None:
            known = ", ".join((*specs, *COMMON_PARAMETERS))
            errors.append(FieldViolation(where, f"unknown parameter; known: {known}"))
            continue
        try:
            value = float(raw)
        except ValueError:
            errors.append(FieldViolation(where, "must be a number"))
            continue
        if spec.integer and value != int(value):
            errors.append(FieldViolation(where, "must be a whole number"))
        elif not spec.low <= value <= spec.high:
            errors.append(FieldViolation(where, f"must be between {spec.low:g} and {spec.high:g}"))
    if builtin in MODEL_BUILTINS and not parameters.get("seed"):
        errors.append(
            FieldViolation(f"{path}.builtin_parameters[seed]", "required: the seed segment's id")
        )
    if builtin == Builtin.ABC and not errors:
        values = resolved(builtin, parameters)
        if values["a_share"] + values["b_share"] >= 1.0:
            errors.append(
                FieldViolation(
                    f"{path}.builtin_parameters[b_share]", "a_share + b_share must be < 1"
                )
            )
    return errors


def _count(event_type: str, days: int, comparison: str, threshold: float) -> BehaviorCondition:
    return BehaviorCondition(event_type, Aggregate.COUNT, comparison, threshold, days)


def _any_count(event_types: tuple[str, ...], days: int) -> Rule:
    return AnyOf(tuple(_count(t, days, "ge", 1) for t in event_types))


@dataclass(frozen=True)
class BehaviorRatio:
    """numerator / denominator compared to a threshold (built-ins only; denominator > 0)."""

    numerator: BehaviorCondition
    denominator: BehaviorCondition
    comparison: str
    threshold: float


Condition = Rule | BehaviorRatio
# (class, conditions that must all hold); the first class whose conditions hold wins.
ClassRules = list[tuple[str, list[Condition]]]


def temperature_classes(parameters: dict[str, str]) -> ClassRules:
    p = resolved(Builtin.TEMPERATURE, parameters)
    hot_days, ready, warm, negative = (
        int(p["hot_days"]),
        int(p["ready_days"]),
        int(p["warm_days"]),
        int(p["negative_days"]),
    )
    hot = AnyOf(
        (
            _count("order_placed", hot_days, "ge", p["hot_min_orders"]),
            _any_count(("cart_updated", "cart_abandoned"), ready),
        )
    )
    negative_response = AnyOf((_count("campaign_unsubscribed", negative, "ge", 1),))
    warm_rule = AllOf(
        (
            Not(negative_response),
            AnyOf((_any_count(ENGAGEMENT_EVENTS, warm), _count("order_placed", warm, "ge", 1))),
        )
    )
    # Cold: whoever is neither (no interest, or a negative response without buying).
    return [("hot", [hot]), ("warm", [warm_rule]), ("cold", [])]


def behavior_classes(parameters: dict[str, str]) -> ClassRules:
    p = resolved(Builtin.BEHAVIOR_TYPE, parameters)
    days = int(p["window_days"])
    orders = _count("order_placed", days, "ge", 1)
    discounted_orders = BehaviorCondition(
        "order_placed", Aggregate.COUNT, "ge", 0, days, (("discounted", "true"),)
    )
    order_count = _count("order_placed", days, "ge", 0)
    views = BehaviorCondition("product_viewed", Aggregate.COUNT, "ge", 0, days)
    return [
        (
            "discount_driven",
            [
                _count("order_placed", days, "ge", p["discount_min_orders"]),
                BehaviorRatio(discounted_orders, order_count, "ge", p["discount_share"]),
            ],
        ),
        ("loyal", [_count("order_placed", days, "ge", p["loyal_min_orders"])]),
        (
            "just_looking",
            [
                _count("order_placed", days, "eq", 0),
                AnyOf(tuple(_count(t, days, "ge", p["looking_min_views"]) for t in VIEW_EVENTS)),
            ],
        ),
        ("impulsive", [orders, BehaviorRatio(views, order_count, "lt", 1.0)]),
        ("purposeful", [orders]),
    ]
