"""In-memory quality storage and profile reader: satisfy ``service_layer.ports`` without
PostgreSQL or the profile service.

They keep what the use cases write and read back with the store's documented rules: a rule id
is taken once, counts add up per day and source, peers' reports only move forward in time, the
latest contact failure of an identifier is kept, a refresh keeps only the facts it saw, one
snapshot per day. ``fail_reads`` makes the store refuse reads, as a database that went away.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace

from svod_quality.domain import BatchTally, ProfileFacts, ProfileSnapshot, QualityReport
from svod_quality.domain.records import PairKey, RecordCountRow, StoredRule, ViolationRow
from svod_quality.domain.rules import ValidationRule
from svod_quality.service_layer.ports import ProfileReader, QualityRepository
from svod_runtime.errors import AlreadyExists, NotFound


@dataclass
class FakeQualityStore:
    clock: dt.datetime = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
    rules: dict[str, StoredRule] = field(default_factory=dict)
    # (rule id, change, actor), in order
    rule_changes: list[tuple[str, str, str]] = field(default_factory=list)
    record_counts: dict[tuple[dt.date, str], tuple[int, int, int]] = field(default_factory=dict)
    finding_counts: Counter[tuple[dt.date, str, str, str, str]] = field(default_factory=Counter)
    # pair -> (score, suspected, reported at)
    pairs: dict[PairKey, tuple[float, bool, dt.datetime]] = field(default_factory=dict)
    # (type, namespace, value) -> (blocked, reported at)
    blocked: dict[tuple[str, str, str], tuple[bool, dt.datetime]] = field(default_factory=dict)
    failures: dict[bytes, dt.datetime] = field(default_factory=dict)
    # customer -> (refresh id, facts)
    facts: dict[str, tuple[int, ProfileFacts]] = field(default_factory=dict)
    reports: dict[dt.date, QualityReport] = field(default_factory=dict)
    refreshes: int = 0
    fail_reads: bool = False

    # -- validation rules
    async def list_rules(self, source: str | None = None) -> list[StoredRule]:
        if self.fail_reads:
            raise ConnectionRefusedError("database is down")
        return [
            stored
            for _, stored in sorted(self.rules.items())
            if source is None or stored.rule.source in (None, source)
        ]

    async def create_rule(self, rule: ValidationRule, actor: str = "") -> StoredRule:
        if rule.rule_id in self.rules:
            raise AlreadyExists(f"validation rule {rule.rule_id!r} already exists")
        # Each rule gets its own time: the rules' key changes with every change.
        at = self.clock + dt.timedelta(microseconds=len(self.rule_changes))
        stored = self.rules[rule.rule_id] = StoredRule(rule, at, at)
        self.rule_changes.append((rule.rule_id, "created", actor))
        return stored

    async def delete_rule(self, rule_id: str, actor: str = "") -> None:
        if self.rules.pop(rule_id, None) is None:
            raise NotFound(f"no validation rule {rule_id!r}")
        self.rule_changes.append((rule_id, "deleted", actor))

    # -- findings
    async def add_tally(self, day: dt.date, source: str, tally: BatchTally) -> None:
        records, rejected, flagged = self.record_counts.get((day, source), (0, 0, 0))
        self.record_counts[(day, source)] = (
            records + tally.records,
            rejected + tally.rejected,
            flagged + tally.flagged,
        )
        for (rule, field_name, action), n in tally.findings.items():
            self.finding_counts[(day, source, rule, field_name, action)] += n

    async def violation_stats(
        self, since: dt.date, source: str | None
    ) -> tuple[list[ViolationRow], list[RecordCountRow]]:
        violations = [
            ViolationRow(*key, n)
            for key, n in self.finding_counts.items()
            if key[0] >= since and (not source or key[1] == source)
        ]
        violations.sort(key=lambda v: (-v.findings, -v.day.toordinal(), v[1:5]))
        records = [
            RecordCountRow(day, src, *counts)
            for (day, src), counts in sorted(self.record_counts.items())
            if day >= since and (not source or src == source)
        ]
        return violations, records

    # -- what peers report
    async def report_duplicates(
        self,
        suspected: dict[PairKey, float],
        resolved: Iterable[PairKey],
        blocked: Iterable[tuple[str, str, str]],
        unblocked: Iterable[tuple[str, str, str]],
        at: dt.datetime,
    ) -> None:
        changes = [(k, score, True) for k, score in suspected.items()]
        changes += [(k, 0.0, False) for k in resolved]
        for key, score, is_suspected in changes:
            old = self.pairs.get(key)
            if old is None or at >= old[2]:
                kept = score if is_suspected or old is None else old[0]
                self.pairs[key] = (kept, is_suspected, at)
        for ident, is_blocked in [(i, True) for i in blocked] + [(i, False) for i in unblocked]:
            old_block = self.blocked.get(ident)
            if old_block is None or at >= old_block[1]:
                self.blocked[ident] = (is_blocked, at)

    async def record_contact_failures(
        self, failures: Sequence[tuple[bytes, str, dt.datetime]]
    ) -> None:
        for key, _, at in failures:
            self.failures[key] = max(at, self.failures.get(key, at))

    async def erase_customer(self, customer_id: str, hashes: Sequence[bytes]) -> int:
        erased = int(self.facts.pop(customer_id, None) is not None)
        for pair in [p for p in self.pairs if customer_id in p]:
            del self.pairs[pair]
            erased += 1
        for key in hashes:
            erased += int(self.failures.pop(key, None) is not None)
        return erased

    async def contact_failures(
        self, hashes: Sequence[bytes] | None = None
    ) -> dict[bytes, dt.datetime]:
        if hashes is None:
            return dict(self.failures)
        return {k: v for k, v in self.failures.items() if k in hashes}

    async def is_suspected_duplicate(self, customer_id: str) -> bool:
        return any(
            customer_id in key and suspected for key, (_, suspected, _) in self.pairs.items()
        )

    # -- facts and the base report
    @asynccontextmanager
    async def refresh_lock(self) -> AsyncIterator[int]:
        self.refreshes += 1
        yield self.refreshes

    async def save_facts(self, refresh_id: int, facts: Sequence[ProfileFacts]) -> None:
        for f in facts:
            self.facts[f.customer_id] = (refresh_id, f)

    async def drop_facts_except(self, refresh_id: int) -> None:
        self.facts = {c: (r, f) for c, (r, f) in self.facts.items() if r == refresh_id}

    def _duplicates(self) -> list[PairKey]:
        return [
            key
            for key, (_, suspected, _) in self.pairs.items()
            if suspected and key.first in self.facts and key.second in self.facts
        ]

    async def iter_facts(self) -> AsyncIterator[ProfileFacts]:
        duplicates = self._duplicates()
        for customer_id, (_, facts) in sorted(self.facts.items()):
            duplicate = any(customer_id in key for key in duplicates)
            yield replace(facts, suspected_duplicate=duplicate)

    async def duplicate_counts(self) -> tuple[int, int]:
        return len(self._duplicates()), sum(b for b, _ in self.blocked.values())

    async def save_snapshot(self, report: QualityReport) -> None:
        day = report.now.time.date()
        old = self.reports.get(day)
        if old is None or report.now.time >= old.now.time:
            self.reports[day] = replace(report, trend=[report.now])

    async def snapshots(self, since: dt.date) -> list[QualityReport]:
        return [r for day, r in sorted(self.reports.items()) if day >= since]

    async def latest_snapshot_day(self) -> dt.date | None:
        return max(self.reports, default=None)


@dataclass
class FakeProfiles:
    """The profile service: the profiles it shows now."""

    profiles: dict[str, ProfileSnapshot] = field(default_factory=dict)

    async def get(self, customer_id: str) -> ProfileSnapshot:
        found = self.profiles.get(customer_id)
        if found is None:
            raise NotFound(f"no customer {customer_id}")
        return found

    async def stream(self) -> AsyncIterator[ProfileSnapshot]:
        for _, profile in sorted(self.profiles.items()):
            yield profile


def _conforms(store: FakeQualityStore, profiles: FakeProfiles) -> tuple[object, object]:
    checked: tuple[QualityRepository, ProfileReader] = (store, profiles)  # mypy checks both
    return checked
