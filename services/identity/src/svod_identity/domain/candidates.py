"""Which blocking-key candidates are worth comparing at all (meta-blocking).

Blocks are capped at ``MAX_BLOCK_SIZE``. Inside the cap, a stored record that shares exactly
one name-based key with a new record, taken from a block of more than ``LONE_KEY_MAX_BLOCK``
records, agrees with it on one common combination (first name + surname, surname + birth
year, ...) and on nothing else that blocking saw. With a million customers such blocks hold
dozens of strangers each, and scoring them was most of ResolveBatch's time. A candidate is
compared when it shares two or more keys with the record, or a contact key (phone, e-mail,
card), or any key of a block of at most ``LONE_KEY_MAX_BLOCK`` records.

What it costs in recall was measured on the accuracy sets before choosing the size (true
pairs blocked together that this rule would drop, with the blocking keys of 2026-11-22):
FEBRL3 0 of 6,349, FEBRL4 1 of 4,947, generator seeds 101/202 0 of 9,037 / 8,903 — at a size
of 10 it would be 6, 2, 72 and 46. With the crossed-name and given-name + postcode keys added
later: FEBRL3 0 of 6,390, FEBRL4 0 of 4,961, the generator sets unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from svod_identity.domain.engine import GraphState, KnownRecord, incoming_person, worth_loading
from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.matching.blocking import blocking_keys
from svod_identity.domain.matching.model import MatchModel
from svod_identity.domain.model import IncomingRecord, RecordRef
from svod_identity.domain.rules import Rules

LONE_KEY_MAX_BLOCK = 20
# Blocking-key kinds that are contacts (see matching/blocking.py): always worth comparing.
CONTACT_KEY_PREFIXES = ("p:", "e:", "c:")


@dataclass(frozen=True)
class CandidateSearch:
    """What to look up for a batch's blocking-key candidates, each entry naming its record by
    its index in the batch.

    A record's candidates are fetched only when none of its ``linkable`` identifiers has an
    owner (the others link exactly) or when it is ``forced`` (re-resolution asks for them).
    """

    # (record, identifier the rules let link): an owner of one makes candidates unnecessary.
    linkable: tuple[tuple[int, IdentifierKey], ...] = ()
    # (record, blocking key), each record's keys in order.
    blocking: tuple[tuple[int, str], ...] = ()
    forced: tuple[int, ...] = ()


def candidate_search(
    records: Sequence[IncomingRecord],
    rules: Rules,
    *,
    fuzzy: bool,
    candidates_for: Iterable[RecordRef] = (),
) -> CandidateSearch:
    """The candidate look-up for ``records``: nothing to fetch without fuzzy matching."""
    forced_refs = set(candidates_for)
    forced = tuple(i for i, r in enumerate(records) if r.ref in forced_refs)
    if not fuzzy:
        return CandidateSearch(forced=forced)
    linkable: list[tuple[int, IdentifierKey]] = []
    blocking: list[tuple[int, str]] = []
    for index, record in enumerate(records):
        # Blocking keys read the record's content alone: the person the batch's footprint
        # (and ``worth_loading``) use, whose source is set, gives the same keys.
        person = incoming_person(record, record.identifiers)
        blocking.extend((index, key) for key in sorted(blocking_keys(person)))
        linkable.extend((index, k) for k in record.identifiers if rules.block_reason(k) is None)
    return CandidateSearch(tuple(linkable), tuple(blocking), forced)


def candidates_to_load(
    records: Sequence[IncomingRecord],
    state: GraphState,
    candidates: Mapping[int, KnownRecord],
    rules: Rules,
    model: MatchModel | None,
) -> dict[int, KnownRecord]:
    """The fetched candidates whose customers are worth locking and loading.

    Records of the batch resolved before (in ``state.records``) are never candidates for
    themselves. With ``model``, candidates that score as someone new against every record
    they share a key with are dropped (``worth_loading``); ``state.resolved`` tells which
    records of the batch were looked up afresh.
    """
    kept = {pk: known for pk, known in candidates.items() if pk not in state.records}
    if model is None or not kept:
        return kept
    fetched = [r for r in records if r.ref not in state.resolved]
    keep = worth_loading(fetched, state, kept, rules, model)
    return {pk: known for pk, known in kept.items() if pk in keep}
