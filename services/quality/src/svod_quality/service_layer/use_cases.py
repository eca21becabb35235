"""Quality use cases: rules, batches, reports from peers, scores and the base report.

No protobuf here: the servicer hands over plain values (and, for batches, a runner that does the
per-record work wherever it runs best).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, NamedTuple, TypeVar

from svod_quality.domain import (
    DEFAULT_WEIGHTS,
    BatchTally,
    ProfileScore,
    QualityReport,
    ReportBuilder,
    RuleDefinitionError,
    RuleSet,
    ScoreWeights,
    collect_facts,
    identifier_hash,
    normalized_contact,
    parse_rule,
    score_profile,
)
from svod_quality.domain.facts import CONTACT_TYPES
from svod_quality.domain.records import PairKey, RecordCountRow, StoredRule, ViolationRow
from svod_quality.domain.rules import _RULE_ID, _RULE_ID_FORMAT
from svod_quality.service_layer.ports import ProfileReader, QualityRepository
from svod_runtime import bounds
from svod_runtime.errors import FieldViolation, InvalidArgument, Unavailable, ViolationCollector
from svod_runtime.hashing import DEVELOPMENT_SECRET
from svod_runtime.ids import is_uuid, parse_uuid

log = logging.getLogger(__name__)

MAX_BATCH: Final = 10_000
MAX_REPORT_ITEMS: Final = 10_000
MAX_DAYS: Final = 366
DEFAULT_TREND_DAYS: Final = 30
DEFAULT_STATS_DAYS: Final = 7
# Rule changes made on another replica are picked up within this time.
RULES_TTL_S: Final = 5.0
FACTS_CHUNK: Final = 500
_SOURCE: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_FUTURE_SLACK: Final = dt.timedelta(minutes=5)

R = TypeVar("R")


class ActiveRules(NamedTuple):
    """The rules in force: prepared for evaluation, and as definitions for worker processes."""

    key: str  # changes whenever the rules do
    rule_set: RuleSet
    definitions: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class IdentifierRef:
    type: str
    value: str
    namespace: str = ""


@dataclass(frozen=True)
class PairReport:
    first: str
    second: str
    score: float = 0.0


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _days(value: int, default: int, field: str) -> int:
    if value == 0:
        return default
    if not 1 <= value <= MAX_DAYS:
        raise InvalidArgument([FieldViolation(field, f"between 1 and {MAX_DAYS} (0: {default})")])
    return value


def _check_source_filter(source: str) -> None:
    """An optional source filter: empty (every source) or a source's name."""
    if source and not _SOURCE.fullmatch(source):
        raise InvalidArgument([FieldViolation("source", "empty or 1-64 characters of [a-z0-9._-]")])


def check_batch(source: str, size: int) -> None:
    errors = ViolationCollector()
    if not source:
        errors.add("source", "required")
    elif not _SOURCE.fullmatch(source):
        errors.add("source", "1-64 characters of [a-z0-9._-], starting with a letter or digit")
    if size == 0:
        errors.add("records", "at least one record")
    elif size > MAX_BATCH:
        errors.add("records", f"at most {MAX_BATCH:,} records per call, got {size:,}")
    errors.raise_if_any()


class QualityService:
    def __init__(
        self,
        store: QualityRepository,
        profiles: ProfileReader,
        *,
        weights: ScoreWeights = DEFAULT_WEIGHTS,
        clock: Callable[[], dt.datetime] = utc_now,
        hash_secret: bytes = DEVELOPMENT_SECRET,
        on_tally: Callable[[BatchTally], None] | None = None,
    ) -> None:
        # The deployment's secret for the keyed hashes of contact data (SVOD_HASH_SECRET).
        self.hash_secret = hash_secret
        self.store = store
        self.profiles = profiles
        self.weights = weights
        self.clock = clock
        # Told what each standardised batch found (metrics).
        self.on_tally = on_tally
        self._rules: ActiveRules | None = None
        self._rules_loaded_at = 0.0

    # -- validation rules -------------------------------------------------------------

    async def create_rule(self, definition: Mapping[str, object], actor: str = "") -> StoredRule:
        try:
            rule = parse_rule(definition)
        except RuleDefinitionError as bad:
            raise InvalidArgument(
                [FieldViolation(f"rule.{v.field}", v.description) for v in bad.violations]
            ) from None
        stored = await self.store.create_rule(rule, actor)
        self._rules_loaded_at = -math.inf  # reload before the next batch
        return stored

    async def list_rules(self, source: str) -> list[StoredRule]:
        _check_source_filter(source)
        return await self.store.list_rules(source or None)

    async def delete_rule(self, rule_id: str, actor: str = "") -> None:
        if not rule_id:
            raise InvalidArgument([FieldViolation("rule_id", "required")])
        if not _RULE_ID.fullmatch(rule_id):
            raise InvalidArgument([FieldViolation("rule_id", _RULE_ID_FORMAT)])
        await self.store.delete_rule(rule_id, actor)
        self._rules_loaded_at = -math.inf  # reload before the next batch

    async def active_rules(self) -> ActiveRules:
        """The rules in force, cached for RULES_TTL_S (dropped at once on local changes).

        When the database cannot be read, the last rules loaded stay in force (standardising
        must not stop with a database blip); without any, the answer is UNAVAILABLE.
        """
        now = time.monotonic()
        if self._rules is None or now - self._rules_loaded_at > RULES_TTL_S:
            try:
                stored = await self.store.list_rules()
            except Exception as error:  # connection refused, pool timeout ...
                if self._rules is None:
                    raise Unavailable("validation rules cannot be loaded now") from error
                log.warning("validation rules not reloaded: %s", type(error).__name__)
                self._rules_loaded_at = now
                return self._rules
            rules = tuple(s.rule for s in stored)
            key = "|".join(f"{s.rule.rule_id}@{s.updated_at.isoformat()}" for s in stored)
            if self._rules is None or self._rules.key != key:
                self._rules = ActiveRules(key, RuleSet(rules), tuple(r.to_dict() for r in rules))
            self._rules_loaded_at = now
        return self._rules

    # -- standardisation --------------------------------------------------------------

    async def standardize(
        self,
        source: str,
        size: int,
        run: Callable[[ActiveRules, dt.date], Awaitable[tuple[R, BatchTally]]],
    ) -> R:
        """Checks the batch, runs it against the source's rules, counts its findings."""
        check_batch(source, size)
        rules = await self.active_rules()
        today = self.clock().date()
        output, tally = await run(rules, today)
        if self.on_tally is not None:
            self.on_tally(tally)
        try:
            await self.store.add_tally(today, source, tally)
        except Exception:  # monitoring must not cost the caller its answer
            log.warning("finding counts of a batch were not recorded", exc_info=True)
        return output

    # -- what peers report --------------------------------------------------------------

    async def report_duplicates(
        self,
        pairs: Sequence[PairReport],
        resolved: Sequence[PairReport],
        blocked: Sequence[IdentifierRef],
        unblocked: Sequence[IdentifierRef],
        report_time: dt.datetime | None,
    ) -> None:
        errors = ViolationCollector()
        now = self.clock()
        at = report_time or now
        if at > now + _FUTURE_SLACK:
            errors.add("report_time", "in the future")
        if len(pairs) + len(resolved) + len(blocked) + len(unblocked) > MAX_REPORT_ITEMS:
            errors.add("pairs", f"at most {MAX_REPORT_ITEMS:,} pairs and identifiers in all")
            errors.raise_if_any()
        suspected: dict[PairKey, float] = {}
        for i, pair in enumerate(pairs):
            key = _pair_key(pair, f"pairs[{i}]", errors)
            if not (math.isfinite(pair.score) and 0.0 <= pair.score <= 1.0):
                errors.add(f"pairs[{i}].score", "between 0 and 1")
            if key is not None:
                suspected[key] = pair.score
        gone: dict[PairKey, None] = {}
        for i, pair in enumerate(resolved):
            key = _pair_key(pair, f"resolved_pairs[{i}]", errors)
            if key is not None and key in suspected:
                errors.add(f"resolved_pairs[{i}]", "also listed in pairs")
            elif key is not None:
                gone[key] = None
        block = _identities(blocked, "blocked_identifiers", errors)
        unblock = _identities(unblocked, "unblocked_identifiers", errors)
        for i, ident in enumerate(unblock):
            if ident in block:
                errors.add(f"unblocked_identifiers[{i}]", "also listed in blocked_identifiers")
        errors.raise_if_any()
        await self.store.report_duplicates(suspected, gone, block, unblock, at)

    async def erase_customer(self, customer_id: str, identifiers: Sequence[IdentifierRef]) -> int:
        parse_uuid(customer_id, "customer_id")
        if len(identifiers) > bounds.MAX_REFS:
            raise InvalidArgument([FieldViolation("identifiers", f"at most {bounds.MAX_REFS:,}")])
        hashes = []
        for ident in identifiers:
            value = (
                normalized_contact(ident.type, ident.value) if ident.type in CONTACT_TYPES else ""
            )
            if value:
                hashes.append(identifier_hash(ident.type, value, secret=self.hash_secret))
        return await self.store.erase_customer(customer_id, hashes)

    async def report_contact_failures(
        self, failures: Sequence[tuple[IdentifierRef, dt.datetime | None]]
    ) -> None:
        errors = ViolationCollector()
        if not failures:
            errors.add("failures", "at least one")
        elif len(failures) > MAX_REPORT_ITEMS:
            errors.add("failures", f"at most {MAX_REPORT_ITEMS:,}")
        errors.raise_if_any()
        now = self.clock()
        rows: dict[bytes, tuple[bytes, str, dt.datetime]] = {}
        for i, (ident, failed_at) in enumerate(failures):
            path = f"failures[{i}]"
            at = failed_at or now
            if at > now + _FUTURE_SLACK:
                errors.add(f"{path}.failure_time", "in the future")
            if ident.type not in CONTACT_TYPES:
                errors.add(f"{path}.identifier.type", "an e-mail or a phone")
                continue
            value = normalized_contact(ident.type, ident.value)
            if not value:
                errors.add(f"{path}.identifier.value", f"not a valid {ident.type}")
                continue
            key = identifier_hash(ident.type, value, secret=self.hash_secret)
            if key not in rows or rows[key][2] < at:
                rows[key] = (key, ident.type, at)
        errors.raise_if_any()
        await self.store.record_contact_failures(list(rows.values()))

    async def violation_stats(
        self, days: int, source: str
    ) -> tuple[list[ViolationRow], list[RecordCountRow]]:
        days = _days(days, DEFAULT_STATS_DAYS, "days")
        _check_source_filter(source)
        since = self.clock().date() - dt.timedelta(days=days - 1)
        return await self.store.violation_stats(since, source or None)

    # -- scores and the base report -----------------------------------------------------

    async def profile_score(self, customer_id: str) -> tuple[str, ProfileScore, dt.datetime]:
        """(current customer id, score, when) for one profile, computed now."""
        if not is_uuid(customer_id):
            raise InvalidArgument([FieldViolation("customer_id", "a customer id (UUID)")])
        profile = await self.profiles.get(customer_id)
        rules = await self.active_rules()
        contacts = [i for i in profile.identifiers if i.type in CONTACT_TYPES]
        failures = await self.store.contact_failures(
            [identifier_hash(i.type, i.value, i.namespace, self.hash_secret) for i in contacts]
        )
        now = self.clock()
        facts = collect_facts(profile, rules.rule_set, failures, now.date(), self.hash_secret)
        duplicate = await self.store.is_suspected_duplicate(profile.customer_id)
        facts = replace(facts, suspected_duplicate=duplicate)
        return profile.customer_id, score_profile(facts, now.date(), self.weights), now

    async def refresh_report(self, trend_days: int = 0) -> QualityReport:
        """Reads every profile, stores their facts and today's snapshot, returns the report."""
        trend_days = _days(trend_days, DEFAULT_TREND_DAYS, "trend_days")
        async with self.store.refresh_lock() as refresh_id:
            rules = await self.active_rules()
            failures = await self.store.contact_failures()
            today = self.clock().date()
            chunk = []
            async for profile in self.profiles.stream():
                chunk.append(
                    collect_facts(profile, rules.rule_set, failures, today, self.hash_secret)
                )
                if len(chunk) >= FACTS_CHUNK:
                    await self.store.save_facts(refresh_id, chunk)
                    chunk = []
            await self.store.save_facts(refresh_id, chunk)
            # Only after a complete read: profiles not seen were merged away or erased.
            await self.store.drop_facts_except(refresh_id)
            now = self.clock()
            builder = ReportBuilder(now, self.weights)
            async for facts in self.store.iter_facts():
                builder.add(facts)
            earlier = await self.store.snapshots(now.date() - dt.timedelta(days=trend_days))
            report = builder.finish([s.now for s in earlier if s.now.time.date() < now.date()])
            pairs, blocked = await self.store.duplicate_counts()
            report = replace(report, suspected_duplicate_pairs=pairs, blocked_identifiers=blocked)
            await self.store.save_snapshot(report)
        log.info("quality report refreshed", extra={"profiles": report.now.profiles})
        return report

    async def report(self, trend_days: int = 0, refresh: bool = False) -> QualityReport:
        """The latest snapshot with the daily trend before it (computed first when asked or
        when there is none yet)."""
        trend_days = _days(trend_days, DEFAULT_TREND_DAYS, "trend_days")
        latest = await self.store.latest_snapshot_day()
        if refresh or latest is None:
            return await self.refresh_report(trend_days)
        snapshots = await self.store.snapshots(latest - dt.timedelta(days=trend_days))
        return replace(snapshots[-1], trend=[s.now for s in snapshots])

    async def refresh_if_due(self) -> bool:
        """Refreshes when today has no snapshot yet; True when it did."""
        latest = await self.store.latest_snapshot_day()
        if latest is not None and latest >= self.clock().date():
            return False
        await self.refresh_report()
        return True


def _pair_key(pair: PairReport, path: str, errors: ViolationCollector) -> PairKey | None:
    ok = True
    for name, value in (("first_customer_id", pair.first), ("second_customer_id", pair.second)):
        if not is_uuid(value):
            errors.add(f"{path}.{name}", "a customer id (UUID)")
            ok = False
    if not ok:
        return None
    first = parse_uuid(pair.first, f"{path}.first_customer_id")
    second = parse_uuid(pair.second, f"{path}.second_customer_id")
    if first == second:
        errors.add(path, "a customer cannot be its own duplicate")
        return None
    return PairKey(*sorted((first, second)))


def _identities(
    idents: Sequence[IdentifierRef], path: str, errors: ViolationCollector
) -> list[tuple[str, str, str]]:
    out: dict[tuple[str, str, str], None] = {}
    for i, ident in enumerate(idents):
        value = ident.value.strip()
        if not ident.type:
            errors.add(f"{path}[{i}].type", "required")
        if not value:
            errors.add(f"{path}[{i}].value", "1-256 characters")
        elif not bounds.check_text(
            value, f"{path}[{i}].value", bounds.MAX_IDENTIFIER_VALUE, errors
        ):
            continue
        if not bounds.check_text(
            ident.namespace, f"{path}[{i}].namespace", bounds.MAX_NAMESPACE, errors
        ):
            continue
        if ident.type and value:
            out[(ident.type, ident.namespace.strip(), value)] = None
    return list(out)
