"""Identity's own metrics (docs/operations.md): how records were placed, merges and splits as
they happen; the review queue and identifiers per customer, polled.

Counted in the servicer, after the use case committed: a refused or failed call counts nothing.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable

from svod_identity.adapters.metrics_queries import IdentityGaugeQueries
from svod_identity.domain.engine import Placement
from svod_identity.domain.identifiers import BlockReason
from svod_identity.domain.model import ResolutionOutcome
from svod_runtime.metrics import ServiceMetrics, labels

# Resolution outcomes, one per record: a retry is "already_resolved"; a record that put a
# suspected duplicate in the review queue is "review"; one with an identifier that did not
# link because it is blocked (a configured value, a placeholder, one shared by too many
# people) is "blocked"; the others by how they linked.
OUTCOMES = ("new", "linked_exact", "linked_fuzzy", "review", "blocked", "already_resolved")
_BLOCKED_REASONS = frozenset(BlockReason)
_LINKED = {
    ResolutionOutcome.CREATED: "new",
    ResolutionOutcome.LINKED_EXACT: "linked_exact",
    ResolutionOutcome.LINKED_FUZZY: "linked_fuzzy",
}
MERGE_TRIGGERS = ("automatic", "manual", "review")
# Buckets of identifiers per customer: 1 to 5 each, then ranges.
_BUCKETS = ((6, 10), (11, 20), (21, 50))


def outcome_of(placement: Placement) -> str:
    if placement.outcome == ResolutionOutcome.ALREADY_RESOLVED:
        return "already_resolved"
    if placement.review_item_ids:
        return "review"
    if any(reason in _BLOCKED_REASONS for _, reason in placement.unlinked):
        return "blocked"
    return _LINKED[placement.outcome]


def bucket(identifiers: int) -> str:
    if identifiers <= 5:
        return str(identifiers)
    for low, high in _BUCKETS:
        if identifiers <= high:
            return f"{low}-{high}"
    return f"{_BUCKETS[-1][1] + 1}+"


class IdentityMetrics:
    def __init__(
        self, metrics: ServiceMetrics, queries: IdentityGaugeQueries, slow_poll_s: float
    ) -> None:
        meter = metrics.meter
        self.queries = queries
        self.slow_poll_s = slow_poll_s
        self._slow_polled = float("-inf")
        self.resolutions = meter.create_counter(
            "svod.identity.resolutions", "{record}", "Records resolved, by outcome"
        )
        self.unlinked = meter.create_counter(
            "svod.identity.unlinked_identifiers",
            "{identifier}",
            "Identifiers of resolved records that did not link, by reason",
        )
        self.merges = meter.create_counter(
            "svod.identity.merges",
            "{customer}",
            "Customers merged into another, by what merged them",
        )
        self.splits = meter.create_counter(
            "svod.identity.splits", "{split}", "Customers split by a person"
        )
        # Every series exists from the start, so rates and alerts see 0 rather than nothing.
        for outcome in OUTCOMES:
            self.resolutions.add(0, {"outcome": outcome})
        for trigger in MERGE_TRIGGERS:
            self.merges.add(0, {"trigger": trigger})
        self.splits.add(0)
        self.review_queue = metrics.polled_gauge(
            "svod.identity.review_queue.depth", "{item}", "Review items waiting for a person"
        )
        self.customers = metrics.polled_gauge(
            "svod.identity.customers",
            "{customer}",
            "Customers by how many identifiers they hold (bucketed)",
        )
        self.most_identifiers = metrics.polled_gauge(
            "svod.identity.identifiers_per_customer.max",
            "{identifier}",
            "The most identifiers one customer holds",
        )
        metrics.add_poller("identity", self.poll)

    def placed(self, placements: Iterable[Placement]) -> None:
        outcomes: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        merged = 0
        for placement in placements:
            outcomes[outcome_of(placement)] += 1
            reasons.update(reason for _, reason in placement.unlinked)
            merged += len(placement.merged)
        for outcome, count in outcomes.items():
            self.resolutions.add(count, {"outcome": outcome})
        for reason, count in reasons.items():
            self.unlinked.add(count, {"reason": reason})
        if merged:
            self.merges.add(merged, {"trigger": "automatic"})

    def merged(self, trigger: str, customers: int) -> None:
        self.merges.add(customers, {"trigger": trigger})

    def split(self) -> None:
        self.splits.add(1)

    async def poll(self) -> None:
        self.review_queue.set({(): float(await self.queries.open_review_items())})
        now = time.monotonic()
        if now - self._slow_polled < self.slow_poll_s:
            return
        self._slow_polled = now
        counts = await self.queries.identifier_counts()
        by_bucket: Counter[str] = Counter()
        for held, customers in counts.items():
            by_bucket[bucket(held)] += customers
        self.customers.set({labels(identifiers=b): float(n) for b, n in by_bucket.items()})
        self.most_identifiers.set({(): float(max(counts, default=0))})
