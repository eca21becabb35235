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

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from svod_identity.domain.candidates import CONTACT_KEY_PREFIXES, LONE_KEY_MAX_BLOCK
from svod_identity.domain.engine import GraphState, person_from
from svod_identity.domain.matching.blocking import MAX_BLOCK_SIZE, blocking_keys
from svod_identity.domain.model import IncomingRecord

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
        return [
            pk for pk in members if pk in self.worth or (pk < 0 and chunk_of(pk) == self.chunk)
        ]

    def consider(self, record: IncomingRecord, pk: int) -> None:
        """Before ``record`` (engine pk ``pk``) is placed: the earlier records online would
        have fetched for it (``worth_comparing``)."""
        self.chunk = chunk_of(pk)
        person = person_from("0", record.attributes, record.identifiers)
        self.worth = worth_comparing(blocking_keys(person), self)


def worth_comparing(keys: Iterable[str], state: GraphState) -> set[int]:
    """The members of the keys' blocks (at most ``MAX_BLOCK_SIZE`` members each) sharing two
    keys with the record, a contact key, or a block of at most ``LONE_KEY_MAX_BLOCK``: the
    rows ``storage._LOAD_STATE`` reads for a record."""
    shared: dict[int, int] = defaultdict(int)
    smallest: dict[int, int] = {}
    contact: set[int] = set()
    for key in keys:
        members = state.blocks.get(key, [])
        size = len(members) + state.unlisted.get(key, 0)
        if size > MAX_BLOCK_SIZE:
            continue
        is_contact = key.startswith(CONTACT_KEY_PREFIXES)
        for pk in members:
            shared[pk] += 1
            smallest[pk] = min(size, smallest.get(pk, size))
            if is_contact:
                contact.add(pk)
    return {
        pk
        for pk, n in shared.items()
        if n >= 2 or smallest[pk] <= LONE_KEY_MAX_BLOCK or pk in contact
    }
