"""The Fellegi–Sunter match model: comparison features, their agreement levels and weights.

For every feature and level the model holds m = P(level | same person) and
u = P(level | different people) among candidate pairs; a level's match weight is log2(m/u).
"Missing" (either side has no value) carries no evidence and always weighs 0.
"""

from __future__ import annotations

import heapq
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

MISSING = "missing"

# Feature → agreement levels, strongest agreement first. Order matters only for reading.
LEVELS: dict[str, tuple[str, ...]] = {
    # exact: same written name (script/ё/case aside); equivalent: nickname or spelling variant
    # of the same passport name (Маша/Мария); fuzzy: typo of a name the tables do not know;
    # other: unlike names, one or both unknown to the tables (a garbled or replaced entry as
    # often as another person); disagree: two different known names.
    "first_name": ("exact", "equivalent", "fuzzy", "other", "disagree"),
    # gender_form: Иванов vs Иванова (same family, other gender); changed: a woman's records
    # with unrelated surnames, as after marriage; disagree: everyone else.
    "last_name": ("exact", "gender_form", "fuzzy", "changed", "disagree"),
    "middle_name": ("exact", "fuzzy", "disagree"),
    # typo: day and month swapped, or one digit wrong.
    "birth_date": ("exact", "typo", "disagree"),
    # agree: a shared mobile; agree_landline: only a shared fixed line (a household's phone).
    "phone": ("agree", "agree_landline", "disagree"),
    # local_part: same login at another provider (not for unlike given names: two people's
    # logins made alike from their names); fuzzy: one-character typo.
    "email": ("exact", "local_part", "fuzzy", "disagree"),
    "card": ("agree", "disagree"),
    # address: same street address; postcode: same postcode (a neighbourhood), not the street;
    # city: same city only.
    "location": ("address", "postcode", "city", "disagree"),
}
FEATURES: tuple[str, ...] = tuple(LEVELS)

# Hand-set values: the anchor EM shrinks towards with little data (and the starting model's
# before ``STARTING_M``).
# They describe candidate pairs (records sharing a blocking key), not random pairs, which is why
# u for name agreement is high: blocking already made names agree.
# Disagreements start rare among matches (below ``scoring.NOISY_DISAGREEMENT``): until the data
# say a source garbles a field, a disagreement on it is a conflict, not a slip.
DEFAULT_M: dict[str, dict[str, float]] = {
    "first_name": {
        "exact": 0.803,
        "equivalent": 0.14,
        "fuzzy": 0.05,
        "other": 0.005,
        "disagree": 0.002,
    },
    "last_name": {
        "exact": 0.835,
        "gender_form": 0.01,
        "fuzzy": 0.06,
        "changed": 0.09,
        "disagree": 0.005,
    },
    "middle_name": {"exact": 0.935, "fuzzy": 0.06, "disagree": 0.005},
    "birth_date": {"exact": 0.955, "typo": 0.04, "disagree": 0.005},
    "phone": {"agree": 0.70, "agree_landline": 0.05, "disagree": 0.25},
    "email": {"exact": 0.60, "local_part": 0.08, "fuzzy": 0.07, "disagree": 0.25},
    "card": {"agree": 0.85, "disagree": 0.15},
    "location": {"address": 0.55, "postcode": 0.10, "city": 0.20, "disagree": 0.15},
}
DEFAULT_U: dict[str, dict[str, float]] = {
    "first_name": {
        "exact": 0.25,
        "equivalent": 0.03,
        "fuzzy": 0.02,
        "other": 0.20,
        "disagree": 0.50,
    },
    "last_name": {
        "exact": 0.35,
        "gender_form": 0.10,
        "fuzzy": 0.03,
        "changed": 0.22,
        "disagree": 0.30,
    },
    "middle_name": {"exact": 0.15, "fuzzy": 0.03, "disagree": 0.82},
    "birth_date": {"exact": 0.05, "typo": 0.02, "disagree": 0.93},
    "phone": {"agree": 0.06, "agree_landline": 0.08, "disagree": 0.86},
    "email": {"exact": 0.04, "local_part": 0.01, "fuzzy": 0.01, "disagree": 0.94},
    "card": {"agree": 0.03, "disagree": 0.97},
    "location": {"address": 0.15, "postcode": 0.05, "city": 0.35, "disagree": 0.45},
}
DEFAULT_PRIOR = 0.3
# The starting model: what the service matches with until an operator refits
# (``RefitMatchModel``) or identity fits by itself (``autofit.py``) - every record of a fresh
# install, a bulk import's included. Estimated, not set by hand: EM (``em.estimate_model``
# from the values above, no labels read) over the pooled candidate pairs of four generated sets
# of 10,000 persons, two of each generator, seeds no benchmark or test uses
# (``benchmarks/identity/starting_model.py`` prints these values and checks them). Sets of
# 10,000: the larger the base, the more candidate pairs share a name or a birth date by chance
# (pooled sets of 3,000 gave a match share of 0.41 and a birth date's agreement 7.3 bits, sets
# of 10,000 0.28 and 6.4 bits). Every disagreement stays rare among matches (below
# ``scoring.NOISY_DISAGREEMENT``), as above. The values above stay EM's anchor and the unit
# tests' model. The rules that need weights this graph's data gave stay off with it
# (``trained_pairs`` 0).
# Measured (offline, matched with no refit, sets left out of the pool; the values above ->
# these): FEBRL3 F1 0.8043 -> 0.8835, FEBRL4 0.8636 -> 0.9242 (precision 1.0 both: another
# country, another generator); generator 101 0.9658 -> 0.9652, 202 0.9685 -> 0.9670;
# households 303 0.9428 -> 0.9402 and 8282 (5,000 persons) 0.9418 -> 0.9409, precision
# 0.9948 -> 0.9981 and 0.9923 -> 0.9974 (wrong pairs about a third as many), no customer of
# three persons (there were); review items 57-78% fewer on every set. Its street address
# weighs 5.1 bits, but no place counts as telling until a fit on this base
# (``scoring.strong_place``); unchecked, that made FEBRL 0.9043 / 0.9438 and households 303
# 0.9408, and linked a mother and a daughter of one name in one flat. With EM first
# (``RefitMatchModel``) nothing changes: the fits start from the values above.
STARTING_M: dict[str, dict[str, float]] = {
    "first_name": {
        "exact": 0.7308644,
        "equivalent": 0.2251,
        "fuzzy": 0.03973,
        "other": 0.0009576,
        "disagree": 0.003348,
    },
    "last_name": {
        "exact": 0.930472,
        "gender_form": 0.00086,
        "fuzzy": 0.0398,
        "changed": 0.02493,
        "disagree": 0.003938,
    },
    "middle_name": {
        "exact": 0.970625,
        "fuzzy": 0.02634,
        "disagree": 0.003035,
    },
    "birth_date": {
        "exact": 0.9639693,
        "typo": 0.03571,
        "disagree": 0.0003207,
    },
    "phone": {
        "agree": 0.886469,
        "agree_landline": 0.005031,
        "disagree": 0.1085,
    },
    "email": {
        "exact": 0.74918,
        "local_part": 0.1274,
        "fuzzy": 0.0396,
        "disagree": 0.08382,
    },
    "card": {
        "agree": 0.98624,
        "disagree": 0.01376,
    },
    "location": {
        "address": 0.1935,
        "postcode": 0.0001,
        "city": 0.78227,
        "disagree": 0.02413,
    },
}
STARTING_U: dict[str, dict[str, float]] = {
    "first_name": {
        "exact": 0.49279,
        "equivalent": 0.1651,
        "fuzzy": 0.02114,
        "other": 0.01527,
        "disagree": 0.3057,
    },
    "last_name": {
        "exact": 0.77626,
        "gender_form": 0.1612,
        "fuzzy": 0.0238,
        "changed": 0.01419,
        "disagree": 0.02455,
    },
    "middle_name": {
        "exact": 0.06554,
        "fuzzy": 0.0007961,
        "disagree": 0.9336639,
    },
    "birth_date": {
        "exact": 0.0115,
        "typo": 0.03473,
        "disagree": 0.95377,
    },
    "phone": {
        "agree": 0.0001,
        "agree_landline": 0.005023,
        "disagree": 0.994877,
    },
    "email": {
        "exact": 0.01162,
        "local_part": 0.03038,
        "fuzzy": 0.0005919,
        "disagree": 0.9574081,
    },
    "card": {
        "agree": 0.02411,
        "disagree": 0.97589,
    },
    "location": {
        "address": 0.005591,
        "postcode": 0.0001,
        "city": 0.1419,
        "disagree": 0.852409,
    },
}
STARTING_PRIOR = 0.2781
DEFAULT_LINK_THRESHOLD = 0.9
DEFAULT_REVIEW_THRESHOLD = 0.5
# Keeps log2(m/u) finite for levels never observed in one class.
PROBABILITY_FLOOR = 1e-4
MODEL_VERSION = 1

# Term-frequency adjustment (Splink-style) of an exact agreement on a name: two records that
# share a value v are likelier one person the rarer v is. The weight of the exact level is
# moved by log2(u_average / u_v), u_v the share of records holding v and u_average the chance
# that two random records agree at all (sum of the shares squared): rare surnames gain, the
# popular ones lose. Learned from the records when the model is refitted (``term_frequencies``).
TF_FEATURES: tuple[str, ...] = (
    "last_name",
    "first_name",
    "city",
    "birth_date",
    "login",
    "first_name_birth_date",
)
# "first_name_birth_date": how many records hold each (canonical given name, birth date) pair
# (``frequencies.fold_name_date_pairs``). Not a score adjustment either: what a thin link that
# rests on the given name and the birth date loses when many hold the pair
# (``scoring.common_name_and_birth_date_loss``, ``engine.Resolver``).
# "login": how many distinct mailboxes hold each e-mail login (``frequencies.fold_logins``). Not
# a score adjustment (measured, see ``TF_BOUNDS``) but what tells a login one person keeps at
# two providers (``maria.smirnova1987``) from one that a surname and an initial make
# (``popov.e``), which namesakes pick at every provider: ``engine._rare_login_link``.
# Logins held by at most this many mailboxes in the base are one person's.
RARE_LOGIN_MAILBOXES = 2
# The most frequent values kept per feature; a value not among them counts as seen once.
TF_TOP_VALUES = 2_000
# Below this many records frequencies say too little to move weights.
TF_MIN_RECORDS = 200
# Bounds of the adjustment per feature, in bits (most lost, most gained): one value's share of
# a base is a noisy guess at how many people hold it, and a shared city is weaker evidence than
# a shared name however small the town.
TF_BOUNDS: dict[str, tuple[float, float]] = {
    "last_name": (1.0, 1.5),
    "first_name": (1.0, 1.5),
    "city": (1.0, 1.0),
    # Gains only. Measured (offline.py --em, one EM fit per set, session 35): as gain and loss
    # (1 and 1.5 bits) the loss of a date held by many (households' children clamped at 2008)
    # bought precision at 20,000 persons (seed 3131 P 0.9905 -> 0.9929, 5353 0.9897 -> 0.9911)
    # but lost more true pairs elsewhere: seed 2026 F1 0.9392 -> 0.9388, households 1313 @3000
    # 0.9442 -> 0.9439, generators 101 / 202 0.9714 / 0.9722 -> 0.9713 / 0.9720. The gain
    # alone: 2026 0.9394, households 2424 / 303 @3000 +0.0007 / +0.0002, generator 202 0.9724,
    # 101 and FEBRL3/4 unchanged.
    "birth_date": (0.0, 1.5),
}
# The login table moves no weight: as a Splink-style adjustment of "local_part" (bounds 1 and
# 1.5 bits, offline.py --em at 3000 persons) it cost households seed 303 F1 0.9423 -> 0.9416
# (P 0.9938 -> 0.9928), 909 0.9392 -> 0.9388, generators 101/202/5151 and households 6161
# unchanged; as a loss only, 303 0.9414: the generated namesakes' logins are few, and a lower
# weight changed which of them a record joined first.


_SUMS_TO_ONE = 1e-12


def _checked(table: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for feature, levels in LEVELS.items():
        row = {level: float(table.get(feature, {}).get(level, 0.0)) for level in levels}
        row = {level: max(p, PROBABILITY_FLOOR) for level, p in row.items()}
        total = math.fsum(row.values())
        # A row that sums to one already is kept as it is: dividing again moves the last bits,
        # and a model read back from its JSON must be the model that wrote it.
        if abs(total - 1.0) > _SUMS_TO_ONE:
            row = {level: p / total for level, p in row.items()}
        out[feature] = row
    return out


@dataclass(frozen=True)
class TermFrequencies:
    """How many of ``total`` records hold each of the most frequent values of a feature."""

    total: int
    counts: Mapping[str, int]
    # Sum of every value's count squared, the values left out of ``counts`` included, and the
    # count assumed for a value not listed. Set for the login table (``with_tail``), whose
    # long tail matters; None and 1 for the name tables, as fitted before.
    squares: int | None = None
    unlisted: int = 1

    @classmethod
    def from_counts(cls, counts: Mapping[str, int], top: int = TF_TOP_VALUES) -> TermFrequencies:
        kept = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]
        return cls(total=sum(counts.values()), counts=dict(kept))

    @classmethod
    def with_tail(
        cls, counts: Mapping[str, int], top: int = TF_TOP_VALUES, least: int = 2
    ) -> TermFrequencies:
        """Frequencies among the values held at least ``least`` times, every one of them in the
        agreement share (not only the ``top`` kept); a value not listed counts as the commonest
        left out, or ``least``.

        For logins (``least`` 2): the same login at two providers ("local_part") means at
        least two mailboxes hold it, so the logins held once are no part of what such an
        agreement is compared with. Counted over them, every shared login would lose weight
        (generated data: -0.9 bits for a login at two mailboxes); counted over the shared
        ones, a login at two mailboxes keeps EM's weight (+-0.2) and one at five loses ~1.1.
        """
        shared = {value: n for value, n in counts.items() if n >= least}
        # The commonest ``top`` and the one after them, not every value ranked: sorting the
        # ~900,000 (given name, birth date) pairs of a million records took 2.1 s of a fit.
        ranked = heapq.nsmallest(top + 1, shared.items(), key=lambda item: (-item[1], item[0]))
        return cls(
            total=sum(shared.values()),
            counts=dict(ranked[:top]),
            squares=sum(n * n for n in shared.values()),
            unlisted=ranked[top][1] if len(ranked) > top else least,
        )

    @cached_property
    def agreement_share(self) -> float:
        """The chance that two random records hold the same value (u_average); worked out once,
        as every scored pair asks."""
        if not self.total:
            return 0.0
        if self.squares is not None:
            return self.squares / self.total**2
        return sum((n / self.total) ** 2 for n in self.counts.values())

    def count(self, value: str) -> int:
        """How many hold ``value`` (``unlisted`` for a value not listed)."""
        return self.counts.get(value, self.unlisted)

    def adjustment(self, value: str) -> float:
        """log2(u_average / u_value), unbounded; 0 with too few records to tell."""
        if self.total < TF_MIN_RECORDS or not value:
            return 0.0
        share = max(self.counts.get(value, self.unlisted), 1) / self.total
        return math.log2(self.agreement_share / share)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"total": self.total, "counts": dict(self.counts)}
        if self.squares is not None:
            out["squares"] = self.squares
            out["unlisted"] = self.unlisted
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TermFrequencies:
        squares = data.get("squares")
        return cls(
            total=int(data["total"]),
            counts={str(k): int(n) for k, n in data["counts"].items()},
            squares=None if squares is None else int(squares),
            unlisted=int(data.get("unlisted", 1)),
        )


@dataclass(frozen=True)
class MatchModel:
    """Parameters of the match model; serialisable so the service can store and reload it.

    ``prior`` is the share of true matches among candidate pairs. Thresholds are posterior
    match probabilities: at or above ``link_threshold`` a pair links automatically, at or above
    ``review_threshold`` it goes to the review queue, below it the record is someone else.
    """

    m: dict[str, dict[str, float]] = field(default_factory=lambda: _checked(DEFAULT_M))
    u: dict[str, dict[str, float]] = field(default_factory=lambda: _checked(DEFAULT_U))
    prior: float = DEFAULT_PRIOR
    link_threshold: float = DEFAULT_LINK_THRESHOLD
    review_threshold: float = DEFAULT_REVIEW_THRESHOLD
    # Provenance, for the API and for deciding when to re-estimate.
    trained_pairs: int = 0
    # Records in the graph when the model was fitted (0: not known, or the hand-set model):
    # an automatic fit comes again once the graph has grown past it (``autofit.py``).
    fitted_records: int = 0
    em_iterations: int = 0
    converged: bool = False
    version: int = MODEL_VERSION
    # Feature (``TF_FEATURES``) -> value frequencies among the records, for ``tf_weight``.
    term_frequencies: Mapping[str, TermFrequencies] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 < self.prior < 1.0:
            raise ValueError("prior must be strictly between 0 and 1")
        if not 0.0 < self.review_threshold <= self.link_threshold < 1.0:
            raise ValueError("need 0 < review_threshold <= link_threshold < 1")
        object.__setattr__(self, "m", _checked(self.m))
        object.__setattr__(self, "u", _checked(self.u))

    def weight(self, feature: str, level: str) -> float:
        """Match weight log2(m/u) of one feature level; 0 for missing values."""
        if level == MISSING:
            return 0.0
        return math.log2(self.m[feature][level] / self.u[feature][level])

    def tf_weight(self, feature: str, value: str) -> float:
        """The term-frequency adjustment of an exact agreement on ``value`` (0 when the model
        holds no frequencies for the feature)."""
        table = self.term_frequencies.get(feature)
        if table is None:
            return 0.0
        loss, gain = TF_BOUNDS[feature]
        return max(-loss, min(gain, table.adjustment(value)))

    @property
    def prior_weight(self) -> float:
        """log2 prior odds of a match among candidate pairs."""
        return math.log2(self.prior / (1.0 - self.prior))

    @staticmethod
    def _threshold_weight(probability: float) -> float:
        return math.log2(probability / (1.0 - probability))

    @property
    def link_weight(self) -> float:
        """The total score (log2 posterior odds) at which pairs link."""
        return self._threshold_weight(self.link_threshold)

    @property
    def review_weight(self) -> float:
        return self._threshold_weight(self.review_threshold)

    def with_thresholds(self, link: float, review: float) -> MatchModel:
        # Called per resolve: the common case, thresholds already set, must not re-validate.
        if link == self.link_threshold and review == self.review_threshold:
            return self
        return replace(self, link_threshold=link, review_threshold=review)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "prior": self.prior,
            "link_threshold": self.link_threshold,
            "review_threshold": self.review_threshold,
            "trained_pairs": self.trained_pairs,
            "fitted_records": self.fitted_records,
            "em_iterations": self.em_iterations,
            "converged": self.converged,
            "features": {
                feature: {
                    level: {"m": self.m[feature][level], "u": self.u[feature][level]}
                    for level in levels
                }
                for feature, levels in LEVELS.items()
            },
            "term_frequencies": {
                feature: table.to_dict() for feature, table in self.term_frequencies.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MatchModel:
        if data.get("version", MODEL_VERSION) != MODEL_VERSION:
            raise ValueError(f"unsupported match model version {data.get('version')}")
        features = data.get("features", {})
        # Levels added in later code versions fall back to defaults via _checked's floor; a
        # model stored before a level existed should be re-estimated, not trusted blindly.
        m = {f: {lvl: p["m"] for lvl, p in levels.items()} for f, levels in features.items()}
        u = {f: {lvl: p["u"] for lvl, p in levels.items()} for f, levels in features.items()}
        return cls(
            m=m,
            u=u,
            prior=float(data["prior"]),
            link_threshold=float(data.get("link_threshold", DEFAULT_LINK_THRESHOLD)),
            review_threshold=float(data.get("review_threshold", DEFAULT_REVIEW_THRESHOLD)),
            trained_pairs=int(data.get("trained_pairs", 0)),
            fitted_records=int(data.get("fitted_records", 0)),
            em_iterations=int(data.get("em_iterations", 0)),
            converged=bool(data.get("converged", False)),
            term_frequencies={
                feature: TermFrequencies.from_dict(table)
                for feature, table in (data.get("term_frequencies") or {}).items()
                if feature in TF_FEATURES
            },
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True, indent=2)

    @classmethod
    def from_json(cls, text: str) -> MatchModel:
        return cls.from_dict(json.loads(text))


def default_model() -> MatchModel:
    """The hand-set model (``DEFAULT_M``): EM's anchor."""
    return MatchModel()


def starting_model() -> MatchModel:
    """What the service matches with before any model of its own is stored (``STARTING_M``)."""
    return MatchModel(m=STARTING_M, u=STARTING_U, prior=STARTING_PRIOR)
