"""What identity's use cases need from the outside: one transaction of the identity store, by
part, and the store that runs it.

``adapters.storage.IdentityStore`` satisfies these over PostgreSQL (its transaction composes
the parts in ``adapters/graph_reads.py``, ``graph_writes.py``, ``ledger.py`` ...; mypy checks
it where the app wires it); ``tests/unit/fakes.py`` satisfies them in memory, so the use cases
run in the fast unit tier without a database; ``adapters.job_storage.JobStore`` is the
``JobRepository`` of the bulk jobs (``bulk.py``). Each part has exactly the methods the use cases
call. Rows the adapters return as database rows are ``Any`` here: the use cases read them by
attribute (``row.review_item_id``, ``row.created_at``...).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeVar

from svod_identity.domain.engine import Changes, GraphState, KnownRecord
from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.jobs import ImportResult, Job, StageResult
from svod_identity.domain.ledger import LedgerKind
from svod_identity.domain.lookup import Fact
from svod_identity.domain.matching.model import MatchModel
from svod_identity.domain.model import CustomerView, Erasure, IncomingRecord, RecordRef
from svod_identity.domain.review import ReviewState, SideRecord
from svod_identity.domain.rules import Rules

T = TypeVar("T")


class GraphReads(Protocol):
    """Customers (following merges), their records and identifiers."""

    async def canonical_id(self, customer_id: str, *, include_erased: bool = ...) -> str | None:
        """The current id of a customer, following merges; None when unknown (or erased)."""

    async def current_ids(self, customer_ids: Iterable[str]) -> dict[str, str]:
        """Each known id -> its current id; unknown ids are left out."""

    async def merged_ids(self, customer_id: str) -> list[str]:
        """Every id merged into this customer, directly or through others."""

    async def alias_tree(self, customer_id: str) -> dict[str, str]:
        """Every id merged (directly or not) into the customer -> the id it was merged into."""

    async def alias_ids(self, customer_id: str) -> list[str]:
        """The customer and every id merged into it."""

    async def record_customer(self, ref: RecordRef) -> str | None:
        """The current customer of a record; None when the record never reached identity."""

    async def identifier_facts(self, keys: Sequence[IdentifierKey]) -> dict[IdentifierKey, Fact]:
        """(holder, recorded sharers, stored block reason) of each held or blocked key."""

    async def facts_by_position(self, keys: Sequence[IdentifierKey]) -> dict[int, Fact]:
        """As ``identifier_facts``, by the key's position in ``keys``."""

    async def records_by_pk(self, pks: Iterable[int]) -> dict[int, KnownRecord]: ...

    async def records_by_ref(self, refs: Sequence[RecordRef]) -> dict[RecordRef, tuple[int, str]]:
        """Each known record -> (its pk, its customer as stored)."""

    async def record_refs_by_pk(self, pks: Iterable[int]) -> dict[int, RecordRef]: ...

    async def customer_records(self, customer_id: str) -> list[tuple[int, RecordRef]]:
        """The customer's records, oldest (lowest pk) first."""

    async def customers_created(self, ids: Sequence[str]) -> dict[str, dt.datetime]: ...

    async def recent_records(self, customer_id: str, limit: int) -> list[KnownRecord]:
        """A customer's most recent records, newest first."""

    async def customer_view(self, customer_id: str) -> CustomerView | None:
        """The customer as shown; None unless it is current (not merged away, not erased)."""

    async def explain_material(self, customer_id: str) -> dict[str, Any]:
        """A customer's records (with evidence), the identifiers each carries, and its ledger."""


class GraphWrites(Protocol):
    """Changes to the graph, with the ledger entries and announcements that go with them."""

    async def lock_customers(self, customer_ids: Iterable[str]) -> None: ...

    async def create_customer(self) -> str: ...

    async def apply(self, changes: Changes, free_pks: Sequence[int] = ...) -> dict[int, int]:
        """Writes what the engine decided; returns engine record pk -> stored record pk."""

    async def merge_customers(self, survivor: str, merged: Sequence[str]) -> None:
        """Moves everything of the merged customers to the survivor; their ids become aliases."""

    async def record_merge(
        self,
        survivor: str,
        merged: Sequence[str],
        *,
        kind: LedgerKind,
        ref: RecordRef | None = ...,
        detail: dict[str, Any] | None = ...,
        actor: str = ...,
        reason: str = ...,
    ) -> int:
        """The ledger entry of one merge and its announcements (to profile, quality and
        ingestion); returns the entry's id."""

    async def move_records(
        self, source: str, target: str, pks: Sequence[int]
    ) -> list[IdentifierKey]:
        """Moves records, and the identifiers only they carry; returns those identifiers."""

    async def point_aliases(self, sides: Mapping[str, str]) -> None:
        """Sets each merged-away id to answer for the given customer."""

    async def share_left_identifiers(self, source: str, target: str, pks: Sequence[int]) -> int:
        """The identifiers ``source`` keeps that moved records carry too are shared with
        ``target``; returns how many."""

    async def keep_apart(self, a: str, b: str) -> None:
        """Records that a person decided these two customers are different people."""


class LedgerEntries(Protocol):
    """The append-only ledger."""

    async def append(
        self,
        kind: LedgerKind,
        customer_id: str,
        *,
        ref: RecordRef | None = ...,
        other_customer_id: str | None = ...,
        detail: dict[str, Any] | None = ...,
        actor: str = ...,
        reason: str = ...,
    ) -> int:
        """Adds an entry; returns its id (increasing)."""

    async def page(
        self, customer_ids: Sequence[str] | None, kinds: Sequence[str], after: int, limit: int
    ) -> list[Any]:
        """Entries after ``after`` oldest first, about these customers (either side) when
        given, of these kinds when given."""

    async def decisions_between(self, side_a: Sequence[str], side_b: Sequence[str]) -> list[Any]:
        """A person's decisions keeping the two sides apart, oldest first."""

    async def human_decisions(self) -> tuple[list[list[int]], list[frozenset[str]]]:
        """The merges people made (one record of each side) and the pairs they kept apart."""

    async def first_placed_holdings(self, customer_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """For each id: where the records first placed under it are now (customer -> how
        many)."""


class ReviewQueue(Protocol):
    """Suspected duplicates waiting for a person."""

    async def review_items(
        self,
        limit: int,
        after: tuple[dt.datetime, str] | None,
        include_decided: bool,
        customer_ids: Sequence[str] = ...,
    ) -> list[Any]:
        """A page of items in (created_at, id) order; with ``customer_ids``, only theirs."""

    async def review_item(self, review_item_id: str) -> Any:
        """The item (locked until the transaction ends), or None."""

    async def decide_review(
        self, review_item_id: str, state: ReviewState, actor: str, reason: str
    ) -> None: ...

    async def side_records(
        self, customer_ids: Sequence[str], limit: int
    ) -> tuple[dict[str, list[SideRecord]], dict[str, int]]:
        """Each customer's ``limit`` most recent records (newest first), and its record count."""

    async def open_reviews_between(self, side_a: Sequence[str], side_b: Sequence[str]) -> list[Any]:
        """Open review items between the two sides (either way round)."""


class GraphExport(Protocol):
    """Whole-graph reads: the mapping export, the blocklist, previews and model refits."""

    async def mapping_page(self, after_pk: int, limit: int) -> list[Any]: ...

    async def blocked_identifiers(
        self, limit: int, after: tuple[dt.datetime, str, str, str] | None
    ) -> list[Any]: ...

    async def raw_records(self, limit: int) -> list[Any]: ...

    async def all_identifier_owners(self) -> dict[IdentifierKey, str]: ...

    async def count_records(self) -> int: ...

    async def sample_candidate_pairs(
        self, max_pairs: int, records: int = 0
    ) -> list[tuple[KnownRecord, KnownRecord]]:
        """Up to ``max_pairs`` record pairs sharing a blocking key, sampled (``records``: the
        graph's size, when known: how much of it the sample needs to read)."""
        ...

    async def value_counts(self) -> dict[str, list[tuple[str, int]]]:
        """Feature ("last_name", "first_name", "city"; "login": e-mail addresses) -> (value
        as written, records holding it), over every stored record: the match model's term
        frequencies."""
        ...


class CustomerErasure(Protocol):
    async def erase(self, customer_id: str) -> Erasure:
        """Forgets the person; the customer and every id merged into it are erased."""


class RulesAndModels(Protocol):
    """The stored matching rules and match models, both versioned."""

    async def current_rules(self) -> tuple[int, dict[str, Any], dt.datetime, str] | None: ...

    async def store_rules(self, version: int, body: dict[str, Any], actor: str) -> dt.datetime:
        """Stores a version; returns when."""

    async def lock_rules(self) -> None:
        """Serialises rule updates until the transaction ends."""

    async def current_model(self) -> tuple[int, dict[str, Any], int, dt.datetime, str] | None: ...

    async def store_model(
        self, body: dict[str, Any], pairs: int, actor: str
    ) -> tuple[int, dt.datetime]:
        """Stores a model as the next version; returns (version, when)."""

    async def lock_models(self) -> None:
        """Serialises model writes (and an automatic fit's check of the version in force
        before its write) until the transaction ends."""

    async def queue_reresolution(self, job_id: str, actor: str, reason: str) -> None:
        """Queues a re-resolution of the graph (ReresolveAll's job) named ``job_id``, in this
        transaction; nothing if that job exists."""


class Announcements(Protocol):
    """Outbox messages, written in the transaction of the change they announce."""

    async def announce(self, topic: str, key: str, payload: bytes) -> None: ...

    async def announce_changed(self, customer_ids: Sequence[str], everything: bool = ...) -> None:
        """Ingestion takes another look at events it holds for these customers (or all)."""

    async def report_quality(
        self,
        *,
        pairs: Sequence[tuple[str, str, float]] = ...,
        resolved: Sequence[tuple[str, str]] = ...,
        blocked: Sequence[IdentifierKey] = ...,
    ) -> None:
        """Suspected duplicate pairs, pairs a person resolved, identifiers blocked."""


class StateLoader(Protocol):
    async def load_state(
        self,
        records: Sequence[IncomingRecord],
        rules: Rules,
        *,
        fuzzy: bool = ...,
        candidates_for: Iterable[RecordRef] | None = ...,
        model: MatchModel | None = ...,
        lock_keys: Iterable[str] = ...,
    ) -> GraphState:
        """The part of the graph the records can touch, its customers row-locked (after
        ``lock_keys``)."""


class IdentityUnit(Protocol):
    """One transaction of the identity store: everything in it commits or nothing does."""

    @property
    def graph(self) -> GraphReads: ...

    @property
    def writes(self) -> GraphWrites: ...

    @property
    def ledger(self) -> LedgerEntries: ...

    @property
    def reviews(self) -> ReviewQueue: ...

    @property
    def export(self) -> GraphExport: ...

    @property
    def erasure(self) -> CustomerErasure: ...

    @property
    def settings(self) -> RulesAndModels: ...

    @property
    def announcements(self) -> Announcements: ...

    @property
    def loader(self) -> StateLoader: ...


class IdentityRepository(Protocol):
    """Where the identity graph lives."""

    def transaction(self) -> AbstractAsyncContextManager[IdentityUnit]: ...

    async def run(self, work: Callable[[IdentityUnit], Awaitable[T]]) -> T:
        """Runs ``work`` in one transaction, from the start again after a deadlock or a
        serialisation failure."""


class JobRepository(Protocol):
    """Bulk imports and re-resolutions as the gRPC service handles them: staged records,
    jobs, the claim of the next one to run, an import's results (``docs/bulk-import.md``)."""

    async def job(self, job_id: str) -> Job | None: ...

    async def stage(self, job_id: str, records: Sequence[IncomingRecord]) -> StageResult | Job:
        """Stages an import's records once each; the job when it takes no more records."""

    async def commit_import(self, job_id: str) -> Job | None:
        """Queues a staged import to run; None when it was never staged."""

    async def request_reresolve(self, job_id: str, dry_run: bool, actor: str, reason: str) -> Job:
        """The re-resolution of that id, queued when new."""

    async def request_preview(self, job_id: str, candidate_rules: dict[str, Any]) -> Job:
        """Queues a dry-run re-resolution under ``candidate_rules`` (PreviewRules)."""

    async def claim(self) -> tuple[Job, int] | None:
        """The next job to run and the attempt its worker holds the lease by; None when a
        job runs already or none waits."""

    async def release_merges(self) -> int:
        """Announces re-resolutions' merges whose splits went out; returns how many."""

    async def attempt_ended(self, job_pk: int, attempt: int, error: str) -> None:
        """The attempt's worker exited without finishing: queued again, or failed once the
        attempts are spent."""

    def results(self, job: Job, after_sequence: int) -> AsyncIterator[ImportResult]:
        """The import's records in staging order from ``after_sequence``, as they are now."""
