"""Segmentation use cases, one transaction each."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import replace

from svod_runtime import bounds
from svod_runtime.batching import GroupCommitBatcher
from svod_runtime.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    SvodError,
    ViolationCollector,
)
from svod_runtime.ids import parse_customer_id
from svod_segmentation.domain.access import UNRESTRICTED, Scope
from svod_segmentation.domain.builtins import MODEL_BUILTINS, Builtin, RfmCutoffs
from svod_segmentation.domain.lookalike import SeedTooSmall, train_and_score
from svod_segmentation.domain.model import (
    ChangeOutcome,
    Evaluation,
    EventColumns,
    Member,
    MembershipEvent,
    MembershipKind,
    ProfileChange,
    RecomputeOutcome,
    Segment,
)
from svod_segmentation.domain.rules import Rule, SegmentDefinition, referenced_segments
from svod_segmentation.domain.validation import (
    check_descriptions,
    validate_definition,
    validate_preview,
)
from svod_segmentation.service_layer.ports import SegmentationRepository, SegmentationUnit

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]
STATEFUL_BUILTINS = (Builtin.RFM, Builtin.ABC)
# A trained look-alike: its chosen customers with scores, and its state (drivers ...).
Trained = dict[str, tuple[list[tuple[str, float]], dict[str, object]]]
MAX_PAGE = 1000
FEED_BATCH = 500
# Events one split change may move (ProfileSplit.moved_events).
MAX_MOVED_EVENTS = 10_000


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# A part of a resume token: a PostgreSQL bigint, ASCII digits only.
_POSITION_PART = re.compile(r"[0-9]{1,18}")
MAX_WATCHED = 1000


def encode_position(position: tuple[int, int]) -> str:
    return f"{position[0]}.{position[1]}"


def decode_position(token: str) -> tuple[int, int]:
    txid, _, event_id = token.partition(".")
    if not (_POSITION_PART.fullmatch(txid) and _POSITION_PART.fullmatch(event_id)):
        raise InvalidArgument([FieldViolation("resume_token", "not a token this service gave")])
    return int(txid), int(event_id)


def _check_split(change: ProfileChange, errors: ViolationCollector) -> None:
    split = change.split
    assert split is not None
    if split.source_customer_id == change.customer_id:
        errors.add("split.source_customer_id", "must not be the customer itself")
    if split.source_customer_id in change.merged_customer_ids:
        errors.add("split.source_customer_id", "must not be one of merged_customer_ids")
    if split.snapshot is not None and split.snapshot.profile_version <= 0:
        errors.add("split.source_profile_version", "required with source_profile, positive")
    if len(split.moved_events) > MAX_MOVED_EVENTS:
        errors.add("split.moved_events", f"at most {MAX_MOVED_EVENTS}")
    for index, event in enumerate(split.moved_events):
        if not event.source or not event.message_id:
            errors.add(f"split.moved_events[{index}].record_ref", "required (idempotency key)")
        if not event.event_type:
            errors.add(f"split.moved_events[{index}].event_type", "required")


def _check_event_columns(columns: EventColumns, errors: ViolationCollector) -> None:
    """Every event names its record and its type: whole columns searched at C speed,
    nothing per event."""
    for name, column in (("source", columns.source), ("message_id", columns.message_id)):
        if "" in column:
            errors.add(
                f"new_event_columns.{name}[{list(column).index('')}]",
                "required (idempotency key)",
            )
    if "" in columns.event_type:
        errors.add(
            f"new_event_columns.event_type[{list(columns.event_type).index('')}]", "required"
        )


async def _with_rfm_scores(tx: SegmentationUnit, members: list[Member]) -> list[Member]:
    """Members of RFM built-ins with the scores their class comes from (one more read, only
    when there are such members)."""
    if not members:
        return members
    segments = await tx.load_segments()
    cutoffs = {
        segment_id: RfmCutoffs.from_state(segment.state)
        for segment_id, segment in segments.items()
        if segment.definition.builtin == Builtin.RFM
    }
    scored = [m for m in members if cutoffs.get(m.segment_id) is not None]
    if not scored:
        return members
    inputs = await tx.rfm_inputs(sorted({m.customer_id for m in scored}))
    out = []
    for member in members:
        found = cutoffs.get(member.segment_id)
        values = inputs.get(member.customer_id)
        if found is not None and values is not None:
            member = replace(member, rfm_scores=found.scores(*values))
        out.append(member)
    return out


def _definitions(segments: dict[str, Segment]) -> dict[str, SegmentDefinition]:
    return {k: v.definition for k, v in segments.items()}


def dependents_of(targets: set[str], segments: dict[str, Segment]) -> set[str]:
    """The targets and every segment that refers to one of them, directly or not."""
    out = set(targets)
    grew = True
    while grew:
        grew = False
        for segment_id, segment in segments.items():
            if segment_id not in out and segment.definition.references() & out:
                out.add(segment_id)
                grew = True
    return out


def dependency_order(ids: set[str], segments: dict[str, Segment]) -> list[str]:
    """Referenced segments before the ones referring to them."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(segment_id: str) -> None:
        if segment_id in seen or segment_id not in segments:
            return
        seen.add(segment_id)
        for ref in sorted(segments[segment_id].definition.references()):
            visit(ref)
        if segment_id in ids:
            order.append(segment_id)

    for segment_id in sorted(ids):
        visit(segment_id)
    return order


def _canonical(change: ProfileChange, customer_id: str, merged_ids: tuple[str, ...]) -> bool:
    """Whether the change already names its customers as parsed (canonical ids throughout)."""
    return (
        change.customer_id == customer_id
        and change.merged_customer_ids == merged_ids
        and (change.snapshot is None or change.snapshot.customer_id == customer_id)
        and (change.metrics is None or change.metrics.customer_id == customer_id)
    )


class FeedSignal:
    """Wakes watchers after a local commit wrote membership events (polling covers peers)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout_s)


# Profile announces up to 1,000 changes a call: two batches of 500 written at once
# (docs/performance.md, session 43).
MAX_CHANGES_PER_BATCH = 500


def change_batcher(
    apply: Callable[[list[ProfileChange]], Awaitable[list[ChangeOutcome]]],
    *,
    max_batch: int = MAX_CHANGES_PER_BATCH,
    workers: int = 2,
) -> GroupCommitBatcher[ProfileChange, ChangeOutcome]:
    """Concurrent profile changes applied together, one transaction for many
    (svod_runtime.batching). Batches in flight never share a customer (the changed one, those
    merged into it, the one split off), so one customer's changes keep their order."""
    return GroupCommitBatcher(
        apply, keys=lambda change: change.customer_ids, max_batch=max_batch, workers=workers
    )


# (segment id, ENTER or EXIT) -> members that entered or left it.
MembershipCounts = Counter[tuple[str, str]]
ENTER, EXIT = "enter", "exit"


def membership_changes(evaluations: Iterable[Evaluation]) -> MembershipCounts:
    """What evaluations changed, per segment; a new label is an exit and an enter, as the
    membership events record it."""
    changes: MembershipCounts = Counter()
    for ev in evaluations:
        for segment_id in set(ev.was_in) | set(ev.now_in):
            before, after = ev.was_in.get(segment_id), ev.now_in.get(segment_id)
            if before == after:
                continue
            if before is not None:
                changes[(segment_id, EXIT)] += 1
            if after is not None:
                changes[(segment_id, ENTER)] += 1
    return changes


class SegmentationService:
    def __init__(
        self,
        store: SegmentationRepository,
        clock: Clock = utc_now,
        *,
        feed_poll_s: float = 0.2,
        max_batch: int = MAX_CHANGES_PER_BATCH,
        on_memberships: Callable[[MembershipCounts], None] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.feed_poll_s = feed_poll_s
        self.signal = FeedSignal()
        self._batcher = change_batcher(self._apply_batch, max_batch=max_batch)
        # Told, after each commit, how many members entered and left which segments (metrics).
        self.on_memberships = on_memberships

    def _report(self, counts: MembershipCounts) -> None:
        if self.on_memberships is not None and counts:
            self.on_memberships(counts)

    # -- definitions ---------------------------------------------------------------------
    async def create_segment(self, segment: Segment, actor: str = "") -> Segment:
        check_descriptions(segment.display_name, segment.description)
        now = self.clock()
        trained = await self._train_new(segment, now, create=True)
        async with self.store.transaction() as tx:
            await tx.lock_for_recompute()
            segments = await tx.load_segments()
            if segment.segment_id in segments:
                raise AlreadyExists(f"segment {segment.segment_id!r} exists")
            validate_definition(
                segment.definition, _definitions(segments), declared=self.store.declared
            )
            try:
                saved = await tx.save_segment(segment, create=True, actor=actor)
            except KeyError:
                raise AlreadyExists(f"segment {segment.segment_id!r} exists") from None
            segments[saved.segment_id] = saved
            await self._store_trained(tx, trained, segments)
            changes: MembershipCounts = Counter()
            await self._recompute_in(tx, {saved.segment_id}, segments, now, changes)
            counts = await tx.member_counts([saved.segment_id])
        self._after_commit(definitions_changed=True)
        self._report(changes)
        return replace(segments[saved.segment_id], member_count=counts.get(saved.segment_id, 0))

    async def update_segment(
        self, segment: Segment, expected_version: int, actor: str = ""
    ) -> Segment:
        check_descriptions(segment.display_name, segment.description)
        now = self.clock()
        trained = await self._train_new(segment, now, create=False)
        async with self.store.transaction() as tx:
            await tx.lock_for_recompute()
            segments = await tx.load_segments()
            current = segments.get(segment.segment_id)
            if current is None:
                raise NotFound(f"no segment {segment.segment_id!r}")
            if expected_version and expected_version != current.version:
                raise FailedPrecondition(
                    f"segment {segment.segment_id!r} is at version {current.version}, "
                    f"not {expected_version}"
                )
            others = {k: v for k, v in _definitions(segments).items() if k != segment.segment_id}
            validate_definition(segment.definition, others, declared=self.store.declared)
            saved = await tx.save_segment(segment, create=False, actor=actor)
            segments = await tx.load_segments()
            await self._store_trained(tx, trained, segments)
            touched = dependents_of({saved.segment_id}, segments)
            changes: MembershipCounts = Counter()
            await self._recompute_in(tx, touched, segments, now, changes)
            counts = await tx.member_counts([saved.segment_id])
        self._after_commit(definitions_changed=True)
        self._report(changes)
        return replace(segments[saved.segment_id], member_count=counts.get(saved.segment_id, 0))

    async def delete_segment(
        self, segment_id: str, scope: Scope = UNRESTRICTED, actor: str = ""
    ) -> None:
        scope.require(segment_id)
        async with self.store.transaction() as tx:
            await tx.lock_for_recompute()
            segments = await tx.load_segments()
            if segment_id not in segments:
                raise NotFound(f"no segment {segment_id!r}")
            users = sorted(
                k for k, v in segments.items() if segment_id in v.definition.references()
            )
            if users:
                raise FailedPrecondition(
                    f"segment {segment_id!r} is used by {', '.join(users)}; change them first"
                )
            ended = await tx.delete_segment(segment_id, self.clock(), actor)
            await tx.drop_scores(segment_id)
        self._after_commit(definitions_changed=True)
        self._report(Counter({(segment_id, EXIT): ended}))

    async def get_segment(self, segment_id: str, scope: Scope = UNRESTRICTED) -> Segment:
        scope.require(segment_id)
        async with self.store.transaction() as tx:
            segments = await tx.load_segments()
            if segment_id not in segments:
                raise NotFound(f"no segment {segment_id!r}")
            counts = await tx.member_counts([segment_id])
        return replace(segments[segment_id], member_count=counts.get(segment_id, 0))

    async def list_segments(
        self, after: str, limit: int, scope: Scope = UNRESTRICTED
    ) -> tuple[list[Segment], str]:
        limit = bounds.page_size(limit, 100, MAX_PAGE)
        async with self.store.transaction() as tx:
            segments = await tx.load_segments()
            ids = [s for s in sorted(segments) if s > after and scope.allows(s)]
            page = ids[:limit]
            counts = await tx.member_counts(page)
        next_token = page[-1] if len(ids) > limit else ""
        return [replace(segments[s], member_count=counts.get(s, 0)) for s in page], next_token

    async def preview(
        self, rule: Rule | None, sample: int, scope: Scope = UNRESTRICTED
    ) -> tuple[int, list[str]]:
        sample = 10 if sample <= 0 else min(sample, 100)
        async with self.store.transaction() as tx:
            segments = await tx.load_segments()
            validate_preview(rule, _definitions(segments), self.store.declared)
            assert rule is not None
            for ref in sorted(referenced_segments(rule)):
                scope.require(ref)
            await tx.bulk_settings()
            # A principal limited to segments counts and sees only their members.
            within = None if scope.segments is None else sorted(scope.segments)
            return await tx.preview(rule, segments, self.clock(), sample, within)

    async def recompute(self, segment_ids: list[str]) -> RecomputeOutcome:
        started = time.perf_counter()
        async with self.store.transaction() as tx:
            before = await tx.load_segments()
        trained: Trained = {}
        missing = [s for s in segment_ids if s not in before]
        if not missing:
            # Look-alikes learn again (outside the lock: training reads, then takes seconds).
            for segment_id in sorted(dependents_of(set(segment_ids or before), before)):
                segment = before[segment_id]
                if segment.definition.builtin in MODEL_BUILTINS:
                    trained.update(await self._train(segment, self.clock()))
        async with self.store.transaction() as tx:
            await tx.lock_for_recompute()
            segments = await tx.load_segments()
            missing = [s for s in segment_ids if s not in segments]
            if missing:
                raise NotFound(f"no segment {missing[0]!r}")
            targets = dependents_of(set(segment_ids or segments), segments)
            await self._store_trained(tx, trained, segments)
            changes: MembershipCounts = Counter()
            entered, exited = await self._recompute_in(tx, targets, segments, self.clock(), changes)
        self._after_commit(definitions_changed=True)
        self._report(changes)
        return RecomputeOutcome(entered, exited, time.perf_counter() - started)

    async def recompute_builtins(self) -> RecomputeOutcome:
        """Refreshes the population-relative built-ins (and what depends on them)."""
        async with self.store.transaction() as tx:
            segments = await tx.load_segments()
        stateful = [
            k
            for k, v in segments.items()
            if v.definition.builtin in (*STATEFUL_BUILTINS, *MODEL_BUILTINS)
        ]
        if not stateful:
            return RecomputeOutcome(0, 0, 0.0)
        return await self.recompute(stateful)

    async def _recompute_in(
        self,
        tx: SegmentationUnit,
        targets: set[str],
        segments: dict[str, Segment],
        now: dt.datetime,
        changes: MembershipCounts | None = None,
    ) -> tuple[int, int]:
        # Built-in cut-offs first, in dependency order (a population may use another
        # built-in's classes); then every target is evaluated in one pass and diffed in order.
        # Predicates never read memberships, so this equals recomputing one by one.
        order = dependency_order(targets, segments)
        await tx.bulk_settings()
        for segment_id in order:
            segment = segments[segment_id]
            if segment.definition.builtin in STATEFUL_BUILTINS:
                state = await tx.builtin_state(segment, segments, now)
                state["computed_time"] = now.isoformat()
                await tx.save_state(segment_id, state)
                segments[segment_id] = replace(segment, state=state)
        per_segment: dict[str, tuple[int, int]] = {}
        entered, exited = await tx.recompute_many(order, segments, now, per_segment)
        await tx.bump_generation()
        if changes is not None:
            for segment_id, (came, left) in per_segment.items():
                changes[(segment_id, ENTER)] += came
                changes[(segment_id, EXIT)] += left
        return entered, exited

    # -- look-alikes ---------------------------------------------------------------------
    async def _train_new(self, segment: Segment, now: dt.datetime, *, create: bool) -> Trained:
        """Trains a look-alike being created or updated (others: nothing to do), after
        checking its definition, so a bad one is refused before any training."""
        if segment.definition.builtin not in MODEL_BUILTINS:
            return {}
        async with self.store.transaction() as tx:
            segments = await tx.load_segments()
        if create and segment.segment_id in segments:
            raise AlreadyExists(f"segment {segment.segment_id!r} exists")
        if not create and segment.segment_id not in segments:
            raise NotFound(f"no segment {segment.segment_id!r}")
        others = {k: v for k, v in _definitions(segments).items() if k != segment.segment_id}
        validate_definition(segment.definition, others, declared=self.store.declared)
        return await self._train(segment, now)

    async def _train(self, segment: Segment, now: dt.datetime) -> Trained:
        params = segment.definition.parameters
        async with self.store.transaction() as tx:
            seed = await tx.segment_members(params["seed"])
            population = (
                await tx.segment_members(params["population"]) if params.get("population") else None
            )
            rows = await tx.load_features(now, population)
        size = int(float(params.get("size") or 1000))
        min_score = float(params.get("min_score") or 0.0)
        started = time.perf_counter()
        try:
            result = await asyncio.to_thread(train_and_score, rows, set(seed), size, min_score)
        except SeedTooSmall as error:
            raise FailedPrecondition(
                f"segment {params['seed']!r} is too small a seed to learn from ({error})"
            ) from None
        state: dict[str, object] = {
            "computed_time": now.isoformat(),
            "seed_size": result.seed_size,
            "scored": result.scored,
            "chosen": len(result.chosen),
            "lowest_chosen_score": round(result.chosen[-1][1], 6) if result.chosen else None,
            "training_seconds": round(time.perf_counter() - started, 3),
            "drivers": [
                {
                    "feature": d.feature,
                    "weight": d.weight,
                    "seed_mean": d.seed_mean,
                    "base_mean": d.base_mean,
                }
                for d in result.drivers
            ],
        }
        return {segment.segment_id: (result.chosen, state)}

    @staticmethod
    async def _store_trained(
        tx: SegmentationUnit, trained: Trained, segments: dict[str, Segment]
    ) -> None:
        for segment_id, (chosen, state) in trained.items():
            if segment_id not in segments:
                continue
            await tx.replace_scores(segment_id, chosen)
            await tx.save_state(segment_id, state)
            segments[segment_id] = replace(segments[segment_id], state=state)

    def _after_commit(self, *, definitions_changed: bool = False) -> None:
        if definitions_changed:
            self.store.definitions_changed()
        self.signal.notify()

    # -- incremental ---------------------------------------------------------------------
    async def apply_change(self, change: ProfileChange) -> ChangeOutcome:
        return await self._batcher.submit(self._checked_change(change))

    async def apply_changes(
        self, changes: Sequence[ProfileChange]
    ) -> list[ChangeOutcome | Exception]:
        """Applies changes as ``apply_change`` does each, submitted together (in the order
        given, so one customer's changes keep it); each gets its outcome or its own error.
        (A task per change awaiting ``apply_change`` was a fifth of segmentation's CPU per
        change: docs/performance.md, "Profile and segmentation CPU per message".)"""
        outcomes: list[ChangeOutcome | Exception | None] = [None] * len(changes)
        checked: list[ProfileChange] = []
        positions: list[int] = []
        for index, change in enumerate(changes):
            try:
                checked.append(self._checked_change(change))
            except SvodError as error:
                outcomes[index] = error
            else:
                positions.append(index)
        for index, outcome in zip(positions, await self._batcher.submit_many(checked), strict=True):
            outcomes[index] = outcome
        return [o for o in outcomes if o is not None]

    def _checked_change(self, change: ProfileChange) -> ProfileChange:
        """The change with its customer ids canonical; INVALID_ARGUMENT when it is bad."""
        errors = ViolationCollector()
        if change.profile_version <= 0:
            errors.add("profile_version", "required, positive")
        for index, merged in enumerate(change.merged_customer_ids):
            if merged == change.customer_id:
                errors.add(f"merged_customer_ids[{index}]", "must not be the customer itself")
        for index, event in enumerate(change.events):
            if not event.source or not event.message_id:
                errors.add(f"new_events[{index}].record_ref", "required (idempotency key)")
            if not event.event_type:
                errors.add(f"new_events[{index}].event_type", "required")
        if change.event_columns is not None:
            _check_event_columns(change.event_columns, errors)
        if change.split is not None:
            _check_split(change, errors)
        errors.raise_if_any()
        customer_id = parse_customer_id(change.customer_id, "customer_id")
        merged_ids = tuple(
            parse_customer_id(m, f"merged_customer_ids[{i}]")
            for i, m in enumerate(change.merged_customer_ids)
        )
        split = change.split
        if split is None and _canonical(change, customer_id, merged_ids):
            # The ids as the profile service sends them: no copies (dataclasses.replace, of a
            # change and its snapshot, was 2.0-3.3% of segmentation's py-spy samples, self).
            return change
        if split is not None:
            source = parse_customer_id(split.source_customer_id, "split.source_customer_id")
            split = replace(
                split,
                source_customer_id=source,
                snapshot=None
                if split.snapshot is None
                else replace(split.snapshot, customer_id=source),
            )
        change = replace(
            change,
            customer_id=customer_id,
            merged_customer_ids=merged_ids,
            snapshot=None
            if change.snapshot is None
            else replace(change.snapshot, customer_id=customer_id),
            split=split,
            metrics=None
            if change.metrics is None
            else replace(change.metrics, customer_id=customer_id),
        )
        return change

    async def _apply_batch(self, changes: list[ProfileChange]) -> list[ChangeOutcome]:  # noqa: C901
        """Applies changes of distinct customers in one transaction (see change_batcher)."""
        now = self.clock()
        splits = [c for c in changes if c.split is not None]
        async with self.store.transaction() as tx:
            # Records split off into a customer merged away before make it one of its own again.
            await tx.unmerge([c.customer_id for c in splits])
            applied = await tx.upsert_customers(
                [c.snapshot for c in changes if c.snapshot is not None]
                + [c.split.snapshot for c in splits if c.split and c.split.snapshot]
            )
            applied |= await tx.update_metrics(
                [c.metrics for c in changes if c.snapshot is None and c.metrics is not None]
            )
            states = await tx.customer_states(
                [c.customer_id for c in changes if c.customer_id not in applied]
            )
            targets: list[str | None] = []
            missing: list[str] = []
            for change in changes:
                target: str | None = change.customer_id
                if change.customer_id not in applied:
                    exists, merged_into, erased = states[change.customer_id]
                    if erased:
                        target = None
                    elif merged_into:
                        target = merged_into
                    elif not exists:
                        missing.append(change.customer_id)
                targets.append(target)
            await tx.ensure_customers(missing)
            await tx.add_events_many(
                [
                    (target, part)
                    for change, target in zip(changes, targets, strict=True)
                    if target is not None
                    for part in (change.events, change.event_columns)
                    if part
                ]
            )
            ids: list[str] = []
            for change, target in zip(changes, targets, strict=True):
                if target is None:
                    continue
                ids.append(target)
                if change.split is not None:
                    # The source is evaluated in the same step: no half-applied split is seen.
                    await tx.ensure_customers([change.split.source_customer_id])
                    await tx.move_events(target, change.split.moved_events)
                    ids.append(change.split.source_customer_id)
                if change.merged_customer_ids:
                    await tx.merge(target, change.merged_customer_ids)
                    ids.extend(change.merged_customer_ids)
            evaluations = await self._evaluate(tx, list(dict.fromkeys(ids)), now) if ids else []
        by_id = {e.customer_id: e for e in evaluations}
        outcomes = []
        for change, target in zip(changes, targets, strict=True):
            if target is None:
                outcomes.append(ChangeOutcome(False))
                continue
            mine = by_id.get(target)
            entered: tuple[str, ...] = ()
            exited: tuple[str, ...] = ()
            if mine is not None:
                entered = tuple(
                    sorted(s for s in mine.now_in if mine.was_in.get(s) != mine.now_in[s])
                )
                exited = tuple(
                    sorted(s for s in mine.was_in if mine.now_in.get(s) != mine.was_in[s])
                )
            outcomes.append(ChangeOutcome(change.customer_id in applied, entered, exited))
        if any(e.now_in != e.was_in for e in evaluations):
            self.signal.notify()
        self._report(membership_changes(evaluations))
        return outcomes

    async def _evaluate(
        self, tx: SegmentationUnit, ids: list[str], now: dt.datetime
    ) -> list[Evaluation]:
        evaluations = await tx.evaluate_current(ids, now)
        removed: list[tuple[str, str]] = []
        put: list[tuple[str, str, str]] = []
        events: list[tuple[str, str, MembershipKind, str]] = []
        for ev in evaluations:
            for segment_id in sorted(set(ev.was_in) | set(ev.now_in)):
                before, after = ev.was_in.get(segment_id), ev.now_in.get(segment_id)
                if before == after:
                    continue
                if before is not None:
                    events.append((segment_id, ev.customer_id, MembershipKind.EXITED, before))
                    if after is None:
                        removed.append((segment_id, ev.customer_id))
                if after is not None:
                    events.append((segment_id, ev.customer_id, MembershipKind.ENTERED, after))
                    put.append((segment_id, ev.customer_id, after))
        await tx.write_changes(removed, put, events, now)
        # Only the recheck times that moved are written.
        await tx.set_rechecks(
            {ev.customer_id: ev.due for ev in evaluations if ev.due != ev.recheck_due}
        )
        return evaluations

    async def sweep_once(self, limit: int = 500) -> int:
        """Re-evaluates customers whose time conditions are due; returns how many."""
        now = self.clock()
        async with self.store.transaction() as tx:
            ids = await tx.claim_due(now, limit)
            evaluations = await self._evaluate(tx, ids, now) if ids else []
        if any(e.now_in != e.was_in for e in evaluations):
            self.signal.notify()
        self._report(membership_changes(evaluations))
        return len(ids)

    async def run_sweeper(self, interval_s: float, limit: int = 500) -> None:
        """Background task: windows expire on time, not at the next batch."""
        while True:
            try:
                swept = await self.sweep_once(limit)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("expiry sweep failed")
                swept = 0
            if swept < limit:
                await asyncio.sleep(interval_s)

    async def run_recomputer(self, period_s: float) -> None:
        """Background task: refreshes RFM/ABC cut-offs and memberships periodically."""
        while True:
            await asyncio.sleep(period_s)
            try:
                outcome = await self.recompute_builtins()
                log.info(
                    "built-ins recomputed: %d entered, %d exited in %.1fs",
                    outcome.entered,
                    outcome.exited,
                    outcome.seconds,
                )
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("built-in recompute failed")

    async def erase_customer(self, customer_id: str) -> int:
        customer_id = parse_customer_id(customer_id, "customer_id")
        async with self.store.transaction() as tx:
            await tx.ensure_customer(customer_id)
            erased = await tx.erase(customer_id, self.clock())
        self.signal.notify()
        return erased

    # -- reads ---------------------------------------------------------------------------
    async def _require_segment(self, segment_id: str, scope: Scope) -> None:
        if not segment_id:
            raise InvalidArgument([FieldViolation("segment_id", "required")])
        scope.require(segment_id)
        async with self.store.transaction() as tx:
            if segment_id not in await tx.load_segments():
                raise NotFound(f"no segment {segment_id!r}")

    async def list_members(
        self, segment_id: str, after: str, limit: int, scope: Scope = UNRESTRICTED
    ) -> tuple[list[Member], str]:
        await self._require_segment(segment_id, scope)
        if after:
            after = parse_customer_id(after, "page_token")
        limit = bounds.page_size(limit, 100, MAX_PAGE)
        async with self.store.transaction() as tx:
            members = await tx.members(segment_id, after, limit + 1)
            members = await _with_rfm_scores(tx, members[: limit + 1])
        next_token = members[limit - 1].customer_id if len(members) > limit else ""
        return members[:limit], next_token

    async def export_members(
        self, segment_id: str, consent_channel: str, scope: Scope = UNRESTRICTED
    ) -> AsyncIterator[Member]:
        from svod_segmentation.domain.fields import CONSENT_CHANNELS

        if consent_channel and consent_channel not in CONSENT_CHANNELS:
            raise InvalidArgument(
                [FieldViolation("consent_channel", f"one of {', '.join(CONSENT_CHANNELS)}")]
            )
        await self._require_segment(segment_id, scope)
        after = ""
        while True:
            async with self.store.transaction() as tx:
                if consent_channel:
                    page = await tx.members_with_consent(
                        segment_id, consent_channel, after, MAX_PAGE
                    )
                else:
                    page = await tx.members(segment_id, after, MAX_PAGE)
                page = await _with_rfm_scores(tx, page)
            for member in page:
                yield member
            if len(page) < MAX_PAGE:
                return
            after = page[-1].customer_id

    async def customer_segments(
        self, customer_id: str, scope: Scope = UNRESTRICTED
    ) -> list[Member]:
        customer_id = parse_customer_id(customer_id, "customer_id")
        async with self.store.transaction() as tx:
            if await tx.is_erased(customer_id):
                raise NotFound(f"customer {customer_id} was erased")
            current = await tx.current_id(customer_id)
            members = await tx.customer_memberships(current)
            members = await _with_rfm_scores(tx, members)
        return [m for m in members if scope.allows(m.segment_id)]

    async def watch(
        self, segment_ids: list[str], resume_token: str, scope: Scope = UNRESTRICTED
    ) -> AsyncIterator[MembershipEvent]:
        if len(segment_ids) > MAX_WATCHED:
            raise InvalidArgument([FieldViolation("segment_ids", f"at most {MAX_WATCHED:,}")])
        for segment_id in segment_ids:
            scope.require(segment_id)
        position = decode_position(resume_token) if resume_token else None
        only: list[str] | None = list(segment_ids) if segment_ids else None
        if only is None and scope.segments is not None:
            only = sorted(scope.segments)
        if position is None:
            async with self.store.transaction() as tx:
                position = await tx.feed_start()
        while True:
            async with self.store.transaction() as tx:
                batch = await tx.feed(position, only, FEED_BATCH)
            for event in batch:
                yield event
                position = event.position
            if len(batch) < FEED_BATCH:
                await self.signal.wait(self.feed_poll_s)
