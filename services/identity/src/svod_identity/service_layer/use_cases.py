"""Identity use cases: each runs in one transaction of the identity store."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from svod_identity.domain.announcements import MERGED_TOPIC, SPLIT_TOPIC
from svod_identity.domain.engine import (
    MAX_CHECK_RECORDS,
    GraphState,
    KnownRecord,
    Placement,
    Resolver,
    footprint,
    record_lock_key,
    split_independent,
)
from svod_identity.domain.explain import (
    Decision,
    Evidence,
    OpenReview,
    SharedIdentifier,
    explain_apart,
    explain_customer,
    explain_pair,
)
from svod_identity.domain.identifiers import (
    BlockReason,
    IdentifierKey,
    normalize_identifiers,
    normalize_one,
)
from svod_identity.domain.ledger import NO_CUSTOMER, LedgerKind
from svod_identity.domain.lookup import IdentifierAnswer, IdentifierState, Lookups, answers_for
from svod_identity.domain.matching.autofit import (
    AUTOMATIC_FIT_ACTOR,
    STARTING_MODEL_ACTOR,
    AutoFitPolicy,
    looked_at,
    reresolution_job_id,
)
from svod_identity.domain.matching.compare import compare_records
from svod_identity.domain.matching.em import estimate_model
from svod_identity.domain.matching.frequencies import term_frequencies
from svod_identity.domain.matching.model import MatchModel, default_model, starting_model
from svod_identity.domain.matching.scoring import conflicts, score_pair
from svod_identity.domain.model import CustomerView, Erasure, IncomingRecord, RecordRef
from svod_identity.domain.preview import (
    PreviewResult,
    compare_clusterings,
    identifier_changes,
    keep_decisions,
    name_proposed,
)
from svod_identity.domain.review import SIDE_RECORDS, ReviewState, Side, field_comparison, side
from svod_identity.domain.rules import Rules, default_rules, rules_from_dict
from svod_identity.domain.split import alias_sides
from svod_identity.service_layer.ports import IdentityRepository, IdentityUnit
from svod_runtime import bounds
from svod_runtime.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    ViolationCollector,
)
from svod_runtime.ids import MUST_BE_UUID, is_uuid, parse_uuid
from svod_runtime.paging import (
    NOT_A_TOKEN,
    decode_page_token,
    encode_page_token,
    token_time,
)
from svod_runtime.priority import step_aside

__all__ = ["MERGED_TOPIC", "SPLIT_TOPIC", "IdentityService"]


# How long a process trusts its cached rules and model (other replicas may change them).
CACHE_TTL_S = 2.0
# Records resolved per transaction in ResolveBatch.
BATCH_CHUNK = 500
# Transactions one ResolveBatch keeps running at once (see resolve_batch).
CHUNKS_IN_FLIGHT = 2
MAX_PAGE = 1000
# Customers one MergeCustomers call may name.
MAX_MERGE = 100
# A match model's JSON (RefitMatchModel.model_json): a stored model is a few KiB.
MAX_MODEL_JSON = 1_000_000
DEFAULT_PAGE = 100
# PreviewRules in the service's own process (a service without a batch worker: tests of the
# use cases) re-resolves at most this many records; the gRPC service runs it as a job of the
# batch worker (``BulkJobs.preview``), with no cap.
MAX_PREVIEW_RECORDS = 200_000
MAX_REFIT_PAIRS = 200_000
# Candidate pairs of an automatic fit: EM's sample at each doubling of the graph.
AUTOFIT_PAIRS = 50_000
# What the ledger records.
LEDGER_KINDS = frozenset(kind.value for kind in LedgerKind)


async def _placed(resolver: Resolver, chunk: Sequence[IncomingRecord]) -> list[Placement]:
    """``resolver.resolve`` of every record in order, stepping aside between records for
    single calls (svod_runtime.priority; the resolver's state is this chunk's own): placing a
    500-record chunk in one go held the event loop for its whole matching time, and a single
    Resolve arriving meanwhile (an interactive Identify during a bulk import, issue #20)
    waited for all of it."""
    done: list[Placement] = []
    for record in chunk:
        await step_aside()
        done.append(resolver.resolve(record))
    return done


async def _estimated(
    pairs: Sequence[tuple[KnownRecord, KnownRecord]],
    written: dict[str, list[tuple[str, int]]],
    current: MatchModel,
) -> MatchModel:
    """The model EM estimates from ``pairs`` (unlabelled candidate pairs), with the term
    frequencies of ``written`` and ``current``'s thresholds (the operator's choice): a refit's
    and an automatic fit's. Seconds of CPU on a large graph (10.3 s for 210,000 pairs,
    autofit.py), so the service's calls go on meanwhile: the comparisons in the event loop's
    thread between ``step_aside()`` yields (the comparison caches are shared with the resolver
    and not safe from another thread: a fit comparing in a worker thread broke a ResolveBatch
    beside it), EM's iterations (pure arithmetic over the comparisons) in a thread."""
    comparisons = []
    for a, b in pairs:
        await step_aside()
        comparisons.append(compare_records(a.person, b.person))
    model = await asyncio.to_thread(estimate_model, comparisons, default_model())
    # In a thread too (its name, city and e-mail readings are lru_caches, safe there): at a
    # million records counting them took 8.5 s of CPU, the event loop's otherwise.
    frequencies = await asyncio.to_thread(term_frequencies, written)
    model = replace(model, term_frequencies=frequencies)
    return model.with_thresholds(current.link_threshold, current.review_threshold)


async def fit_inputs(
    unit: IdentityUnit, records: int
) -> tuple[list[tuple[KnownRecord, KnownRecord]], dict[str, list[tuple[str, int]]]]:
    """What an automatic fit estimates from, in the graph ``unit`` sees (of ``records``
    records): ``AUTOFIT_PAIRS`` candidate pairs and the written values' counts."""
    pairs = await unit.export.sample_candidate_pairs(AUTOFIT_PAIRS, records)
    return pairs, await unit.export.value_counts()


async def auto_fitted(
    inputs: tuple[list[tuple[KnownRecord, KnownRecord]], dict[str, list[tuple[str, int]]]],
    records: int,
    current: MatchModel,
    policy: AutoFitPolicy,
) -> MatchModel:
    """The model an automatic fit estimates from ``fit_inputs``, with ``current``'s
    thresholds: the service's own, and an import's between its windows
    (service_layer/import_fits.py); ``current`` again, marked with the graph's size, where
    EM found too few matches to estimate from (``AutoFitPolicy.stands``)."""
    pairs, written = inputs
    fitted = replace(await _estimated(pairs, written, current), fitted_records=records)
    return fitted if policy.stands(fitted) else looked_at(current, records)


async def store_automatic_fit(
    unit: IdentityUnit, model: MatchModel, fitted_over: int, reresolve: bool = False
) -> tuple[int, dt.datetime] | None:
    """Stores ``model`` as identity's own fit (version and time), unless the model in force is
    no longer version ``fitted_over``, the one it was fitted over: an operator's model, or
    another replica's fit, came first. Locked, so no operator's model lands in between.
    ``reresolve`` (``AutoFitPolicy.reresolves``): queues a re-resolution of the graph in the
    same transaction (``autofit.reresolution_job_id``), so a fit stored is never without it."""
    await unit.settings.lock_models()
    stored = await unit.settings.current_model()
    if (stored[0] if stored is not None else 0) != fitted_over:
        return None
    version, at = await unit.settings.store_model(
        model.to_dict(), model.trained_pairs, AUTOMATIC_FIT_ACTOR
    )
    if reresolve:
        await unit.settings.queue_reresolution(
            reresolution_job_id(version),
            AUTOMATIC_FIT_ACTOR,
            f"match model {version} fitted automatically at {model.fitted_records} records",
        )
    return version, at


@dataclass(frozen=True)
class ReviewView:
    """A review item as a reviewer sees it: the stored item and both sides now."""

    row: Any
    record_side: Side
    candidate_side: Side
    fields: dict[str, str]


@dataclass(frozen=True)
class ModelInfo:
    version: int
    model: MatchModel
    trained_pairs: int
    created_at: dt.datetime | None
    created_by: str


@dataclass(frozen=True)
class AutoFitLook:
    """What one look for an automatic fit found: the model it fitted, if any, and how many
    records the graph lacks for the next one (None: no automatic fit is to come)."""

    fitted: ModelInfo | None
    records_to_go: int | None


def _check_uuid(value: str, field: str, errors: ViolationCollector) -> None:
    if not value:
        errors.add(field, "required")
    elif not is_uuid(value):
        errors.add(field, MUST_BE_UUID)


def _check_who(actor: str, reason: str, errors: ViolationCollector) -> None:
    """Who asked for a change and why: bounded text (they are kept in the ledger)."""
    bounds.check_text(actor, "actor", bounds.MAX_ACTOR, errors)
    bounds.check_text(reason, "reason", bounds.MAX_REASON, errors)


def _page_size(size: int) -> int:
    if size < 0:
        raise InvalidArgument([FieldViolation("page_size", "must not be negative")])
    return min(size or DEFAULT_PAGE, MAX_PAGE)


def ambiguity(answer: IdentifierAnswer) -> FailedPrecondition:
    """The refusal of a look-up by an identifier that names nobody on its own."""
    candidates = ",".join(answer.candidates)
    if answer.state is IdentifierState.SHARED:
        return FailedPrecondition(
            f"the identifier is shared by {len(answer.candidates)} customers and names none of "
            f"them on its own: candidates {', '.join(answer.candidates)}",
            reason="IDENTIFIER_SHARED",
            metadata={"candidate_customer_ids": candidates},
        )
    return FailedPrecondition(
        f"the identifier is blocked ({answer.blocked_reason}) and names nobody on its own",
        reason="IDENTIFIER_BLOCKED",
        metadata={"candidate_customer_ids": candidates, "blocked_reason": answer.blocked_reason},
    )


class IdentityService:
    def __init__(
        self, store: IdentityRepository, on_commit: Callable[[], None] | None = None
    ) -> None:
        self.store = store
        self._on_commit = on_commit or (lambda: None)
        self._rules: tuple[float, Rules] | None = None
        self._model: tuple[float, ModelInfo] | None = None
        # Records this service resolved (new or seen before): what the automatic fit's loop
        # watches to look at the graph as soon as a fit may be due (service_layer/autofit.py).
        self.records_resolved = 0

    # -- rules and model -------------------------------------------------------------------

    async def _load_rules(self, tx: IdentityUnit) -> Rules:
        stored = await tx.settings.current_rules()
        if stored is None:
            return default_rules()
        version, body, at, actor = stored
        return rules_from_dict(body).with_version(version, at, actor)

    async def rules(self) -> Rules:
        cached = self._rules
        if cached is not None and time.monotonic() - cached[0] < CACHE_TTL_S:
            return cached[1]
        async with self.store.transaction() as tx:
            rules = await self._load_rules(tx)
        # An update may have landed while we read: never put an older version back over it.
        newer = self._rules
        if newer is not None and newer[1].version > rules.version:
            return newer[1]
        self._rules = (time.monotonic(), rules)
        return rules

    async def model_info(self) -> ModelInfo:
        cached = self._model
        if cached is not None and time.monotonic() - cached[0] < CACHE_TTL_S:
            return cached[1]
        async with self.store.transaction() as tx:
            stored = await tx.settings.current_model()
        if stored is None:
            info = ModelInfo(0, starting_model(), 0, None, STARTING_MODEL_ACTOR)
        else:
            version, body, pairs, at, actor = stored
            info = ModelInfo(version, MatchModel.from_dict(body), pairs, at, actor)
        newer = self._model
        if newer is not None and newer[1].version > info.version:
            return newer[1]
        self._model = (time.monotonic(), info)
        return info

    async def get_rules(self) -> Rules:
        self._rules = None
        return await self.rules()

    async def update_rules(self, body: dict[str, Any], expected_version: int, actor: str) -> Rules:
        if not actor:
            raise InvalidArgument([FieldViolation("actor", "required")])
        errors = ViolationCollector()
        _check_who(actor, "", errors)
        errors.raise_if_any()
        candidate = rules_from_dict(body)

        async def work(tx: IdentityUnit) -> Rules:
            await tx.settings.lock_rules()
            current = await self._load_rules(tx)
            if expected_version != current.version:
                raise FailedPrecondition(
                    f"rules are at version {current.version}, not {expected_version}: "
                    "re-read them and apply the change again"
                )
            version = current.version + 1
            at = await tx.settings.store_rules(version, candidate.to_dict(), actor)
            await tx.ledger.append(
                LedgerKind.RULES_UPDATED,
                NO_CUSTOMER,
                detail={"version": version},
                actor=actor,
            )
            await tx.announcements.announce_changed((), everything=True)
            return candidate.with_version(version, at, actor)

        rules = await self.store.run(work)
        self._rules = (time.monotonic(), rules)
        return rules

    async def get_model(self) -> ModelInfo:
        self._model = None
        return await self.model_info()

    async def refit_model(
        self, max_pairs: int, dry_run: bool, actor: str, model_json: str = ""
    ) -> ModelInfo:
        if max_pairs < 0 or max_pairs > MAX_REFIT_PAIRS:
            raise InvalidArgument(
                [FieldViolation("max_pairs", f"must be between 0 and {MAX_REFIT_PAIRS}")]
            )
        if not dry_run and not actor:
            raise InvalidArgument([FieldViolation("actor", "required unless dry_run")])
        errors = ViolationCollector()
        _check_who(actor, "", errors)
        bounds.check_text(model_json, "model_json", MAX_MODEL_JSON, errors)
        errors.raise_if_any()
        if model_json:
            try:
                model = MatchModel.from_json(model_json)
            except (ValueError, KeyError, TypeError, AttributeError) as error:
                raise InvalidArgument(
                    [FieldViolation("model_json", f"not a match model: {error}")]
                ) from error
        else:
            async with self.store.transaction() as tx:
                records = await tx.export.count_records()
                pairs = await tx.export.sample_candidate_pairs(max_pairs or 20_000, records)
                written = await tx.export.value_counts()
            current = await self.model_info()
            model = await _estimated(pairs, written, current.model)
        if dry_run:
            return ModelInfo(0, model, model.trained_pairs, None, actor)
        async with self.store.transaction() as tx:
            # After an automatic fit's check of the version in force, never between it and its
            # write: the operator's model is the newer one.
            await tx.settings.lock_models()
            version, at = await tx.settings.store_model(model.to_dict(), model.trained_pairs, actor)
        info = ModelInfo(version, model, model.trained_pairs, at, actor)
        self._model = (time.monotonic(), info)
        return info

    async def autofit_model(self, policy: AutoFitPolicy) -> ModelInfo | None:
        """Fits and stores the match model from the graph's own records when ``policy`` says
        one is due (``domain/matching/autofit.py``): EM over a sample of candidate pairs and
        the term frequencies, as ``RefitMatchModel``, with the thresholds in force. None when
        none is due, or when another model was stored while this one was fitted."""
        return (await self.look_for_autofit(policy)).fitted

    async def look_for_autofit(self, policy: AutoFitPolicy) -> AutoFitLook:
        """``autofit_model``, with how many records the graph still lacked for a fit when none
        was due (None: none will be, an operator's model is in force)."""
        current = await self.model_info()
        if not policy.may_replace(current.created_by):
            return AutoFitLook(None, None)
        async with self.store.transaction() as tx:
            records = await tx.export.count_records()
        if not policy.due(records, current.model, current.created_by):
            return AutoFitLook(None, policy.next_fit_at(current.model) - records)
        async with self.store.transaction() as tx:
            inputs = await fit_inputs(tx, records)
        model = await auto_fitted(inputs, records, current.model, policy)
        reresolve = policy.reresolves(model, current.model)
        async with self.store.transaction() as tx:
            stored = await store_automatic_fit(tx, model, current.version, reresolve)
        if stored is None:
            return AutoFitLook(None, None)
        version, at = stored
        info = ModelInfo(version, model, model.trained_pairs, at, AUTOMATIC_FIT_ACTOR)
        self._model = (time.monotonic(), info)
        return AutoFitLook(info, policy.next_fit_at(model) - records)

    # -- resolution ------------------------------------------------------------------------

    async def resolve(self, record: IncomingRecord) -> Placement:
        """Links a record to a customer; a record seen before returns its current customer."""
        (placement,) = await self.resolve_batch([record])
        return placement

    async def resolve_batch(self, records: Sequence[IncomingRecord]) -> list[Placement]:
        """Resolves records in import order, about ``BATCH_CHUNK`` per transaction.

        Matching a chunk overlaps the database's work on the ones before (up to
        ``CHUNKS_IN_FLIGHT`` transactions at once): the records of a chunk with nothing in
        common with the chunks being written (``engine.footprint``: records, identifiers, every
        blocking key a record may get) start at once, the others wait and go with the next
        chunk (``split_independent``). So records sharing a record, an identifier or a
        possible blocking key are placed in import order. Two records that only meet through
        an existing customer both link to (by different identifiers) are kept apart in time by
        that customer's row lock, in the order their transactions reach it, as records of two
        concurrent imports are. Should a transaction fail, those beside it are still completed
        (a retried import finds their records resolved) and the failure is raised.
        """
        rules = await self.rules()
        model = (await self.model_info()).model.with_thresholds(
            rules.auto_link_threshold, rules.review_threshold
        )
        if len(records) <= BATCH_CHUNK:
            return await self._resolve_chunk(records, rules, model)
        placed: dict[int, Placement] = {}
        prints: dict[int, frozenset[str]] = {}
        writing: deque[tuple[asyncio.Task[dict[int, Placement]], set[str]]] = deque()
        waiting: list[int] = []
        try:
            for start in range(0, len(records), BATCH_CHUNK):
                if len(writing) >= CHUNKS_IN_FLIGHT:
                    placed.update(await writing.popleft()[0])
                positions = waiting + list(range(start, min(start + BATCH_CHUNK, len(records))))
                for position in positions:
                    if position not in prints:
                        # A stream's footprints ran up to 58 ms in one stretch under an import,
                        # a single Resolve waiting (docs/performance.md, "Long stretches").
                        await step_aside()
                        prints[position] = footprint(records[position])
                while True:
                    busy = {token for _, tokens in writing for token in tokens}
                    now, later = split_independent([prints[p] for p in positions], busy)
                    if now or not writing:
                        break
                    # Every record waits on what is being written (one identifier on all of
                    # them, say): let it finish rather than carry ever more records along.
                    placed.update(await writing.popleft()[0])
                chosen = [positions[i] for i in now]
                waiting = [positions[i] for i in later]
                if chosen:
                    task = asyncio.create_task(
                        self._resolve_positions(records, chosen, rules, model)
                    )
                    writing.append((task, {token for p in chosen for token in prints[p]}))
            while writing:
                placed.update(await writing.popleft()[0])
            for start in range(0, len(waiting), BATCH_CHUNK):
                placed.update(
                    await self._resolve_positions(
                        records, waiting[start : start + BATCH_CHUNK], rules, model
                    )
                )
        finally:
            # After a failure, the transactions already running are let finish.
            await asyncio.gather(*(task for task, _ in writing), return_exceptions=True)
        return [placed[position] for position in range(len(records))]

    async def _resolve_positions(
        self,
        records: Sequence[IncomingRecord],
        positions: Sequence[int],
        rules: Rules,
        model: MatchModel,
    ) -> dict[int, Placement]:
        chunk = [records[position] for position in positions]
        return dict(zip(positions, await self._resolve_chunk(chunk, rules, model), strict=True))

    async def _resolve_chunk(
        self, chunk: Sequence[IncomingRecord], rules: Rules, model: MatchModel
    ) -> list[Placement]:
        announced = False

        async def work(tx: IdentityUnit) -> list[Placement]:
            nonlocal announced
            locks = [record_lock_key(r.ref) for r in chunk]
            locks += [k.lock_key for r in chunk for k in r.identifiers]
            fuzzy = not rules.fuzzy_disabled
            # Every record's candidates: fuzzy matching runs after exact links too (see
            # ``Resolver.fuzzy_after_exact``).
            wanted: set[RecordRef] = {r.ref for r in chunk} if fuzzy else set()
            state = await tx.loader.load_state(
                chunk, rules, fuzzy=fuzzy, candidates_for=wanted, model=model, lock_keys=locks
            )
            resolver = Resolver(state, rules, model)
            done = await _placed(resolver, chunk)
            while resolver.incomplete and not wanted.issuperset(resolver.incomplete):
                # Some record fell back to fuzzy matching after its identifiers' owners
                # were refused: load its candidates too and place the chunk again.
                wanted |= set(resolver.incomplete)
                state = await tx.loader.load_state(
                    chunk, rules, fuzzy=fuzzy, candidates_for=wanted, model=model
                )
                resolver = Resolver(state, rules, model)
                done = await _placed(resolver, chunk)
            pks = await tx.writes.apply(resolver.changes, state.free_pks)
            changes = resolver.changes
            announced = bool(changes.merges or changes.reviews or changes.blocked)
            return [
                replace(
                    p,
                    customer_id=state.find(p.customer_id),
                    record_pk=pks.get(p.record_pk, p.record_pk),
                )
                for p in done
            ]

        placed = await self.store.run(work)
        self.records_resolved += len(chunk)
        if announced:
            self._on_commit()
        return placed

    async def preview_rules(self, body: dict[str, Any]) -> PreviewResult:
        candidate = rules_from_dict(body)
        model = (await self.model_info()).model
        async with self.store.transaction() as tx:
            total = await tx.export.count_records()
            if total > MAX_PREVIEW_RECORDS:
                raise FailedPrecondition(
                    f"the graph has {total} records; previews re-resolve at most "
                    f"{MAX_PREVIEW_RECORDS}"
                )
            rows = await tx.export.raw_records(MAX_PREVIEW_RECORDS)
            current_owners = await tx.export.all_identifier_owners()
            merges, apart = await tx.ledger.human_decisions()
            canonical = await tx.graph.current_ids({c for pair in apart for c in pair})
        kept_apart = {frozenset(canonical.get(c, c) for c in pair) for pair in apart}
        current: dict[int, str] = {}
        refs: dict[int, RecordRef] = {}
        incoming = []
        for row in rows:
            ref = RecordRef(row.source, row.message_id)
            refs[row.record_pk] = ref
            current[row.record_pk] = str(row.customer_id)
            incoming.append(
                IncomingRecord(
                    ref=ref,
                    channel=row.channel,
                    observed_at=row.observed_at,
                    identifiers=tuple(IdentifierKey(t, v, n) for t, n, v in row.identifiers),
                    attributes=dict(row.attributes or {}),
                )
            )
        clock = [dt.datetime(2000, 1, 1, tzinfo=dt.UTC)]

        def tick() -> dt.datetime:
            clock[0] += dt.timedelta(microseconds=1)
            return clock[0]

        resolver = Resolver(GraphState(), candidate, model, now=tick)
        proposed: dict[int, str] = {}
        unlinked: dict[IdentifierKey, str] = {}
        # The record whose placement gave each identifier its holder.
        linked_by: dict[IdentifierKey, int] = {}
        owners = resolver.state.owners
        for pk, record in zip(refs, incoming, strict=True):
            placement = resolver.resolve(record)
            proposed[pk] = placement.customer_id
            for key, why in placement.unlinked:
                unlinked.setdefault(key, why)
            for key in record.identifiers:
                if key not in linked_by and key in owners:
                    linked_by[key] = pk
        proposed = {pk: resolver.state.find(c) for pk, c in proposed.items()}
        # A person's merges and "keep apart" decisions stand whatever the rules say.
        proposed = keep_decisions(proposed, current, merges, kept_apart)
        changes = identifier_changes(
            current_owners,
            {key: proposed[pk] for key, pk in linked_by.items()},
            name_proposed(proposed, current),
            unlinked,
        )
        return replace(compare_clusterings(current, proposed, refs), identifier_changes=changes)

    # -- look-ups --------------------------------------------------------------------------

    async def identifier_answers(
        self, keys: Sequence[IdentifierKey]
    ) -> dict[IdentifierKey, IdentifierAnswer]:
        """What each identifier says about its customer (see ``domain/lookup.py``)."""
        distinct = list(dict.fromkeys(keys))
        return dict(zip(distinct, await self._answers(distinct), strict=True))

    async def _answers(self, keys: Sequence[IdentifierKey]) -> list[IdentifierAnswer]:
        """The answer for each of ``keys`` (distinct): one statement, and a second only when
        some identifier has recorded sharers."""
        rules = await self.rules()
        async with self.store.transaction() as tx:
            facts = await tx.graph.facts_by_position(keys)
            sharers = {s for _, shared, _ in facts.values() for s in shared}
            current = await tx.graph.current_ids(sharers) if sharers else {}
        return answers_for(keys, facts, rules.block_reason, current)

    async def lookup_by_identifier(self, raw: tuple[str, str, str]) -> CustomerView:
        (key,) = normalize_identifiers([raw], field="identifier")
        answer = (await self.identifier_answers([key]))[key]
        if answer.state is IdentifierState.SHARED or answer.state is IdentifierState.BLOCKED:
            raise ambiguity(answer)
        view = None
        if answer.state is IdentifierState.DECISIVE:
            async with self.store.transaction() as tx:
                view = await tx.graph.customer_view(answer.customer_id)
        if view is None:
            raise NotFound("no customer has that identifier")
        return view

    async def lookup_many(self, raws: Sequence[tuple[str, str, str]]) -> Lookups:
        """What each identifier says about its customer (malformed: InvalidArgument with field
        paths ``identifiers[i]...``), with one query for all. Each distinct spelling is
        normalised once and each distinct identifier answered once: an event import asks for
        the same customers' identifiers again and again (issue #22)."""
        spellings: dict[tuple[str, str, str], int] = {}
        order = [spellings.setdefault(raw, len(spellings)) for raw in raws]
        keys: dict[IdentifierKey, int] = {}
        answer_of: list[int | tuple[str, str]] = []  # per spelling: its key's position, or why not
        for id_type, value, namespace in spellings:
            found = normalize_one(id_type, value, namespace)
            if isinstance(found, IdentifierKey):
                answer_of.append(keys.setdefault(found, len(keys)))
            else:
                answer_of.append(found)
        answers = await self._answers(list(keys))
        slots: list[int | InvalidArgument] = []
        for index, spelling in enumerate(order):
            slot = answer_of[spelling]
            if isinstance(slot, int):
                slots.append(slot)
            else:
                slots.append(
                    InvalidArgument([FieldViolation(f"identifiers[{index}].{slot[0]}", slot[1])])
                )
        return Lookups(answers, slots)

    async def lookup_by_id(self, customer_id: str) -> CustomerView:
        parse_uuid(customer_id, "customer_id")
        async with self.store.transaction() as tx:
            current = await tx.graph.canonical_id(customer_id)
            view = None if current is None else await tx.graph.customer_view(current)
        if view is None:
            raise NotFound(f"customer {customer_id} not found")
        return view

    async def record_customer(self, ref: RecordRef) -> CustomerView:
        async with self.store.transaction() as tx:
            current = await tx.graph.record_customer(ref)
            view = None if current is None else await tx.graph.customer_view(current)
        if view is None:
            raise NotFound(f"record {ref.source}/{ref.message_id} never reached identity")
        return view

    # -- merge and split -------------------------------------------------------------------

    async def merge_customers(
        self, customer_ids: Sequence[str], reason: str, actor: str
    ) -> tuple[str, tuple[str, ...]]:
        errors = ViolationCollector()
        if len(customer_ids) < 2:
            errors.add("customer_ids", "at least two customer ids are required")
        for index, value in enumerate(customer_ids):
            _check_uuid(value, f"customer_ids[{index}]", errors)
        if not reason.strip():
            errors.add("reason", "required")
        if not actor.strip():
            errors.add("actor", "required")
        _check_who(actor, reason, errors)
        bounds.check_count(len(customer_ids), "customer_ids", MAX_MERGE, errors)
        if len(set(customer_ids)) != len(customer_ids) and len(set(customer_ids)) < 2:
            errors.add("customer_ids", "a customer cannot be merged with itself")
        errors.raise_if_any()

        async def work(tx: IdentityUnit) -> tuple[str, tuple[str, ...]]:
            current: list[str] = []
            for value in dict.fromkeys(customer_ids):
                found = await tx.graph.canonical_id(value)
                if found is None:
                    raise NotFound(f"customer {value} not found")
                current.append(found)
            distinct = sorted(set(current))
            if len(distinct) < 2:
                raise InvalidArgument(
                    [FieldViolation("customer_ids", "these ids are already one customer")]
                )
            await tx.writes.lock_customers(distinct)
            created = await tx.graph.customers_created(distinct)
            survivor = min(distinct, key=lambda c: (created[c], c))
            merged = tuple(c for c in distinct if c != survivor)
            anchors = {c: (await tx.graph.customer_records(c))[:1] for c in distinct}
            await tx.writes.merge_customers(survivor, merged)
            await tx.writes.record_merge(
                survivor,
                merged,
                kind=LedgerKind.MANUAL_MERGE,
                detail={
                    "anchors": {c: [pk for pk, _ in refs] for c, refs in anchors.items()},
                },
                actor=actor,
                reason=reason,
            )
            return survivor, merged

        result = await self.store.run(work)
        self._on_commit()
        return result

    async def split_customer(  # noqa: C901
        self,
        customer_id: str,
        refs: Sequence[RecordRef],
        target_customer_id: str,
        reason: str,
        actor: str,
    ) -> tuple[str, str, list[IdentifierKey], list[str]]:
        errors = ViolationCollector()
        _check_uuid(customer_id, "customer_id", errors)
        if target_customer_id:
            _check_uuid(target_customer_id, "target_customer_id", errors)
        if not refs:
            errors.add("record_refs", "at least one record is required")
        elif bounds.check_count(len(refs), "record_refs", bounds.MAX_REFS, errors):
            for index, ref in enumerate(refs):
                bounds.check_record_ref(ref.source, ref.message_id, f"record_refs[{index}]", errors)
        if not reason.strip():
            errors.add("reason", "required")
        if not actor.strip():
            errors.add("actor", "required")
        _check_who(actor, reason, errors)
        errors.raise_if_any()

        async def work(tx: IdentityUnit) -> tuple[str, str, list[IdentifierKey], list[str]]:
            source = await tx.graph.canonical_id(customer_id)
            if source is None:
                raise NotFound(f"customer {customer_id} not found")
            target = None
            if target_customer_id:
                target = await tx.graph.canonical_id(target_customer_id)
                if target is None:
                    raise NotFound(f"customer {target_customer_id} not found")
                if target == source:
                    raise InvalidArgument(
                        [
                            FieldViolation(
                                "target_customer_id",
                                "is the customer being split (or merged into it)",
                            )
                        ]
                    )
            await tx.writes.lock_customers([c for c in (source, target) if c])
            found = await tx.graph.records_by_ref(refs)
            violations = ViolationCollector()
            for index, ref in enumerate(refs):
                if ref not in found:
                    raise NotFound(f"record {ref.source}/{ref.message_id} never reached identity")
                if found[ref][1] != source:
                    violations.add(f"record_refs[{index}]", "does not belong to this customer")
            if violations.violations:
                raise FailedPrecondition(
                    "; ".join(f"{v.field}: {v.description}" for v in violations.violations)
                )
            moved = sorted({found[r][0] for r in refs})
            remaining = [pk for pk, _ in await tx.graph.customer_records(source) if pk not in moved]
            if not remaining:
                raise FailedPrecondition(
                    "the split would move every record and leave the customer with none; "
                    "merge into the target instead"
                )
            if target is None:
                target = await tx.writes.create_customer()
                await tx.ledger.append(
                    LedgerKind.CUSTOMER_CREATED, target, actor=actor, reason=reason
                )
            identifiers = await tx.writes.move_records(source, target, moved)
            await tx.writes.share_left_identifiers(source, target, moved)
            await tx.writes.keep_apart(source, target)
            # Ids merged into the source follow the records they stood for (domain/split.py).
            parents = await tx.graph.alias_tree(source)
            sides = alias_sides(
                parents, await tx.ledger.first_placed_holdings(list(parents)), source, target
            )
            await tx.writes.point_aliases(sides)
            redirected = sorted(a for a, side in sides.items() if side == target)
            change_id = await tx.ledger.append(
                LedgerKind.CUSTOMER_SPLIT,
                source,
                other_customer_id=target,
                detail={
                    "moved_records": moved,
                    "moved_identifier_types": sorted({k.type for k in identifiers}),
                    "redirected_customer_ids": redirected,
                },
                actor=actor,
                reason=reason,
            )
            await tx.announcements.announce_changed([source, target, *redirected])
            moved_refs = sorted({(r.source, r.message_id) for r in refs})
            await tx.announcements.announce(
                SPLIT_TOPIC,
                source,
                json.dumps(
                    {
                        "change_id": str(change_id),
                        "source_customer_id": source,
                        "target_customer_id": target,
                        "moved_records": [list(r) for r in moved_refs],
                        "redirected_customer_ids": redirected,
                    }
                ).encode(),
            )
            return source, target, identifiers, redirected

        result = await self.store.run(work)
        self._on_commit()
        return result

    # -- review queue ----------------------------------------------------------------------

    async def list_review_items(
        self, page_size: int, page_token: str, include_decided: bool, customer_id: str = ""
    ) -> tuple[list[ReviewView], str]:
        """A page of review items; with ``customer_id``, every item (decided ones too) about
        that customer and the ids merged into it."""
        if customer_id:
            parse_uuid(customer_id, "customer_id")
        size = _page_size(page_size)
        after = None
        if page_token:
            at, item = decode_page_token(page_token, 2)
            if not is_uuid(item):
                raise InvalidArgument([FieldViolation("page_token", NOT_A_TOKEN)])
            after = (token_time(at), item)
        async with self.store.transaction() as tx:
            ids: list[str] = []
            if customer_id:
                current = await tx.graph.canonical_id(customer_id)
                if current is None:
                    raise NotFound(f"customer {customer_id} not found")
                ids = [current, *await tx.graph.merged_ids(current)]
                include_decided = True
            rows = await tx.reviews.review_items(size + 1, after, include_decided, ids)
            token = ""
            if len(rows) > size:
                rows = rows[:size]
                last = rows[-1]
                token = encode_page_token([last.created_at.isoformat(), str(last.review_item_id)])
            current_of = await tx.graph.current_ids(str(r.candidate_customer_id) for r in rows)
            customers = {str(r.record_customer_id) for r in rows} | set(current_of.values())
            records, counts = await tx.reviews.side_records(sorted(customers), SIDE_RECORDS)
        views = []
        for row in rows:
            mine = str(row.record_customer_id)
            theirs = current_of.get(str(row.candidate_customer_id), str(row.candidate_customer_id))
            ours, other = records.get(mine, []), records.get(theirs, [])
            candidate_ref = (
                RecordRef(row.candidate_source, row.candidate_message_id)
                if row.candidate_source
                else None
            )
            views.append(
                ReviewView(
                    row,
                    side(mine, RecordRef(row.source, row.message_id), ours, counts.get(mine, 0)),
                    side(theirs, candidate_ref, other, counts.get(theirs, 0)),
                    field_comparison(ours, other),
                )
            )
        return views, token

    async def decide_review_item(
        self, review_item_id: str, accept: bool, actor: str, reason: str
    ) -> str:
        errors = ViolationCollector()
        _check_uuid(review_item_id, "review_item_id", errors)
        if not actor.strip():
            errors.add("actor", "required")
        _check_who(actor, reason, errors)
        errors.raise_if_any()

        async def work(tx: IdentityUnit) -> str:
            item = await tx.reviews.review_item(review_item_id)
            if item is None:
                raise NotFound(f"review item {review_item_id} not found")
            if item.state != ReviewState.OPEN:
                raise FailedPrecondition(f"review item {review_item_id} is already {item.state}")
            record_customer = await tx.graph.canonical_id(str(item.record_customer_id))
            candidate = await tx.graph.canonical_id(str(item.candidate_customer_id))
            if record_customer is None or candidate is None:
                raise FailedPrecondition("a customer of this review item no longer exists")
            if not accept:
                await tx.reviews.decide_review(review_item_id, ReviewState.REJECTED, actor, reason)
                if record_customer != candidate:
                    await tx.writes.keep_apart(record_customer, candidate)
                await tx.ledger.append(
                    LedgerKind.REVIEW_REJECTED,
                    record_customer,
                    other_customer_id=candidate,
                    detail={"review_item_id": review_item_id},
                    actor=actor,
                    reason=reason,
                )
                await tx.announcements.report_quality(resolved=[(record_customer, candidate)])
                return record_customer
            await tx.reviews.decide_review(review_item_id, ReviewState.ACCEPTED, actor, reason)
            if record_customer == candidate:
                return candidate
            await tx.writes.lock_customers([record_customer, candidate])
            created = await tx.graph.customers_created([record_customer, candidate])
            survivor = min(created, key=lambda c: (created[c], c))
            merged = tuple(c for c in created if c != survivor)
            await tx.writes.merge_customers(survivor, merged)
            await tx.writes.record_merge(
                survivor,
                merged,
                kind=LedgerKind.REVIEW_ACCEPTED,
                ref=RecordRef(item.source, item.message_id),
                detail={
                    "review_item_id": review_item_id,
                    "anchors_pair": [int(item.record_pk), item.candidate_record_pk],
                    "probability": item.probability,
                },
                actor=actor,
                reason=reason,
            )
            return survivor

        result = await self.store.run(work)
        self._on_commit()
        return result

    # -- blocklist, export, explain --------------------------------------------------------

    async def list_blocked(self, page_size: int, page_token: str) -> tuple[list[Any], str]:
        size = _page_size(page_size)
        after = None
        if page_token:
            at, t, ns, v = decode_page_token(page_token, 4)
            after = (token_time(at), t, ns, v)
        async with self.store.transaction() as tx:
            rows = await tx.export.blocked_identifiers(size + 1, after)
        token = ""
        if len(rows) > size:
            rows = rows[:size]
            last = rows[-1]
            token = encode_page_token(
                [last.blocked_at.isoformat(), last.id_type, last.namespace, last.value]
            )
        return rows, token

    async def configured_blocked(self) -> list[tuple[IdentifierKey, str]]:
        rules = await self.get_rules()
        return [
            (IdentifierKey(rule.type, value, rule.namespace), BlockReason.CONFIGURED)
            for rule in rules.identifier_rules
            for value in sorted(rule.blocked_values)
        ]

    async def export_mapping(self, page: int = 5000) -> AsyncIterator[Any]:
        after = 0
        while True:
            async with self.store.transaction() as tx:
                rows = await tx.export.mapping_page(after, page)
            for row in rows:
                yield row
            if len(rows) < page:
                return
            after = int(rows[-1].record_pk)

    async def explain(
        self, pair: tuple[RecordRef, RecordRef] | None, customer_id: str | None
    ) -> tuple[bool, str, list[Evidence]]:
        if pair is not None:
            errors = ViolationCollector()
            for name, ref in zip(("records.first", "records.second"), pair, strict=True):
                bounds.check_record_ref(ref.source, ref.message_id, name, errors)
            errors.raise_if_any()
            async with self.store.transaction() as tx:
                found = await tx.graph.records_by_ref(list(pair))
                for ref in pair:
                    if ref not in found:
                        raise NotFound(f"record {ref.source}/{ref.message_id} not found")
                first, second = found[pair[0]], found[pair[1]]
                if first[1] != second[1]:
                    steps = await self._explain_apart(tx, first, second)
                    refs = await tx.graph.record_refs_by_pk(
                        {p for s in steps for p in (s.from_pk, s.to_pk) if p}
                    )
                    return False, "", [s.with_refs(refs) for s in steps]
                material = await tx.graph.explain_material(first[1])
                steps = explain_pair(material, first[0], second[0])
                refs = await tx.graph.record_refs_by_pk(
                    {p for s in steps for p in (s.from_pk, s.to_pk) if p}
                )
            return True, first[1], [s.with_refs(refs) for s in steps]
        if not customer_id or not is_uuid(customer_id):
            raise InvalidArgument([FieldViolation("customer_id", MUST_BE_UUID)])
        async with self.store.transaction() as tx:
            current = await tx.graph.canonical_id(customer_id)
            if current is None:
                raise NotFound(f"customer {customer_id} not found")
            material = await tx.graph.explain_material(current)
            steps = explain_customer(material)
            refs = await tx.graph.record_refs_by_pk(
                {p for s in steps for p in (s.from_pk, s.to_pk) if p}
            )
        return True, current, [s.with_refs(refs) for s in steps]

    async def _explain_apart(
        self, tx: IdentityUnit, first: tuple[int, str], second: tuple[int, str]
    ) -> list[Evidence]:
        """Why two records of different customers are kept apart (``explain.explain_apart``)."""
        rules = await self.rules()
        model = (await self.model_info()).model.with_thresholds(
            rules.auto_link_threshold, rules.review_threshold
        )
        side_a, side_b = await tx.graph.alias_ids(first[1]), await tx.graph.alias_ids(second[1])
        decisions = [
            Decision(r.kind, r.actor, r.reason, r.at)
            for r in await tx.ledger.decisions_between(side_a, side_b)
        ]
        reviews = [
            OpenReview(r.probability, r.created_at, r.explanation or {})
            for r in await tx.reviews.open_reviews_between(side_a, side_b)
        ]
        records = await tx.graph.records_by_pk([first[0], second[0]])
        a, b = records[first[0]], records[second[0]]
        common = sorted(set(a.identifiers) & set(b.identifiers))
        facts = await tx.graph.identifier_facts(common)
        shared = [
            SharedIdentifier(
                key, rules.block_reason(key) or facts.get(key, (None, [], ""))[2] or ""
            )
            for key in common
        ]
        # The conflict that keeps the two sides apart: the asked pair's own, else the first
        # pair of their most recent records that conflicts (as the engine checks them).
        ours = [a, *(r for r in await tx.graph.recent_records(first[1], MAX_CHECK_RECORDS))]
        theirs = [b, *(r for r in await tx.graph.recent_records(second[1], MAX_CHECK_RECORDS))]
        conflict = None
        for x in ours:
            for y in theirs:
                levels = compare_records(x.person, y.person)
                if conflicts(levels, model):
                    conflict = (x.pk, y.pk, levels)
                    break
            if conflict is not None:
                break
        return explain_apart(
            a.pk, b.pk, decisions, reviews, shared, conflict, score_pair(a.person, b.person, model)
        )

    # -- ledger ----------------------------------------------------------------------------

    async def ledger(
        self, customer_id: str, kinds: Sequence[str], page_size: int, page_token: str
    ) -> tuple[list[Any], str]:
        """A page of ledger entries (about a customer and the ids merged into it, when given)."""
        errors = ViolationCollector()
        if customer_id and not is_uuid(customer_id):
            errors.add("customer_id", MUST_BE_UUID)
        for index, kind in enumerate(kinds):
            if kind not in LEDGER_KINDS:
                errors.add(f"kinds[{index}]", f"one of {', '.join(sorted(LEDGER_KINDS))}")
        if page_size < 0:
            errors.add("page_size", "must not be negative")
        errors.raise_if_any()
        size = _page_size(page_size)
        after = 0
        if page_token:
            (last,) = decode_page_token(page_token, 1)
            after = int(last) if last.isdigit() and len(last) < 19 else -1
            if after < 0:
                raise InvalidArgument([FieldViolation("page_token", NOT_A_TOKEN)])
        async with self.store.transaction() as tx:
            ids = None
            if customer_id:
                current = await tx.graph.canonical_id(customer_id)
                if current is None:
                    raise NotFound(f"customer {customer_id} not found")
                ids = await tx.graph.alias_ids(current)
            rows = await tx.ledger.page(ids, list(dict.fromkeys(kinds)), after, size + 1)
        token = ""
        if len(rows) > size:
            rows = rows[:size]
            token = encode_page_token([str(rows[-1].entry_id)])
        return rows, token

    # -- erase -----------------------------------------------------------------------------

    async def erase(self, customer_id: str, actor: str, reason: str) -> Erasure:
        """Erases a customer's personal data and marks the customer and every id merged into
        it erased (NOT_FOUND everywhere from now on); repeatable (a second call finds nothing
        new)."""
        parse_uuid(customer_id, "customer_id")
        if not actor:
            raise InvalidArgument([FieldViolation("actor", "required")])
        errors = ViolationCollector()
        _check_who(actor, reason, errors)
        errors.raise_if_any()
        async with self.store.transaction() as tx:
            current = await tx.graph.canonical_id(customer_id, include_erased=True)
            if current is None:
                raise NotFound(f"customer {customer_id} not found")
            await tx.writes.lock_customers([current])
            erased = await tx.erasure.erase(current)
            # The person is nobody's candidate any more: identifiers they shared may now name
            # one customer, and events held for them may be attributed.
            await tx.announcements.announce_changed([current])
            await tx.ledger.append(
                LedgerKind.CUSTOMER_ERASED,
                current,
                detail={
                    "records": len(erased.refs),
                    "identifiers": erased.identifier_count,
                    "customer_ids": erased.customer_ids,
                },
                actor=actor,
                reason=reason,
            )
        return erased
