"""The batch engine's view of the graph: online's candidate rules over a whole import at once.

``Resolver`` places the records (the online engine's own rules: exact links with the conflict
check, fuzzy matching, review items, merges into the oldest customer). Online, ``Resolve``
reads for each transaction of ``ResolveBatch`` (``BATCH_CHUNK`` records) only the stored
candidates worth comparing (``domain/candidates.py``: two keys in common, a contact key, or a
block of at most ``LONE_KEY_MAX_BLOCK``), while the records of its own transaction meet in
memory. ``ImportState`` gives ``Resolver`` exactly that over an import held in memory whole:
before each record, ``consider`` works out which earlier records online would have compared it
with, and ``comparable`` answers only with those.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from svod_identity.domain.candidates import CONTACT_KEY_PREFIXES, LONE_KEY_MAX_BLOCK
from svod_identity.domain.engine import GraphState, person_from
from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.matching.blocking import MAX_BLOCK_SIZE, blocking_keys, possible_keys
from svod_identity.domain.model import IncomingRecord
from svod_identity.domain.preview import MAX_SAMPLES, PreviewResult

# Records ResolveBatch places per transaction (service_layer.use_cases.BATCH_CHUNK).
ONLINE_CHUNK = 500


def chunk_of(pk: int) -> int:
    """The online transaction a record of the import would have been placed in (its engine pk
    is -1, -2, ... in staging order)."""
    return (-pk - 1) // ONLINE_CHUNK


@dataclass
class ImportState(GraphState):
    # Stored (and earlier imported) candidates worth comparing with the record being placed;
    # None: every member of a comparable block.
    worth: set[int] | None = None
    # The online transaction of the record being placed.
    chunk: int = -1
    _sizes: dict[str, int] = field(default_factory=dict)

    def comparable(self, key: str) -> list[int]:
        members = super().comparable(key)
        if self.worth is None:
            return members
        return [pk for pk in members if pk in self.worth or (pk < 0 and chunk_of(pk) == self.chunk)]

    def consider(self, record: IncomingRecord, pk: int, keys: Iterable[str] | None = None) -> None:
        """Before ``record`` (engine pk ``pk``) is placed: the earlier records online would
        have fetched for it (``worth_comparing``). ``keys``: its blocking keys when the caller
        derived them already (``record_keys``)."""
        self.chunk = chunk_of(pk)
        if keys is None:
            keys = blocking_keys(person_from("0", record.attributes, record.identifiers))
        self.worth = worth_comparing(keys, self)


class ImportPks:
    """Engine pks (-1, -2, ... in placing order) of an import's written records and their
    stored pks, kept as runs of consecutive numbers (a window's pks come from one statement:
    one run, unless online writers took numbers in between)."""

    def __init__(self) -> None:
        self._engine: list[int] = []  # first engine ordinal (-pk) of each run, ascending
        self._stored: list[int] = []  # its stored pk, ascending
        self._length: list[int] = []

    def add(self, engine_to_stored: Iterable[tuple[int, int]]) -> None:
        """Records ``(engine pk, stored pk)`` pairs, in placing order."""
        for pk, stored in engine_to_stored:
            n = -pk
            if (
                self._engine
                and n == self._engine[-1] + self._length[-1]
                and stored == self._stored[-1] + self._length[-1]
            ):
                self._length[-1] += 1
                continue
            self._engine.append(n)
            self._stored.append(stored)
            self._length.append(1)

    def stored(self, pk: int) -> int:
        """The stored pk of an engine pk; a stored pk is itself."""
        if pk >= 0:
            return pk
        n = -pk
        run = bisect_right(self._engine, n) - 1
        if run < 0 or n >= self._engine[run] + self._length[run]:
            raise KeyError(pk)
        return self._stored[run] + n - self._engine[run]

    def engine(self, stored: int) -> int:
        """The engine pk of a stored pk of the import's, else the stored pk itself."""
        run = bisect_right(self._stored, stored) - 1
        if run < 0 or stored >= self._stored[run] + self._length[run]:
            return stored
        return -(self._engine[run] + stored - self._stored[run])


@dataclass
class EarlierWindows:
    """What the windows of an import placed so far leave to the later ones beyond their rows
    (which the later windows read back from the same transaction like any stored row): a
    window's ``ImportState`` is the whole-import one restricted to what its records can meet
    only with these."""

    # Customers merged away by the import -> their survivor (``GraphState.alias``).
    alias: dict[str, str] = field(default_factory=dict)
    # Engine pk of a written record -> identifiers blocked when it was placed: ``Resolver``
    # compares a record without them, a stored row has them all.
    excluded: dict[int, frozenset[IdentifierKey]] = field(default_factory=dict)
    # The written records' stored pks by engine pk: read back, they keep their engine pks, so
    # that the state is the one the whole import in memory would have (which records share an
    # online transaction, how candidates tie, which records are a customer's most recent).
    pks: ImportPks = field(default_factory=lambda: ImportPks())
    # Customers the import created and wrote: merged away later, they are folded into the
    # survivor as if they had never existed, not merged as the graph's customers are.
    created: set[str] = field(default_factory=set)
    # Records placed so far (the next one is engine pk -(placed + 1)).
    placed: int = 0


@dataclass(frozen=True)
class RecordKeys:
    """A record's blocking keys with all its identifiers: its own (``blocking_keys``) and
    every one it may get (``possible_keys``)."""

    own: frozenset[str]
    possible: frozenset[str]


def record_keys(record: IncomingRecord) -> RecordKeys:
    """Derived once per record of a batch: ``possible_keys`` choose the blocks to load and
    ``blocking_keys`` the candidates online would fetch (``consider``). Kept per record, since
    the matcher's caches by content are bounded (65,536 key sets) and a big import would
    derive them again."""
    person = person_from("0", record.attributes, record.identifiers, record.ref.source)
    possible = possible_keys(person)
    return RecordKeys(blocking_keys(person), possible)


def worth_comparing(keys: Iterable[str], state: GraphState) -> set[int]:
    """The members of the keys' blocks (at most ``MAX_BLOCK_SIZE`` members each) sharing two
    keys with the record, a contact key, or a block of at most ``LONE_KEY_MAX_BLOCK``: the
    rows ``storage._LOAD_STATE`` reads for a record.

    Counted with ``Counter.update`` (a loop in C) and whole blocks added at once: the loop per
    member with its three dicts was 3.8% of the worker's samples at 200k records."""
    counts: Counter[int] = Counter()
    worth: set[int] = set()
    for key in keys:
        members = state.blocks.get(key)
        if not members:
            continue
        size = len(members) + state.unlisted.get(key, 0)
        if size > MAX_BLOCK_SIZE:
            continue
        counts.update(members)
        if size <= LONE_KEY_MAX_BLOCK or key.startswith(CONTACT_KEY_PREFIXES):
            worth.update(members)
    worth.update(pk for pk, n in counts.items() if n >= 2)
    return worth


# -- re-resolution: from the proposed partition to the moves that make it ---------------------


@dataclass(frozen=True)
class ReresolvePlan:
    """How the graph becomes the proposed partition (see ``plan_reresolution``)."""

    # Proposed cluster -> the customer id it has from now on (an existing one or a new one).
    names: dict[str, str]
    # Customer ids created for clusters no current customer continues.
    new_customers: list[str]
    # (current customer, target customer, record pks) moved out of a customer that goes on.
    splits: list[tuple[str, str, list[int]]]
    # (survivor, merged-away customer): customers whose remaining records all go to survivor.
    merges: list[tuple[str, str]]


def plan_reresolution(
    proposed: dict[int, str],
    current: dict[int, str],
    created: Mapping[str, tuple[object, str]],
    new_id: Callable[[], str],
) -> ReresolvePlan:
    """The moves that turn ``current`` (record pk -> customer) into ``proposed`` (record pk ->
    cluster), keeping existing ids: each current customer goes on as the cluster holding most
    of its records (its home; a tie goes to the cluster of its oldest record), and a cluster is
    named after the oldest customer (``created``: sort key by customer) whose home it is - as a
    merge keeps the oldest - or gets a new id. A customer whose home is named after another is
    merged into it, after the records it has elsewhere are split out first."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    first_pk: dict[tuple[str, str], int] = {}
    for pk in sorted(current):
        customer, cluster = current[pk], proposed[pk]
        counts[customer][cluster] += 1
        first_pk.setdefault((customer, cluster), pk)
    home = {
        customer: min(held, key=lambda k: (-held[k], first_pk[(customer, k)]))
        for customer, held in counts.items()
    }
    continuing: dict[str, list[str]] = defaultdict(list)
    for customer, cluster in home.items():
        continuing[cluster].append(customer)
    names: dict[str, str] = {}
    new_customers: list[str] = []
    for cluster in sorted(set(proposed.values())):
        heirs = continuing.get(cluster)
        if heirs:
            names[cluster] = min(heirs, key=lambda c: created[c])
        else:
            names[cluster] = new_id()
            new_customers.append(names[cluster])
    moved: dict[tuple[str, str], list[int]] = defaultdict(list)
    for pk in sorted(current):
        customer, target = current[pk], names[proposed[pk]]
        if target != customer and not (
            names[home[customer]] != customer and proposed[pk] == home[customer]
        ):
            moved[(customer, target)].append(pk)
    splits = [(source, target, pks) for (source, target), pks in sorted(moved.items())]
    merges = sorted(
        (names[cluster], customer)
        for customer, cluster in home.items()
        if names[cluster] != customer
    )
    return ReresolvePlan(names, new_customers, splits, merges)


def changes_dict(result: PreviewResult) -> dict[str, object]:
    """A re-resolution's report as the job keeps it (JSON; ``PreviewRulesResponse`` fields)."""
    return {
        "would_merge_count": result.would_merge_count,
        "would_split_count": result.would_split_count,
        "sample_merges": [
            [[a.source, a.message_id], [b.source, b.message_id]] for a, b in result.sample_merges
        ],
        "sample_splits": [
            [[a.source, a.message_id], [b.source, b.message_id]] for a, b in result.sample_splits
        ],
        "records": result.records,
        "customers_before": result.customers_before,
        "customers_after": result.customers_after,
        "identifier_change_count": len(result.identifier_changes),
        "sample_identifier_changes": [
            {
                "type": c.key.type,
                "value": c.key.value,
                "namespace": c.key.namespace,
                "current_customer_id": c.current_customer_id,
                "change": c.change,
                "proposed_customer_id": c.proposed_customer_id,
                "reason": c.reason,
            }
            for c in result.identifier_changes[:MAX_SAMPLES]
        ],
    }
