"""Look-alike audiences: score every non-member of a seed segment by how much they resemble
its members, on what the profile holds.

Features per customer (``CustomerFeatures``): numbers (RFM - days since the last order,
orders, money spent -, order value, returns, items, carts, campaign counts, sessions, tickets,
loyalty points, age, tenure, discount share, product and page views) and tokens (categories
bought, channels, sources, gender, city, built-in classes such as "rfm:champions" or
"behavior_type:loyal"). Counts and money are log-scaled; a missing age or recency gets its
own indicator. Tokens seen on fewer than MIN_TOKEN_SHARE of the base are dropped (they cannot
generalise), at most MAX_TOKENS of the most frequent kept.

The model is a logistic regression (scikit-learn) of seed members against a sample of
everyone else, on standardised features: the positive-unlabelled set-up, where non-members are
treated as negatives, ranks by resemblance to the seed; its standardised coefficients say
which features drove the ranking. A linear model is enough for the structure the synthetic
bases have: benchmarks/lookalike/measure.py at 20,000 customers per base found hidden seed
members in the top decile at 5.41x (planted personas) and 5.05x (latent traits) the rate of a
random ranking (1.01x, 0.87x), training in 13.3 s and 9.7 s on a shared 2-core machine at load
average 17 (benchmarks/results/lookalike.json).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

# numpy and scikit-learn are imported when a model is trained, not when the service starts:
# importing scikit-learn took 1 s of CPU (4.8 s on this shared machine under load), enough
# to push segmentation's start past its health deadline in the process tests.

NUMERIC = (
    "recency_days",
    "no_order",
    "orders",
    "spent",
    "order_value",
    "returns",
    "items",
    "abandoned_carts",
    "campaigns_delivered",
    "campaigns_opened",
    "campaigns_clicked",
    "sessions",
    "support_tickets",
    "loyalty_points",
    "age",
    "no_age",
    "tenure_days",
    "discount_share",
    "product_views",
    "page_views",
)
# Log-scaled (counts and money): a tenth order says less than the second.
LOGGED = frozenset(
    {
        "orders",
        "spent",
        "order_value",
        "returns",
        "items",
        "abandoned_carts",
        "campaigns_delivered",
        "campaigns_opened",
        "campaigns_clicked",
        "sessions",
        "support_tickets",
        "loyalty_points",
        "product_views",
        "page_views",
    }
)
MIN_TOKEN_SHARE = 0.002
MIN_TOKEN_COUNT = 3
MAX_TOKENS = 300
# Non-members sampled as negatives, per seed member (and at most MAX_NEGATIVES in all): more
# adds training time, not ranking quality.
NEGATIVES_PER_POSITIVE = 20
MAX_NEGATIVES = 50_000
MIN_SEED = 5
DRIVERS = 10


@dataclass
class CustomerFeatures:
    customer_id: str
    numbers: dict[str, float] = field(default_factory=dict)
    # token -> weight (1 for a flag, log1p(count) for categories)
    tokens: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Driver:
    feature: str
    # standardised coefficient: how much one standard deviation moves the log-odds
    weight: float
    seed_mean: float
    base_mean: float


@dataclass(frozen=True)
class LookalikeResult:
    # chosen customers and their scores, best first
    chosen: list[tuple[str, float]]
    drivers: list[Driver]
    seed_size: int
    scored: int
    # every scored customer's score (non-members), for measurements
    ranking: list[tuple[str, float]]


class SeedTooSmall(ValueError):
    pass


def _numbers(row: CustomerFeatures) -> list[float]:
    out = []
    for name in NUMERIC:
        value = float(row.numbers.get(name, 0.0) or 0.0)
        if not math.isfinite(value):
            value = 0.0
        out.append(math.log1p(max(value, 0.0)) if name in LOGGED else value)
    return out


def vocabulary(rows: Sequence[CustomerFeatures]) -> list[str]:
    counts = Counter(token for row in rows for token in row.tokens)
    floor = max(MIN_TOKEN_COUNT, int(MIN_TOKEN_SHARE * len(rows)))
    kept = [t for t, n in counts.most_common() if n >= floor][:MAX_TOKENS]
    return sorted(kept)


def matrix(rows: Sequence[CustomerFeatures]) -> tuple[np.ndarray, list[str]]:
    import numpy as np

    tokens = vocabulary(rows)
    index = {t: i for i, t in enumerate(tokens)}
    x = np.zeros((len(rows), len(NUMERIC) + len(tokens)), dtype=np.float64)
    for r, row in enumerate(rows):
        x[r, : len(NUMERIC)] = _numbers(row)
        for token, weight in row.tokens.items():
            column = index.get(token)
            if column is not None:
                x[r, len(NUMERIC) + column] = weight
    return x, [*NUMERIC, *tokens]


def train_and_score(
    rows: Sequence[CustomerFeatures],
    seed: set[str],
    size: int,
    min_score: float = 0.0,
    random_state: int = 0,
) -> LookalikeResult:
    """Scores every customer not in ``seed``; chooses the best ``size`` scoring at least
    ``min_score``. Raises SeedTooSmall when fewer than MIN_SEED seed members are known."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x, names = matrix(rows)
    is_seed = np.array([row.customer_id in seed for row in rows])
    positives = int(is_seed.sum())
    if positives < MIN_SEED or positives == len(rows):
        raise SeedTooSmall(f"{positives} seed members among {len(rows)} customers")
    rng = np.random.default_rng(random_state)
    others = np.flatnonzero(~is_seed)
    take = min(len(others), positives * NEGATIVES_PER_POSITIVE, MAX_NEGATIVES)
    negatives = rng.choice(others, size=take, replace=False)
    train = np.concatenate([np.flatnonzero(is_seed), negatives])
    scaler = StandardScaler()
    scaled_train = scaler.fit_transform(x[train])
    model = LogisticRegression(C=0.5, class_weight="balanced", max_iter=2000)
    model.fit(scaled_train, is_seed[train])
    probabilities = model.predict_proba(scaler.transform(x[others]))[:, 1]
    order = np.argsort(-probabilities, kind="stable")
    ranking = [(rows[others[i]].customer_id, float(probabilities[i])) for i in order]
    chosen = [(c, s) for c, s in ranking[:size] if s >= min_score]
    coefficients = model.coef_[0]
    top = np.argsort(-np.abs(coefficients))[:DRIVERS]
    seed_rows, base_rows = x[is_seed], x[~is_seed]
    drivers = [
        Driver(
            names[i],
            round(float(coefficients[i]), 4),
            round(float(seed_rows[:, i].mean()), 4),
            round(float(base_rows[:, i].mean()), 4),
        )
        for i in top
        if coefficients[i] != 0
    ]
    return LookalikeResult(chosen, drivers, positives, len(others), ranking)


def lift_in_top_decile(ranking: Sequence[tuple[str, float]], hidden: set[str]) -> float:
    """How many times more hidden seed members the top tenth of the ranking holds than a
    random tenth would (1.0 = no better than random)."""
    if not hidden or not ranking:
        return 0.0
    top = {c for c, _ in ranking[: max(1, len(ranking) // 10)]}
    found = len(top & hidden) / len(hidden)
    return found / (len(top) / len(ranking))
