"""The resolution engine: where a record goes, given the part of the graph it can touch.

Pure code over an in-memory ``GraphState`` that the storage adapter preloads for a batch of
records (owners of their identifiers, candidate records sharing a blocking key, the records
of every customer involved). The same engine re-runs resolution over a whole graph for
``PreviewRules``. Each record goes through:

1. Exact rules: identifiers blocked by the rules (configured values, placeholder phones) or by
   the frequency blocklist do not link; the others, highest priority first, pull the record
   to their owners. Joining an owner - and merging several owners - must pass the conflict
   check (no first-name, birth-date or patronymic conflict between any records of the two
   sides, see ``scoring.conflicts``, judged by the match model: disagreements the data show
   common among matching records are no conflict; nor may a record tied to the other side by
   a mailbox alone come from another city, ``mailbox_stranger``), the per-type value limits
   and "kept apart" decisions;
   an identifier refused because its owner is clearly someone else counts towards that
   value's frequency blocklist.
2. Fuzzy matching when no identifier links: candidates from the blocking-key index (blocks
   over ``MAX_BLOCK_SIZE`` are skipped), Fellegi-Sunter scores with the safety vetoes, then
   link (conflict-checked), review queue, or a new customer. When identifiers did link, fuzzy
   matching still runs for links to further customers (``fuzzy_after_exact``): the person's
   records that share no identifier with this one (a till record by card, a web record by
   e-mail) are found only that way. Measured on generated data (2000 persons, EM): recall
   0.926 -> 0.935 and 0.934 -> 0.943 on two seeds, precision 0.9973 -> 0.9970 and unchanged.
   With a fitted model a full name that only one customer holds, at the same place, stands in
   for the personal evidence the safety rules want (``_rare_name_link``: term frequency from
   the record's ``fs:`` blocks), whatever the average full name and place would score.

Side effects are collected in ``Changes`` for the adapter to write in bulk.

To keep batches cheap the adapter loads only those candidates ``worth_loading`` finds could
score above "new" (their customers are locked and loaded); a record placed without its
candidates is listed in ``Resolver.incomplete`` and the caller loads them and places the batch
again.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import partial
from typing import Any

from svod_identity.domain.identifiers import BlockReason, IdentifierKey
from svod_identity.domain.matching.blocking import MAX_BLOCK_SIZE, blocking_keys, possible_keys
from svod_identity.domain.matching.compare import (
    comparison,
    login_birth_year,
    sex_of_names,
    view,
)
from svod_identity.domain.matching.model import LEVELS, MISSING, MatchModel
from svod_identity.domain.matching.record import PersonRecord, build_person_record, rekeyed
from svod_identity.domain.matching.scoring import (
    CandidateScore,
    PairScore,
    Veto,
    common_name_and_birth_date_loss,
    conflicts,
    rare_shared_login,
    score_candidates,
    score_comparison,
    score_pair,
    surname_change_uncorroborated,
    tf_adjustments,
)
from svod_identity.domain.model import (
    EvidenceKind,
    IncomingRecord,
    RecordRef,
    ResolutionOutcome,
    new_customer_id,
)
from svod_identity.domain.rules import Rules, ordered_by_priority

# Records of a customer the conflict check looks at (the most recent ones).
MAX_CHECK_RECORDS = 50
# Review items one record may open.
MAX_REVIEWS_PER_RECORD = 3
# Full-name blocking keys (canonical given name + surname key, ``matching/blocking.py``).
NAME_KEY_PREFIX = "fs:"
_GIVEN_NAME_AGREES = frozenset({"exact", "equivalent", "fuzzy"})
_SURNAME_AGREES = frozenset({"exact", "fuzzy"})
# One surname, as two records can write it (a man's and a woman's form of it included).
_SURNAME_KEPT = frozenset({"exact", "fuzzy", "gender_form"})
_PLACE_AGREES = frozenset({"address", "postcode", "city"})
# Disagreements with any record of the customer that stop a link on a rare full name.
_RARE_NAME_DISAGREEMENTS = ("phone", "email", "card", "location", "birth_date")
# Disagreements with any record of the customer that stop a link on a rare shared login.
_RARE_LOGIN_DISAGREEMENTS = ("phone", "card", "location", "birth_date")
# Fields on which a holder of the record's full name is known to be another namesake when all
# its records that have the field disagree (``Resolver._another_namesake``).
_NAMESAKE_FEATURES = ("location", "middle_name", "birth_date")
# E-mail levels that tie a record to a mailbox's holder, and the agreements that tie it to a
# person beyond the mailbox (``mailbox_stranger``).
_MAILBOX_TIES = frozenset({"exact", "fuzzy", "local_part"})
_PERSONAL_TIES: dict[str, frozenset[str]] = {
    "phone": frozenset({"agree"}),
    "card": frozenset({"agree"}),
    "birth_date": frozenset({"exact"}),
    "last_name": frozenset({"exact", "fuzzy", "gender_form"}),
}
# Agreements of a fuzzy pair beyond names and a birth date: a pair sharing none of them is a
# thin link, held against every record of both sides (``Resolver._contradicted_thin_link``).
_THIN_LINK_TIES: dict[str, frozenset[str]] = {
    "phone": frozenset({"agree"}),
    "email": _MAILBOX_TIES,
    "card": frozenset({"agree"}),
    "location": _PLACE_AGREES,
}
# Disagreements between the two sides of a thin link, and how many distinct fields of them
# make it another person (``Resolver._contradicted_thin_link``).
_THIN_LINK_DISAGREEMENTS: dict[str, frozenset[str]] = {
    "last_name": frozenset({"changed", "disagree"}),
    "phone": frozenset({"disagree"}),
    "email": frozenset({"disagree"}),
    "card": frozenset({"disagree"}),
    "location": frozenset({"disagree"}),
}
_THIN_LINK_CONTRADICTIONS = 3
# Contacts on which a record and another record of a customer joined by a thin link are told
# apart (``Resolver._thin_chain_apart``).
_CHAIN_CONTACTS = ("phone", "email", "card")
# How many mobile numbers one person's records show: the one they had and, after a change, the
# one they have (``Resolver._mobiles_beyond_a_change``).
_ONE_PERSONS_MOBILES = 2


def _thin_link(levels: Mapping[str, str]) -> bool:
    """A fuzzy pair tied by names and a birth date alone: none of ``_THIN_LINK_TIES``."""
    return not any(levels[feature] in ties for feature, ties in _THIN_LINK_TIES.items())


def person_from(
    key: str, attributes: Mapping[str, Any], identifiers: Iterable[IdentifierKey], source: str = ""
) -> PersonRecord:
    """The matcher's view of a stored or incoming record."""
    by_type: dict[str, list[str]] = defaultdict(list)
    for ident in identifiers:
        by_type[ident.type].append(ident.value)
    addresses = attributes.get("addresses") or [{}]
    address = addresses[0] if addresses else {}
    first, last = attributes.get("first_name"), attributes.get("last_name")
    if not first and not last and attributes.get("full_name"):
        parts = str(attributes["full_name"]).split()
        if len(parts) >= 2:
            last, first = parts[0], parts[1]
    return build_person_record(
        key,
        first_name=first,
        last_name=last,
        middle_name=attributes.get("middle_name"),
        birth_date=attributes.get("birth_date"),
        gender=attributes.get("gender"),
        phones=by_type["phone"],
        emails=by_type["email"],
        cards=by_type["loyalty_card"],
        city=address.get("city"),
        address_line=address.get("address_line"),
        source=source,
        postcode=address.get("postal_code"),
        # Identifier keys are normalised when a record comes in (identifiers.py).
        normalized=True,
    )


# Where ``incoming_person`` keeps an incoming record's matcher views (in the record object's
# ``__dict__``: fields, equality and hashing ignore it).
_PEOPLE = "_people"


def incoming_person(record: IncomingRecord, identifiers: Sequence[IdentifierKey]) -> PersonRecord:
    """``person_from("0", record.attributes, identifiers, record.ref.source)``, built once per
    record and identifiers. A bulk ResolveBatch asked for it four times a record (its
    footprint, the candidate search, ``worth_loading``, the resolver), with the same
    identifiers unless some are blocked: 11 us each warm, 38 us the first time (probe, 5,000
    generated records), against identity's ~0.6 ms a record in all."""
    memo: dict[tuple[IdentifierKey, ...], PersonRecord] = record.__dict__.setdefault(_PEOPLE, {})
    key = tuple(identifiers)
    person = memo.get(key)
    if person is None:
        person = memo[key] = person_from("0", record.attributes, key, record.ref.source)
    return person


def record_lock_key(ref: RecordRef) -> str:
    """The lock that keeps two transactions from placing one record twice."""
    return f"record\x1f{ref.source}\x1f{ref.message_id}"


def footprint(record: IncomingRecord) -> frozenset[str]:
    """What placing ``record`` can depend on in the other records of its import: its own ref,
    its identifiers and every blocking key it may get (``possible_keys``). Of two parts of an
    import with no footprint in common, neither holds an owner, a candidate or a repeat for the
    other; what they may still share is an existing customer, whose row lock orders them."""
    person = incoming_person(record, record.identifiers)
    return frozenset(
        (
            record_lock_key(record.ref),
            *(key.lock_key for key in record.identifiers),
            *possible_keys(person),
        )
    )


def split_independent(
    footprints: Sequence[frozenset[str]], busy: set[str]
) -> tuple[list[int], list[int]]:
    """Positions of the records (given by footprint, in import order) that can be placed now,
    beside the work on ``busy`` tokens, and of those that must wait for it: a record waits when
    it shares a token with ``busy`` or with a waiting record before it. Every pair of records
    that could meet is then placed in import order."""
    now: list[int] = []
    later: list[int] = []
    blocked = set(busy)
    for position, tokens in enumerate(footprints):
        if blocked.isdisjoint(tokens):
            now.append(position)
        else:
            later.append(position)
            blocked |= tokens
    return now, later


@dataclass
class KnownRecord:
    pk: int
    ref: RecordRef
    customer_id: str
    person: PersonRecord
    identifiers: tuple[IdentifierKey, ...]


@dataclass
class KnownCustomer:
    customer_id: str
    created_at: dt.datetime
    # Record pks known to the engine (the most recent ones when loaded from storage).
    records: list[int] = field(default_factory=list)
    # Identifiers it owns (complete for customers loaded by the adapter).
    keys: set[IdentifierKey] = field(default_factory=set)


@dataclass
class GraphState:
    customers: dict[str, KnownCustomer] = field(default_factory=dict)
    owners: dict[IdentifierKey, str] = field(default_factory=dict)
    sharers: dict[IdentifierKey, set[str]] = field(default_factory=dict)
    blocked: dict[IdentifierKey, str] = field(default_factory=dict)
    records: dict[int, KnownRecord] = field(default_factory=dict)
    resolved: dict[RecordRef, int] = field(default_factory=dict)
    blocks: dict[str, list[int]] = field(default_factory=dict)
    # Stored members of a block left out of ``blocks`` (not worth comparing, so not loaded):
    # they still count towards its size.
    unlisted: dict[str, int] = field(default_factory=dict)
    kept_apart: set[frozenset[str]] = field(default_factory=set)
    # Merged-away customer -> survivor (merges the engine made, and known older ones).
    alias: dict[str, str] = field(default_factory=dict)
    # Record pks the adapter allocated ahead for this batch's new records.
    free_pks: list[int] = field(default_factory=list)
    # Blocking keys whose stored members are in ``blocks``; None: all of them.
    fetched_keys: set[str] | None = None

    def comparable(self, key: str) -> list[int]:
        """The members of a key's block, or none when the block is too big to say anything
        about identity (``MAX_BLOCK_SIZE``)."""
        members = self.blocks.get(key, [])
        if len(members) + self.unlisted.get(key, 0) > MAX_BLOCK_SIZE:
            return []
        return members

    def find(self, customer_id: str) -> str:
        seen = 0
        while customer_id in self.alias and seen < 64:
            customer_id = self.alias[customer_id]
            seen += 1
        return customer_id

    def add_record(self, record: KnownRecord, keys: Iterable[str] = ()) -> None:
        self.records[record.pk] = record
        self.resolved[record.ref] = record.pk
        customer = self.customers.get(record.customer_id)
        if customer is not None:
            customer.records.append(record.pk)
        for key in keys:
            self.blocks.setdefault(key, []).append(record.pk)


@dataclass(frozen=True)
class Merge:
    survivor: str
    merged: tuple[str, ...]
    ref: RecordRef | None
    rule: str
    record_pk: int | None = None


@dataclass(frozen=True)
class NewRecord:
    pk: int  # negative: a placeholder until storage assigns the real one
    record: IncomingRecord
    customer_id: str
    outcome: ResolutionOutcome
    rule: str
    evidence: dict[str, Any]
    blocking_keys: tuple[str, ...]


@dataclass(frozen=True)
class ReviewDraft:
    review_item_id: str
    record_pk: int
    candidate_record_pk: int
    candidate_customer_id: str
    score: float
    probability: float
    explanation: dict[str, Any]


@dataclass
class Changes:
    customers: list[tuple[str, dt.datetime]] = field(default_factory=list)
    records: list[NewRecord] = field(default_factory=list)
    links: list[tuple[IdentifierKey, str, str, dt.datetime]] = field(default_factory=list)
    touches: list[tuple[IdentifierKey, dt.datetime]] = field(default_factory=list)
    sharers: dict[IdentifierKey, set[str]] = field(default_factory=dict)
    blocked: list[tuple[IdentifierKey, str, int]] = field(default_factory=list)
    merges: list[Merge] = field(default_factory=list)
    reviews: list[ReviewDraft] = field(default_factory=list)


@dataclass(frozen=True)
class Placement:
    """Where one record went."""

    ref: RecordRef
    customer_id: str
    outcome: ResolutionOutcome
    rule: str
    identifiers: tuple[IdentifierKey, ...]
    unlinked: tuple[tuple[IdentifierKey, str], ...] = ()
    score: float = 0.0
    merged: tuple[str, ...] = ()
    review_item_ids: tuple[str, ...] = ()
    record_pk: int = 0


class Refusal(StrEnum):
    """Why a customer may not join the record's customers (``Resolver.refusal``), or a
    customer may not take an identifier: the reason the identifier stays unlinked."""

    KEPT_APART = "kept_apart"
    LIMIT = "limit"
    CONFLICT = "conflict"


# Refusals that make an identifier shared between its holder and the record's customer (a
# value limit does not: the two may well be one person).
_SHARING = frozenset({Refusal.CONFLICT, Refusal.KEPT_APART})


@dataclass
class _Screening:
    """A record's identifiers before linking: those that may link, and those blocked."""

    linkable: list[IdentifierKey] = field(default_factory=list)
    unlinked: dict[IdentifierKey, str] = field(default_factory=dict)  # identifier -> reason


@dataclass
class _ExactLinks:
    """What the record's identifiers found: customers joined and identifiers refused."""

    customers: list[str] = field(default_factory=list)  # in the rules' priority order
    via: dict[str, IdentifierKey] = field(default_factory=dict)  # customer -> identifier
    refusals: dict[IdentifierKey, str] = field(default_factory=dict)  # identifier -> Refusal
    refused: list[tuple[IdentifierKey, str]] = field(default_factory=list)  # (it, its owner)
    # A mailbox refused as a household's another member uses (``family_member``).
    family_box: bool = False

    @property
    def rule(self) -> str:
        return "exact:" + "+".join(sorted({self.via[c].type for c in self.customers}))

    @property
    def evidence(self) -> dict[str, Any]:
        first = self.via[self.customers[0]]
        return {
            "kind": EvidenceKind.SHARED_IDENTIFIER,
            "identifier": [first.type, first.namespace, first.value],
        }


@dataclass
class _FuzzyLinks:
    """What fuzzy matching found: customers to join, the first one's score and evidence, and
    the candidates left for review."""

    customers: list[str]
    evidence: dict[str, Any] = field(default_factory=dict)
    score: float = 0.0
    reviews: list[tuple[str, CandidateScore]] = field(default_factory=list)


@dataclass(frozen=True)
class _Match:
    """Where matching puts a record: the customers it joins (none: a new one), and why."""

    customers: list[str]
    outcome: ResolutionOutcome
    rule: str
    evidence: dict[str, Any]
    blocking_keys: tuple[str, ...]
    score: float = 0.0
    reviews: list[tuple[str, CandidateScore]] = field(default_factory=list)

    @classmethod
    def new_customer(
        cls,
        blocking_keys: tuple[str, ...],
        evidence: dict[str, Any] | None = None,
        score: float = 0.0,
        reviews: list[tuple[str, CandidateScore]] | None = None,
    ) -> _Match:
        """A record matching no one: a new customer (candidates may still go to review)."""
        return cls(
            [],
            ResolutionOutcome.CREATED,
            "new_customer",
            evidence or {"kind": EvidenceKind.NEW_CUSTOMER},
            blocking_keys,
            score,
            reviews or [],
        )


@dataclass(frozen=True)
class _Destination:
    """The record's customer, and the customers merged into it on the way."""

    customer_id: str
    merged: tuple[str, ...]


def _fuzzy_evidence(scored: CandidateScore) -> dict[str, Any]:
    evidence: dict[str, Any] = {
        "kind": EvidenceKind.FUZZY_MATCH,
        "record_pk": int(scored.candidate_id),
        "score": round(scored.score, 4),
        "probability": round(scored.probability, 6),
    }
    if scored.pair.vetoes == (Veto.SURNAME_CHANGE_UNCORROBORATED,):
        # Linked on a married name, the same given name, birth date and place
        # (``_married_name_link``).
        evidence["married_name"] = True
    elif scored.pair.decision != "link" and scored.pair.vetoes:
        # Linked on a full name only this customer holds (see ``_rare_name_link``); the pair
        # alone says "review".
        evidence["rare_full_name"] = True
    elif scored.pair.decision != "link":
        # Linked on a login one person keeps across providers (``_rare_login_link``).
        evidence["rare_login"] = True
    return evidence


def worth_loading(
    records: Iterable[IncomingRecord],
    state: GraphState,
    candidates: Mapping[int, KnownRecord],
    rules: Rules,
    model: MatchModel,
) -> set[int]:
    """The candidates that could matter to fuzzy matching: those scoring above "new" against
    some record of the batch sharing a blocking key with them.

    The others are skipped by ``Resolver._fuzzy`` anyway, so the adapter need neither lock nor
    load their customers. The record is scored as the resolver will see it: without
    identifiers the rules or the stored blocklist refuse.
    """
    model = model.with_thresholds(rules.auto_link_threshold, rules.review_threshold)
    keep: set[int] = set()
    for record in records:
        linkable = [
            k
            for k in record.identifiers
            if rules.block_reason(k) is None and k not in state.blocked
        ]
        person = incoming_person(record, linkable)
        pks: set[int] = set()
        for key in blocking_keys(person):
            pks.update(state.comparable(key))
        for pk in pks - keep:
            known = candidates.get(pk)
            if known is not None and score_pair(person, known.person, model).decision != "new":
                keep.add(pk)
    return keep


def _recency(pk: int) -> tuple[bool, int]:
    """Stored records (positive pks) by age, then this batch's (negative) in order."""
    return (pk < 0, abs(pk))


def conflicting(
    a: PersonRecord, b: PersonRecord, model: MatchModel | None = None, unscored: bool = False
) -> bool:
    """A conflict between two records (see ``scoring.conflicts``), judged by ``model``.

    ``unscored``: the records are joined by a shared identifier, which no score weighs. A
    disagreement the model finds common among matching records (``scoring.noisy``) is then
    a conflict still where the two records, with all they share, score "new": "noisy" means
    weighed by the score, and a fuzzy link's own pair was. EM on households seed 2026 at
    20,000 persons puts a given-name disagreement among matches at 1.28% (over the 1% bound;
    under it at 3000 persons), and a family mailbox joined Дмитрий, Елена, Александр and Ольга
    Иванов(а) in one customer (pairs of -12 bits and less). Measured (offline.py, EM): that set
    P 0.9777 -> 0.9834, F1 0.9318 -> 0.9351, at most 4 -> 3 persons a customer; generator
    101/202, households 606/1313/2424 at 3000, FEBRL3/4: no decision changed. For fuzzy links
    too it cost FEBRL3 F1 0.9932 -> 0.9907 (two garbled records of one person score "new"
    against each other while each links to a third).
    """
    levels = comparison(a, b)
    if conflicts(levels, model):
        return True
    return (
        unscored
        and model is not None
        and conflicts(levels)
        and score_pair(a, b, model).decision == "new"
    )


def mailbox_stranger(person: PersonRecord, theirs: Sequence[PersonRecord]) -> bool:
    """Whether the only thing tying the record to a customer's records is a mailbox: it shares
    an e-mail (or its login) with some of them, but no mobile, card, birth date or surname
    with any, and its city differs from that of every record that names one. Two people of one
    first name who use one mailbox (a family's box, a login typed from memory), not one
    person: a person who moved keeps the surname, the phone or the birth date somewhere in
    their records.

    A cluster-level check: the record is compared with all the customer's records the engine
    holds (``MAX_CHECK_RECORDS``), so a record tied by e-mail to one record of a chain cannot
    pull in a stranger from another city. Measured (benchmarks/identity/offline.py, EM):
    households seeds 303/909 at 3000 persons and 7717 at 4000 F1 0.9396 -> 0.9417 (P 0.9897 ->
    0.9938, at most 3 persons per customer -> 2), 0.9372 -> 0.9390, 0.9315 -> 0.9325; generator
    seeds 101/202 at 3000 and 5151 at 4000 unchanged (no such pair links there). Also asking a
    new mobile for a record under the same surname (no move) cost the first generator recall
    (seed 101 0.9466 -> 0.9459, 5151 0.9420 -> 0.9406): people change numbers and keep the
    e-mail.
    """
    levels = _tied_by_a_mailbox_alone(person, theirs, _PERSONAL_TIES)
    if levels is None:
        return False
    places = [lv["location"] for lv in levels if lv["location"] != MISSING]
    return bool(places) and all(place == "disagree" for place in places)


def _tied_by_a_mailbox_alone(
    person: PersonRecord,
    theirs: Sequence[PersonRecord],
    own_ties: Mapping[str, frozenset[str]],
) -> list[Mapping[str, str]] | None:
    """The record's comparisons with the customer's records when it shares a mailbox (an
    e-mail or its login) with some of them and none of ``own_ties`` with any; else None."""
    if not theirs:
        return None
    levels = [comparison(person, other) for other in theirs]
    if not any(lv["email"] in _MAILBOX_TIES for lv in levels):
        return None
    if any(lv[f] in ties for lv in levels for f, ties in own_ties.items()):
        return None
    return levels


# Agreements that tie a record to one person of a household sharing a mailbox or a landline:
# what a family does not share (``another_holders_contact``).
_OWN_TIES: dict[str, frozenset[str]] = {
    "phone": frozenset({"agree"}),
    "card": frozenset({"agree"}),
    "birth_date": frozenset({"exact"}),
}
# The holders' surname under another name, or in the other gender's form (Голубева on the box
# of Алексей Голубев: his wife, not him; ``another_holders_contact``).
_OTHER_SURNAME = frozenset({"changed", "disagree", "gender_form"})
# What one member of a household has of their own, the mailbox, surname and home aside.
_MEMBERS_OWN: dict[str, frozenset[str]] = {
    **_OWN_TIES,
    "birth_date": frozenset({"exact", "typo"}),
    "first_name": _GIVEN_NAME_AGREES,
}
# Feature -> level -> its place in ``LEVELS`` (0: the strongest agreement).
_RANK: dict[str, dict[str, int]] = {
    feature: {level: rank for rank, level in enumerate(levels)}
    for feature, levels in LEVELS.items()
}


def another_holders_contact(person: PersonRecord, theirs: Sequence[PersonRecord]) -> bool:
    """Whether the record is tied to a customer's records only by a contact a household
    shares (a mailbox, its login, a landline), while every record of the customer with a
    mobile has another mobile and another surname than the record: the contact's holders are
    known by their own number and name, and the record is someone else of the household who
    uses their mailbox (a daughter using her mother's box), not a holder.

    A cluster-level check like ``mailbox_stranger``, against every loaded record of the
    customer. Households seed 1313 (3000 persons, EM): a mother «Иванова Елена Александровна»
    and two daughters «Герасимова Елена Александровна» of one family mailbox in Казань ended
    in one customer; the second daughter's mobile and surname both differ from the mother's.
    Measured (offline.py, EM, 3000 persons): that set P 0.9910 -> 0.9913, F1 0.9441 -> 0.9442,
    at most 3 -> 2 persons a customer; households 606 P 0.9900 -> 0.9905, F1 0.9410 -> 0.9408,
    2424 F1 0.9461 -> 0.9460 (records of one person on her box under another surname with a
    new mobile stay apart too); households 303/404, generator 101/202, FEBRL3/4: no decision
    changed.

    The surname's other gender form is another surname here (a household's man and woman; EM
    finds it in 0.3% of matching pairs against 11% of the others, generator seed 303). There
    «Голубева» (no given name) with her own mobile and card joined «Алексей Голубев»'s
    customer on the family's box, and through the service a namesake of his, linked by the
    rare-name rule before her record arrived (two chunks of one ResolveBatch in flight), made
    it three persons; in import order her card stopped the namesake. Measured (offline.py,
    EM, 3000 persons; before -> after): generator 303 P 0.9966 -> 0.9966, F1 0.9719 ->
    0.9720, through the API (bench_accuracy) F1 0.9718 -> 0.9720, at most 3 -> 2 persons a
    customer; households 606 P 0.9905 -> 0.9907, F1 0.9440 -> 0.9441, 1313 P 0.9913 ->
    0.9917, F1 0.9457 -> 0.9460, 7171 P 0.9957 -> 0.9958, F1 0.9561 -> 0.9561; households
    303/2026/2424, generator 101/202, FEBRL3/4: no decision changed.
    """
    if not theirs:
        return False
    own = view(person).mobiles
    if not own:
        return False
    levels = [comparison(person, other) for other in theirs]
    if not any(lv["email"] in _MAILBOX_TIES or lv["phone"] == "agree_landline" for lv in levels):
        return False
    if any(lv[f] in ties for lv in levels for f, ties in _OWN_TIES.items()):
        return False
    holders = [lv for lv, other in zip(levels, theirs, strict=True) if view(other).mobiles]
    return bool(holders) and all(lv["last_name"] in _OTHER_SURNAME for lv in holders)


def family_member(person: PersonRecord, theirs: Sequence[PersonRecord]) -> bool:
    """Whether the record is tied to a customer's records only by a mailbox (the same e-mail or
    its login; no mobile, card or birth date in common with any of them: ``_OWN_TIES``) while
    the names of one of the customer's records say another sex than the record's
    (``compare.sex_of_names``: a given name of one sex, else the patronymic, else a Russian
    surname's ending): someone else of a household using its mailbox (a son on his mother's
    box, a wife on her husband's), not a holder. A cluster-level check like
    ``another_holders_contact``; the mailbox stays its holder's, refused to the record and
    shared (``Resolver._count_refused_sharers``).

    An e-mail joins without a score, so neither the pair rule ``Resolver._two_sexes`` nor the
    conflict check (``conflicting``: EM's match class takes in relatives, and with the mailbox
    and the surname the pair does not score "new") sees the sexes. Households seed 1717 at
    20,000 persons (EM): «Смирнова Елена» of Омск, then «Смирнов» born 1992-09-02 on her box
    by the exact e-mail, then another «Смирнова Елена»: one customer of three persons.
    A birth date 15 years or more apart, or two unlike patronymics, on such a join were
    measured too (offline probe): no exact join the conflict check lets through has them.
    """
    if _tied_by_a_mailbox_alone(person, theirs, _OWN_TIES) is None:
        return False
    mine = sex_of_names(person)
    if mine is None:
        return False
    return any(sex_of_names(other) not in (None, mine) for other in theirs)


class Resolver:
    """Places records one after another, updating ``state`` and collecting ``changes``."""

    def __init__(
        self,
        state: GraphState,
        rules: Rules,
        model: MatchModel,
        *,
        now: Callable[[], dt.datetime] | None = None,
        new_id: Callable[[], str] | None = None,
        fuzzy_merges: bool = True,
        fuzzy_after_exact: bool = True,
        rare_names: bool = True,
    ) -> None:
        self.state = state
        self.rules = rules
        self.model = model.with_thresholds(rules.auto_link_threshold, rules.review_threshold)
        self.changes = Changes()
        self._now = now or (lambda: dt.datetime.now(dt.UTC))
        self._new_id = new_id or new_customer_id
        self._next_pk = -1
        self.fuzzy_merges = fuzzy_merges
        self.fuzzy_after_exact = fuzzy_after_exact
        self.rare_names = rare_names
        self._has_limits = any(r.max_values_per_customer > 0 for r in rules.identifier_rules)
        # Customer -> its records for the checks, while one record is linked and matched.
        self._members: dict[str, list[PersonRecord]] | None = None
        # Records that needed fuzzy matching on blocking keys the state was not loaded with
        # (their identifiers had owners, all refused): the caller reloads and re-runs.
        self.incomplete: list[RecordRef] = []

    # -- checks ---------------------------------------------------------------------------

    def _no_record_disagrees(self, person: PersonRecord, owner: str) -> bool:
        """Whether no record of ``owner`` disagrees with ``person`` on a contact, the place or
        the birth date: the guard of every link made on weaker evidence than a shared contact
        (a namesake's records say so as soon as they exist)."""
        return not any(
            comparison(person, other)[feature] == "disagree"
            for other in self._persons(owner)
            for feature in _RARE_NAME_DISAGREEMENTS
        )

    def _persons(self, customer_id: str) -> list[PersonRecord]:
        """The customer's records the checks look at (the most recent ``MAX_CHECK_RECORDS``),
        listed once per customer while a record is matched (``_members``): the conflict check,
        the mailbox check and the weak-evidence guards ask for the same customers' records."""
        members = self._members
        if members is not None:
            found = members.get(customer_id)
            if found is None:
                found = members[customer_id] = self._list_persons(customer_id)
            return found
        return self._list_persons(customer_id)

    def _list_persons(self, customer_id: str) -> list[PersonRecord]:
        customer = self.state.customers.get(customer_id)
        if customer is None:
            return []
        records = self.state.records
        pks = customer.records[-MAX_CHECK_RECORDS:]
        return [records[pk].person for pk in pks if pk in records]

    def _limit_exceeded(self, keys: Iterable[IdentifierKey]) -> bool:
        counts: dict[tuple[str, str], int] = defaultdict(int)
        for key in set(keys):
            scope = self.rules.limit_scope(key)
            if scope is not None:
                counts[scope] += 1
        for (id_type, namespace), n in counts.items():
            limit = self.rules.rule_for(IdentifierKey(id_type, "", namespace))
            if 0 < limit.max_values_per_customer < n:
                return True
        return False

    def refusal(
        self, person: PersonRecord | None, group: list[str], other: str, unscored: bool = False
    ) -> Refusal | None:
        """Why ``other`` may not join the record's ``group`` of customers, or None.
        ``unscored``: joined by a shared identifier, not a scored pair (``conflicting``)."""
        for member in group:
            if frozenset((member, other)) in self.state.kept_apart:
                return Refusal.KEPT_APART
        if self._has_limits:
            keys: set[IdentifierKey] = set()
            for member in [*group, other]:
                customer = self.state.customers.get(member)
                if customer is not None:
                    keys |= customer.keys
            if self._limit_exceeded(keys):
                return Refusal.LIMIT
        side = [p for member in group for p in self._persons(member)]
        if person is not None:
            side.append(person)
        theirs = self._persons(other)
        for a in side:
            for b in theirs:
                if conflicting(a, b, self.model, unscored):
                    return Refusal.CONFLICT
        if person is not None and (
            mailbox_stranger(person, theirs)
            or another_holders_contact(person, theirs)
            or family_member(person, theirs)
        ):
            return Refusal.CONFLICT
        return None

    # -- placement ------------------------------------------------------------------------

    def resolve(self, record: IncomingRecord) -> Placement:
        """Places one record: screens its identifiers, links it by the exact rules, matches it
        fuzzily, then settles its customer and writes down what changed (module docstring)."""
        known = self.state.resolved.get(record.ref)
        if known is not None:
            return self._already_resolved(record, known)
        pk = self._allocate_pk()
        screening = self._screen_identifiers(record)
        # Blocked values are no evidence of anything, for fuzzy matching either.
        person = rekeyed(incoming_person(record, screening.linkable), str(pk))
        # Linking and matching change no customer's records: theirs are listed once for both.
        self._members = {}
        try:
            exact = self._link_exact(person, screening.linkable)
            match = self._match(record.ref, person, exact)
        finally:
            self._members = None
        destination = self._settle_customer(record.ref, pk, match)
        unlinked = {**screening.unlinked, **exact.refusals}
        unlinked |= self._claim_identifiers(record, screening.linkable, unlinked, destination)
        self._count_refused_sharers(exact, unlinked, destination)
        review_ids = self._store_record(record, pk, person, match, destination)
        return Placement(
            record.ref,
            destination.customer_id,
            match.outcome,
            match.rule,
            record.identifiers,
            tuple(sorted(unlinked.items())),
            match.score,
            destination.merged,
            review_ids,
            pk,
        )

    def _already_resolved(self, record: IncomingRecord, pk: int) -> Placement:
        """A record placed before (a repeat): where it is now, nothing changed."""
        stored = self.state.records[pk]
        return Placement(
            record.ref,
            self.state.find(stored.customer_id),
            ResolutionOutcome.ALREADY_RESOLVED,
            "",
            stored.identifiers,
            record_pk=pk,
        )

    def _allocate_pk(self) -> int:
        pk = self._next_pk
        self._next_pk -= 1
        return pk

    def _screen_identifiers(self, record: IncomingRecord) -> _Screening:
        """Phase 1: the identifiers that may link, and those blocked by the rules or the
        blocklist (a placeholder value found now joins the blocklist)."""
        screening = _Screening()
        for key in record.identifiers:
            reason = self.rules.block_reason(key) or self.state.blocked.get(key)
            if reason is None:
                screening.linkable.append(key)
                continue
            screening.unlinked[key] = reason
            if reason == BlockReason.PLACEHOLDER and key not in self.state.blocked:
                self.state.blocked[key] = reason
                self.changes.blocked.append((key, reason, 0))
        return screening

    def _link_exact(self, person: PersonRecord, linkable: Sequence[IdentifierKey]) -> _ExactLinks:
        """Phase 2: the owners of the record's identifiers, highest priority first, each
        joining only if ``refusal`` lets it."""
        links = _ExactLinks()
        for key in ordered_by_priority(self.rules, linkable):
            owner = self.state.owners.get(key)
            if owner is None:
                continue
            owner = self.state.find(owner)
            if owner in links.customers:
                continue
            why = self.refusal(person, links.customers, owner, unscored=True)
            if why is None:
                links.customers.append(owner)
                links.via[owner] = key
            else:
                links.refusals[key] = why
                links.refused.append((key, owner))
                if why == Refusal.CONFLICT and not links.family_box:
                    links.family_box = family_member(person, self._persons(owner))
        return links

    def _match(self, ref: RecordRef, person: PersonRecord, exact: _ExactLinks) -> _Match:
        """Phase 3: fuzzy matching, for further customers of an exactly linked record
        (``fuzzy_after_exact``) or for any customer of one its identifiers did not link; a
        record matching no one is a new customer."""
        keys = tuple(sorted(blocking_keys(person)))
        fuzzy_enabled = not self.rules.fuzzy_disabled
        if exact.customers:
            customers = list(exact.customers)
            if self.fuzzy_after_exact and fuzzy_enabled:
                # The identifiers found one of the person's customers; fuzzy matching finds
                # the others (records of the person that share no identifier with this one:
                # a till record by card, a web record by e-mail). Each joins only through a
                # "link" decision that passes the conflict check against the whole group.
                self._note_unloaded(ref, keys)
                more = self._fuzzy(person, keys, customers, exact.family_box).customers
                customers.extend(c for c in more if c not in customers)
            return _Match(
                customers, ResolutionOutcome.LINKED_EXACT, exact.rule, exact.evidence, keys
            )
        if not fuzzy_enabled:
            return _Match.new_customer(keys)
        self._note_unloaded(ref, keys)
        fuzzy = self._fuzzy(person, keys, family_box=exact.family_box)
        if not fuzzy.customers:
            return _Match.new_customer(keys, fuzzy.evidence, fuzzy.score, fuzzy.reviews)
        return _Match(
            fuzzy.customers,
            ResolutionOutcome.LINKED_FUZZY,
            "fuzzy",
            fuzzy.evidence,
            keys,
            fuzzy.score,
            fuzzy.reviews,
        )

    def _note_unloaded(self, ref: RecordRef, keys: tuple[str, ...]) -> None:
        """Lists the record as ``incomplete`` when the state lacks some of its blocks."""
        fetched = self.state.fetched_keys
        if fetched is not None and not fetched.issuperset(keys):
            self.incomplete.append(ref)

    def _settle_customer(self, ref: RecordRef, pk: int, match: _Match) -> _Destination:
        """Phase 4a: the record's customer - a new one, or the oldest of those it joins, the
        others merged into it."""
        state = self.state
        if not match.customers:
            customer_id = self._new_id()
            created = self._now()
            state.customers[customer_id] = KnownCustomer(customer_id, created)
            self.changes.customers.append((customer_id, created))
            return _Destination(customer_id, ())
        survivor = min(match.customers, key=lambda c: (state.customers[c].created_at, c))
        merged = tuple(sorted(c for c in match.customers if c != survivor))
        if merged:
            self._merge(survivor, merged, ref, match.rule, pk)
        return _Destination(survivor, merged)

    def _claim_identifiers(
        self,
        record: IncomingRecord,
        linkable: Sequence[IdentifierKey],
        unlinked: Mapping[IdentifierKey, str],
        destination: _Destination,
    ) -> dict[IdentifierKey, str]:
        """Phase 4b: the customer takes the record's identifiers nobody owns (those already
        owned are touched); returns those the per-type value limits keep from it."""
        customer_id = destination.customer_id
        customer = self.state.customers[customer_id]
        seen = record.observed_at
        over_limit: dict[IdentifierKey, str] = {}
        for key in linkable:
            if key in unlinked or key in over_limit:
                continue
            if self.state.owners.get(key) is not None:
                self.changes.touches.append((key, seen))
                continue
            if self._has_limits and self._limit_exceeded({*customer.keys, key}):
                over_limit[key] = Refusal.LIMIT
                continue
            self.state.owners[key] = customer_id
            customer.keys.add(key)
            self.changes.links.append((key, customer_id, record.ref.source, seen))
        return over_limit

    def _count_refused_sharers(
        self,
        exact: _ExactLinks,
        unlinked: Mapping[IdentifierKey, str],
        destination: _Destination,
    ) -> None:
        """Phase 4c: an identifier refused because its holder and this record's customer are
        clearly different people (their data conflict, or a person kept them apart) is shared:
        it names neither on its own (``domain/lookup.py``), and it counts towards the frequency
        blocklist."""
        customer_id = destination.customer_id
        for key, owner in exact.refused:
            if unlinked.get(key) not in _SHARING or self.state.find(owner) == customer_id:
                continue
            self._count_sharer(key, owner, customer_id)

    def _store_record(
        self,
        record: IncomingRecord,
        pk: int,
        person: PersonRecord,
        match: _Match,
        destination: _Destination,
    ) -> tuple[str, ...]:
        """Phase 4d: the record joins the state and the changes; review items open for the
        candidates left to a human. Returns their ids."""
        customer_id = destination.customer_id
        self.state.add_record(
            KnownRecord(pk, record.ref, customer_id, person, record.identifiers),
            match.blocking_keys,
        )
        self.changes.records.append(
            NewRecord(
                pk,
                record,
                customer_id,
                match.outcome,
                match.rule,
                match.evidence,
                match.blocking_keys,
            )
        )
        return self._open_reviews(pk, customer_id, match.reviews)

    def _fuzzy(
        self,
        person: PersonRecord,
        keys: tuple[str, ...],
        linked: Sequence[str] = (),
        family_box: bool = False,
    ) -> _FuzzyLinks:
        """The customers fuzzy matching links the record to (after ``linked``, those already
        found), best score first, each passing ``refusal``; the others scoring "link" or
        "review" are left for review. ``family_box``: one of the record's mailboxes was refused
        as a household's (``family_member``)."""
        best = self._best_candidates(person, keys)
        found = _FuzzyLinks(list(linked))
        for owner, scored in sorted(best.items(), key=lambda item: -item[1].score):
            if owner in linked:
                continue
            if not self._fuzzy_joins(person, found.customers, owner, scored, family_box):
                found.reviews.append((owner, scored))
                continue
            if not found.customers:
                found.score = scored.probability
                found.evidence = _fuzzy_evidence(scored)
            found.customers.append(owner)
        return found

    def _fuzzy_joins(
        self,
        person: PersonRecord,
        customers: list[str],
        owner: str,
        scored: CandidateScore,
        family_box: bool = False,
    ) -> bool:
        """Whether a candidate customer joins the record's ``customers``: on a "link"
        decision, as the first of them unless ``fuzzy_merges``, and past ``refusal``."""
        return (
            scored.decision == "link"
            and (self.fuzzy_merges or not customers)
            and self.refusal(person, customers, owner) is None
            and not self._another_mans_surname(person, owner, customers)
            and not self._contradicted_thin_link(person, customers, owner, scored)
            and not self._thin_link_on_a_common_name_and_date(person, customers, owner, scored)
            and not self._thin_chain_apart(person, owner, scored)
            and not self._mobiles_beyond_a_change(person, customers, owner, scored)
            and not self._two_sexes(person, scored)
            and not (family_box and self._on_the_family_box(scored))
        )

    def _on_the_family_box(self, scored: CandidateScore) -> bool:
        """Whether a fuzzy link of a record whose mailbox was refused as a household's
        (``family_member``) rests on what a household shares: the pair holds the mailbox but
        nothing of a member's own (``_MEMBERS_OWN``: a given name, a birth date, a mobile, a
        card), only the surname and the home besides. The link goes to review.

        Households seed 5151 at 20,000 persons (EM): «Ефимова» (the surname alone) on the
        box her father holds, refused as his, then linked on the box and the surname to her
        mother's customer. Without it (``family_member`` alone) that set's precision went
        0.9920 -> 0.9919; weighing the link without the e-mail's weight instead refused a
        member's own records, linked to each other by the box and the given name (5151 R
        0.8931 -> 0.8927)."""
        levels = scored.pair.levels
        if levels["email"] not in _MAILBOX_TIES:
            return False
        return not any(levels[f] in ties for f, ties in _MEMBERS_OWN.items())

    def _contradicted_thin_link(
        self, person: PersonRecord, group: Sequence[str], owner: str, scored: CandidateScore
    ) -> bool:
        """Whether a fuzzy link on names and a birth date alone (no contact and no place in
        common: ``_THIN_LINK_TIES``) joins two sides whose records disagree on the surname, the
        place and a contact at once (``_THIN_LINK_CONTRADICTIONS`` distinct fields of
        ``_THIN_LINK_DISAGREEMENTS``): the record and the customers it has joined already
        (``group``) on one side, ``owner`` on the other. The sides as wholes: the pair that
        linked lacks what the others' records say (a till record with a card, a given name
        and a birth date), as the rest of a customer of two people does.

        Given names and birth dates grow common with the base (2008, the year the households
        generator clamps children to): households seed 8787 at 20,000 persons (EM) made three
        customers of three and four persons that way - «Елена Владимировна» born 2008-08-12
        with Соловьёва's card (Уфа) merged Харитонова of Новосибирск and Иванова of
        Санкт-Петербург, born the same day. One disagreement is a life (a new mobile, a move, a
        married name); three at once are another person. Thin links made there (offline
        probe; joining one person / two): no field disagreeing 942/10, one 150/2, two 11/8,
        three or more 1/11; seed 7171 873/11, 144/7, 12/6, 0/3. Measured (offline.py, EM;
        before -> after): households at 20,000 persons seed 8787 P 0.9900 -> 0.9921, F1
        0.9417 -> 0.9426, customers of three or more persons 3 -> 1 (at most 4 -> 3); 7171 P
        0.9930 -> 0.9936, F1 0.9390 -> 0.9392 (2 -> 2); 2026 P 0.9915 -> 0.9928, F1 0.9414 ->
        0.9419 (none); recall unchanged on all three; households 2026 at 3000, generator
        101/202, FEBRL3/4: no decision changed.
        """
        if not _thin_link(scored.pair.levels):
            return False
        return len(self._thin_link_disagreements(person, group, owner)) >= (
            _THIN_LINK_CONTRADICTIONS
        )

    def _thin_chain_apart(self, person: PersonRecord, owner: str, scored: CandidateScore) -> bool:
        """Whether a thin link (``_thin_link``) to ``owner`` through its record ``c`` would end
        a chain of two thin links whose ends are two people: another record ``m`` of the
        customer holds the record's given name and birth date, is tied to ``c`` by a thin
        comparison as well (names, a birth date, nothing of a contact or the place), and
        disagrees with the record on a mobile, a mailbox or a card (``_CHAIN_CONTACTS``) that no
        record of the customer shares with it, so that the model scores the record and ``m``
        "new" (``score_pair``): two people, with the given name and the birth date the link
        rests on in common.

        A customer joined by one thin link holds ``c`` and ``m`` as one person on that link
        alone; a second thin link to ``c`` that ``m`` contradicts is a third person as often
        as the first. Households at 20,000 persons (EM): two Смирнов Александр born the same
        day in 2008 merged through a record without a city, then a third of that name and date
        whose mailbox differed from the first's joined the second's till record (seed 7171);
        «Алекандр Александрович» without a surname, then Ivanov Aleksandr born the same day,
        then Иванов Александр Александрович with another mobile and mailbox (seed 6262).
        Measured (offline.py --em, main d67a361 -> this rule): households 7171 P 0.9940 ->
        0.9944, F1 0.9394 -> 0.9396, at most 3 -> 2 persons a customer; 6262 P 0.9922 ->
        0.9924, customers of three persons 2 -> 1; 8787 P 0.9926 -> 0.9928, R 0.8978 ->
        0.8977; 4646/5151 R -0.0001 (P 0.9914 / 0.9915 -> 0.9917); 2026, generators
        101/202/303 and FEBRL3/4 no decision changed. Without the given name and birth date
        asked of ``m`` (any record scoring "new" with a contact unlike the record's) it refused
        links of one person to records without a birth date: households 2026 R 0.8961 ->
        0.8955, 8787 0.8978 -> 0.8974, generator 101 0.9490 -> 0.9486.
        """
        levels = scored.pair.levels
        if not _thin_link(levels):
            return False
        candidate = self.state.records.get(int(scored.candidate_id))
        if candidate is None:
            return False
        theirs = self._persons(owner)
        compared = [comparison(person, other) for other in theirs]
        shared = {
            feature
            for pair_levels in compared
            for feature in _CHAIN_CONTACTS
            if pair_levels[feature] not in (MISSING, "disagree")
        }
        for other, pair_levels in zip(theirs, compared, strict=True):
            if (
                other is candidate.person
                or pair_levels["birth_date"] != "exact"
                or pair_levels["first_name"] not in _GIVEN_NAME_AGREES
                or not any(
                    pair_levels[feature] == "disagree" and feature not in shared
                    for feature in _CHAIN_CONTACTS
                )
            ):
                continue
            if (
                _thin_link(comparison(other, candidate.person))
                and score_pair(person, other, self.model).decision == "new"
            ):
                return True
        return False

    def _two_sexes(self, person: PersonRecord, scored: CandidateScore) -> bool:
        """Whether a fuzzy link joins two records whose names say unlike sexes
        (``compare.sex_of_names``): a woman's and a man's records are two people, however the rest
        adds up.

        EM's match class takes in relatives as the base grows, so unlike given names and
        surnames come out common among "matching" pairs and are weighed as noise
        (``scoring.noisy``: households seed 9595 at 20,000 persons, given names m 0.0195 over
        ``scoring.NOISY_DISAGREEMENT``, and beside a birth date no veto). A slip of the data
        turns no Ольга into a Михаил, nor Васильева into Иванов. There «Попова Ольга» born
        2008-04-20 in Екатеринбург, then «Михаил» born that day in that city linked to her
        record on the date and the city (3.5 bits), then another «Михаил» to his: three
        persons; seed 1717: «Васильева» (no given name) to «Иванов Шура», then «Лебедев
        Александр» to hers, merging a fourth person's customer, all born 2008-09-06 in Москва.
        Measured (offline.py --em, main 6546bcc -> with this rule and
        ``_mobiles_beyond_a_change``; households at 20,000 persons): seed 9595 P 0.9911 ->
        0.9921, R 0.8921 -> 0.8928, customers of three persons 1 -> 0; 1717 P 0.9919 ->
        0.9924, at most 4 -> 3 persons, customers of three or more 3 -> 1; 7373 P 0.9935 ->
        0.9942, R 0.8952 -> 0.8954; 4646 P 0.9914 -> 0.9916, R 0.8932 -> 0.8934; no set's
        precision or recall lower (2026/7171/8787 and generators 101/202/303, FEBRL3/4 as
        with the mobiles rule alone). The given names alone caught 9595's case but not
        1717's; a surname read by any ending (``surnames.surname_gender``: Wheatley and
        Coffey read as men's) cost FEBRL3 F1 0.9932 -> 0.9925, FEBRL4 0.9915 -> 0.9909."""
        candidate = self.state.records.get(int(scored.candidate_id))
        if candidate is None:
            return False
        mine, theirs = sex_of_names(person), sex_of_names(candidate.person)
        return mine is not None and theirs is not None and mine != theirs

    def _mobiles_beyond_a_change(
        self, person: PersonRecord, group: Sequence[str], owner: str, scored: CandidateScore
    ) -> bool:
        """Whether a fuzzy link joins two sides that share no mobile number and hold more of
        them together than one person's records show (``_ONE_PERSONS_MOBILES``: the number
        they had and the one they changed to) - the record and the customers it has joined
        already (``group``) on one side, ``owner`` on the other - while its score, with each
        number beyond those weighed as the model weighs a phone disagreement (EM's
        log2(m/u), about -3 bits), falls below the link threshold: the pair that links is two
        records and sees at most one of the numbers, the customers hold the others.

        A customer with two numbers and none in common with the record is a person who
        changed numbers, or two people already; a third number on a link of names, a date or
        a login is a third person as often. Households seed 5151 at 20,000 persons (EM): two
        Кузнецов Иван born the same day in 2008 (one customer through a thin link, each with
        his mobile), then Кузнецов Иван of Рязань with a third mobile on the full name, the
        city and ``ivan.kuznetsov08`` at another provider - a login two namesakes born that
        year make alike. A cluster-level check: the score of the pair is the model's, the
        weight of a number the model's, nothing fitted. Measured (offline.py --em, main
        6546bcc -> this rule alone, deterministic): households at 20,000 persons seed 5151 P
        0.9917 -> 0.9919, customers of three persons 3 -> 2; 2026 P 0.9929 -> 0.9932; 7373
        P 0.9935 -> 0.9937; 8484 P 0.9904 -> 0.9906; 8787 P 0.9928 -> 0.9929; recall
        unchanged on all; 4646 same figures; 7171, 9595, 3131, 6262, generators 101/202/303
        at 3000 and FEBRL3/4 no decision changed. Both generators give a person at most two
        numbers, so they cannot show the cost where people keep three; the link goes to
        review, an identifier still joins. Refusing every such link whatever its score
        refused links of a person into customers already mixing two (7373: R 0.8952 ->
        0.8950)."""
        side = set(view(person).mobiles).union(
            *(view(p).mobiles for customer in group for p in self._persons(customer))
        )
        theirs: set[str] = set().union(*(view(p).mobiles for p in self._persons(owner)))
        beyond = len(side | theirs) - _ONE_PERSONS_MOBILES
        if not side or side & theirs or beyond <= 0:
            return False
        weighed = scored.score + beyond * self.model.weight("phone", "disagree")
        return weighed < self.model.link_weight

    def _thin_link_disagreements(
        self, person: PersonRecord, group: Sequence[str], owner: str
    ) -> set[str]:
        """The fields of ``_THIN_LINK_DISAGREEMENTS`` on which a record of the record's side
        (it and the customers of ``group``) disagrees with one of ``owner``'s (at most
        ``_THIN_LINK_CONTRADICTIONS`` of them: enough to tell)."""
        side = [person, *(p for customer in group for p in self._persons(customer))]
        theirs = self._persons(owner)
        found: set[str] = set()
        for mine in side:
            for other in theirs:
                pair_levels = comparison(mine, other)
                found.update(
                    feature
                    for feature, unlike in _THIN_LINK_DISAGREEMENTS.items()
                    if pair_levels[feature] in unlike
                )
                if len(found) >= _THIN_LINK_CONTRADICTIONS:
                    return found
        return found

    def _thin_link_on_a_common_name_and_date(
        self, person: PersonRecord, group: Sequence[str], owner: str, scored: CandidateScore
    ) -> bool:
        """Whether a thin link (``_thin_link``) that rests on the given name and the birth date
        alone (no surname in common either) scores below the link threshold once the pair is
        weighed by how many records hold that given name on that day
        (``scoring.common_name_and_birth_date_loss``, counted at refit), and a field of the
        sides' records disagrees (``_thin_link_disagreements``: one is enough, as the common
        pair already speaks for another person; a till record with nothing else to say is
        not refused by the pair alone).

        The name's and the date's own frequencies take them as independent; a common name on
        a day many are born (2008, the year the households generator clamps children to) is
        commoner than that. Measured (offline.py --em; before -> after): households at
        20,000 persons seed 8787 P 0.9921 -> 0.9926, F1 0.9426 -> 0.9428, customers of
        three or more persons 1 -> 0; 7171 P 0.9936 -> 0.9940, F1 0.9392 -> 0.9394, 2 -> 1;
        2026 P 0.9928 -> 0.9929, F1 0.9419 -> 0.9420 (none); recall unchanged on all three;
        generators 101/202/303 at 3000 and FEBRL3/4 unchanged (202's digest moved, not its
        figures). Without the disagreement (the loss alone) 2026 lost recall 0.8961 ->
        0.8954 (F1 0.9416) and 7171 0.8905 -> 0.8901 (F1 0.9391). Without the surname scope
        as well, an offline probe of main's thin links at 8787 counted 67 links of one
        person the loss would refuse against 10 of two (13 / 8 with the scope)."""
        levels = scored.pair.levels
        if not _thin_link(levels) or levels["last_name"] in _PERSONAL_TIES["last_name"]:
            return False
        candidate = self.state.records.get(int(scored.candidate_id))
        if candidate is None:
            return False
        loss = common_name_and_birth_date_loss(person, candidate.person, levels, self.model)
        return scored.score + loss < self.model.link_weight and bool(
            self._thin_link_disagreements(person, group, owner)
        )

    def _best_candidates(
        self, person: PersonRecord, keys: tuple[str, ...]
    ) -> dict[str, CandidateScore]:
        """Each candidate customer's best-scoring record sharing a blocking key with the
        record (those scoring "new" left out), a rare full name raising "review" to "link"."""
        state = self.state
        candidates: set[int] = set()
        for key in keys:
            candidates.update(state.comparable(key))
        persons = [state.records[pk].person for pk in candidates if pk in state.records]
        if not persons:
            return {}
        best: dict[str, CandidateScore] = {}
        # Only with weights this graph's data gave (EM): the starting model's place weights come
        # from generated sets, whose places are not the graph's.
        fitted = self.model.trained_pairs > 0
        holds = self._name_holder_test(keys, person, self.rare_names and fitted)
        for scored in score_candidates(person, persons, self.model):
            if scored.decision == "new":
                continue
            owner = state.find(state.records[int(scored.candidate_id)].customer_id)
            if (
                self._rare_name_pair(scored.pair)
                and holds(owner)
                and self._rare_name_link(person, owner, scored)
            ) or (
                fitted
                and (
                    self._rare_login_link(person, owner, scored, persons)
                    or self._married_name_link(person, owner, scored)
                )
            ):
                scored = replace(scored, decision="link")
            if owner not in best:
                best[owner] = scored
        for owner, scored in list(best.items()):
            if scored.decision == "link" and self._another_surname(person, owner):
                best[owner] = replace(scored, decision="review")
        if fitted:
            for owner, scored in list(best.items()):
                if scored.decision == "review":
                    best[owner] = (
                        self._whole_customer(person, owner, scored, partial(holds, owner))
                        or self._login_year_link(person, owner, scored, keys)
                        or scored
                    )
        return best

    def _customer_levels(self, person: PersonRecord, owner: str) -> dict[str, str]:
        """The record against the customer as a whole for the safety rules: per feature the
        strongest agreement (``LEVELS`` order) among the customer's records that hold the
        field. By agreement, not by weight: EM may weigh a changed surname above the same one
        (households seed 606: a customer holding her surname under both read as "changed")."""
        levels: dict[str, str] = {}
        for other in self._persons(owner):
            for feature, level in comparison(person, other).items():
                if level == MISSING:
                    continue
                known = levels.get(feature)
                if known is None or _RANK[feature][level] < _RANK[feature][known]:
                    levels[feature] = level
        return levels

    def _another_surname(self, person: PersonRecord, owner: str) -> bool:
        """Whether a fuzzy link would put the record under another surname than every record
        of ``owner`` that has one, with nothing that corroborates a change of surname
        (``scoring.surname_change_uncorroborated`` of the record against the customer as a
        whole) and not as a married name would link (``_married_name_link``: the same given
        name, birth date and place, no record disagreeing).

        The link was decided on the customer's best record, which may lack the surname (a
        record with only «Лена», a birth date and the city): the pair rule that asks a changed
        surname for a contact in common then never sees the surname the rest of the customer
        carries. Households seed 4646 (3000 persons, EM): «Ковалёва Елена», born 2008-02-14
        in Москва, linked through such a record to the customer of «Макарова Елена» born the
        same day (a different mobile), which later took a third person. Measured (offline.py,
        EM, 3000 persons): that set P 0.9911 -> 0.9933, F1 0.9513 -> 0.9522, at most 3 -> 2
        persons a customer; households 404 P 0.9943 -> 0.9953, F1 0.9431 -> 0.9435 (with
        ``another_holders_contact``: 2424 P 0.9915 -> 0.9920, F1 0.9461 -> 0.9462);
        generator 101/202, FEBRL3/4 and households 303/606/1313: no decision changed.
        """
        if self._third_surname(person, owner):
            return True
        levels = self._customer_levels(person, owner)
        if not surname_change_uncorroborated(levels, self.model):
            return False
        married = (
            levels.get("first_name") in _GIVEN_NAME_AGREES
            and levels.get("birth_date") == "exact"
            and levels.get("location") in _PLACE_AGREES
        )
        return not (married and self._no_record_disagrees(person, owner))

    def _third_surname(self, person: PersonRecord, owner: str) -> bool:
        """Whether the record's surname would be a third one for ``owner``: the customer holds
        two surnames already (records whose surnames disagree with each other: a maiden and a
        married name, say) and the record's agrees with neither.

        One change of surname is a life; a third surname on a customer joined by names and a
        birth date is mostly a third person. Households seed 8282 (5,000 persons, EM):
        «Елена Маслова Сергеевна» and «Елеан Фролова Сергеевна», born 2008-11-22 (the year the
        generator clamps children to), were one customer, and «Елена Иванова» of the same
        birth date joined them by a fuzzy link: three people in one customer.
        """
        own = [other for other in self._persons(owner) if other.last_name]
        if not person.last_name or len(own) < 2:
            return False
        if any(comparison(person, other)["last_name"] in _SURNAME_KEPT for other in own):
            return False
        return any(
            comparison(a, b)["last_name"] not in _SURNAME_KEPT
            for i, a in enumerate(own)
            for b in own[i + 1 :]
        )

    def _another_mans_surname(
        self, person: PersonRecord, owner: str, group: Sequence[str] = ()
    ) -> bool:
        """Whether a fuzzy link would join men's records under another surname: the record
        and the customers it has joined already (``group``) on one side, ``owner`` on the
        other, every record with a surname on both sides a man's, no surname of one side the
        same as one of the other's (or its other gender form), and nothing that corroborates
        it - no contact in common, no same patronymic, not the same birth date at the same
        home, no telling place (``scoring.surname_change_uncorroborated(..., men=True)`` of
        the strongest agreement per feature between the two sides). Men are known by the
        stated gender, else the patronymic (-ович), the surname's form (-ов, -ин, -ский) or
        the given name (``compare.effective_gender``).

        A man does not take another surname on marriage in Russian naming, so for two men
        unlike surnames are two people or a slip of the data - never a change the model may
        call common among matches. EM, fitted over all candidate pairs, lets the match class
        absorb households and strangers born the same day as the base grows: on households
        seed 2026 at 20,000 persons m(last_name=disagree) is 0.0147 against u 0.0188 (at
        3000 persons under ``scoring.NOISY_DISAGREEMENT``), so another man's surname vetoes
        nothing there, and men born the same day in one city (Власов Шура / Попов Александр,
        Михеев / Макаров Александр, 2008) linked on given name, birth date and city at
        3.9-6.5 bits into customers of three persons. The sides as wholes: the pair that
        linked may lack the surname («Шура» with a birth date), and a record without one may
        link two men's customers at once.
        """
        side = [person, *(p for customer in group for p in self._persons(customer))]
        theirs = self._persons(owner)
        named = [p for p in (*side, *theirs) if view(p).last is not None]
        if any(view(p).gender != "male" for p in named):
            return False
        if not any(view(p).last is not None for p in side) or not any(
            view(p).last is not None for p in theirs
        ):
            return False
        levels: dict[str, str] = {}
        for mine in side:
            for other in theirs:
                for feature, level in comparison(mine, other).items():
                    if level == MISSING:
                        continue
                    known = levels.get(feature)
                    if known is None or _RANK[feature][level] < _RANK[feature][known]:
                        levels[feature] = level
        return levels.get("last_name") == "disagree" and surname_change_uncorroborated(
            levels, self.model, men=True
        )

    def _whole_customer(
        self,
        person: PersonRecord,
        owner: str,
        scored: CandidateScore,
        sole_holder: Callable[[], bool] | None = None,
    ) -> CandidateScore | None:
        """The record scored against the customer as a whole rather than its best record, if
        that links: per feature the best level among the customer's records that hold the
        field (term-frequency adjustments included), weighed with the same EM weights and
        capped by the same safety rules. One record may share the login and another the city
        of one person, whose channels each hold part of what she is.

        The rare-name rule applies to the whole as to a pair (``_rare_name_pair``): where
        ``owner`` is the sole holder of the record's full name at its place (``sole_holder``)
        and the whole scores over the link threshold held back only for want of personal
        evidence, it links - one record gives the city, another the patronymic. Measured
        (offline.py, EM, 3000 persons; before -> after): households seeds 303/404/505/606/
        1313/2424/3535/4646/5757 F1 0.9488/0.9429/0.9440/0.9410/0.9438/0.9457/0.9455/0.9510/
        0.9421 -> 0.9496/0.9431/0.9442/0.9410/0.9441/0.9461/0.9459/0.9513/0.9422 (precision
        unchanged but 606 0.9902 -> 0.9900); generator 101/202/2424 0.9710/0.9720/0.9705 ->
        0.9712/0.9722/0.9706, 404/1313 and FEBRL3/4 unchanged.

        Only where no record of the customer disagrees with the record on a contact, the
        place or the birth date: the best of many records agrees by chance more often the
        more records a customer has. Without that guard (offline.py, EM) households seed 707
        at 10,000 persons kept F1 0.9412 at precision 0.9937 -> 0.9921. With it: households
        303/606/404 at 3000 F1 0.9488 -> 0.9488, 0.9410 -> 0.9410 (P 0.9898 -> 0.9902),
        0.9427 -> 0.9429; 707 at 10,000 0.9418 -> 0.9420 (P 0.9936 unchanged); generator 101
        0.9707 -> 0.9710, 202 unchanged, 808 at 10,000 0.9678 -> 0.9679; FEBRL3/4 unchanged.
        """
        model = self.model
        levels: dict[str, str] = {}
        adjustments: dict[str, float] = {}
        best_weight: dict[str, float] = {}
        for other in self._persons(owner):
            pair_levels = comparison(person, other)
            if any(pair_levels[f] == "disagree" for f in _RARE_NAME_DISAGREEMENTS):
                return None
            adjusted = tf_adjustments(person, other, pair_levels, model)
            for feature, level in pair_levels.items():
                if level == MISSING:
                    continue
                weight = model.weight(feature, level) + adjusted.get(feature, 0.0)
                if feature in best_weight and weight <= best_weight[feature]:
                    continue
                best_weight[feature] = weight
                levels[feature] = level
                adjustments.pop(feature, None)
                if feature in adjusted:
                    adjustments[feature] = adjusted[feature]
        pair = score_comparison(levels, model, adjustments)
        if pair.decision != "link" and not (
            self._rare_name_pair(pair) and sole_holder is not None and sole_holder()
        ):
            return None
        return replace(
            scored,
            score=pair.score,
            decision="link",
            weights=pair.weights,
            probability=pair.probability,
            pair=pair,
        )

    def _name_holder_test(
        self, keys: Sequence[str], person: PersonRecord, enabled: bool
    ) -> Callable[[str], bool]:
        """Whether a customer is the record's ``_sole_name_holder`` (never, unless
        ``enabled``), worked out on the first question: only a pair the rare-name rule may
        link asks (``_rare_name_pair``), and finding the holder compares the record with every
        record of every namesake (``_another_namesake``). Asked for every record, it was 26%
        of the engine's samples (py-spy, households seed 303, 3000 persons, EM)."""
        found: list[str | None] = []

        def holds(owner: str) -> bool:
            if not enabled:
                return False
            if not found:
                found.append(self._sole_name_holder(keys, person))
            return found[0] == owner

        return holds

    def _sole_name_holder(self, keys: Sequence[str], person: PersonRecord) -> str | None:
        """The one customer holding the record's full name (its ``fs:`` blocks) at the
        record's place, or None: several customers, none, a block over the size limit, or
        members not loaded (then who holds them is unknown).

        Holders whose records all put them in another city, or give them another patronymic or
        birth date (``_another_namesake``), are left out: the term whose frequency counts is
        the full name (with the patronymic and birth date where the record has them) at this
        place, so a namesake known to live elsewhere, or to be Иван Сергеевич where the record
        is Иван Петрович, makes it no less rare. The patronymic and birth date (offline.py, EM):
        households seeds 303/909 at 3000 persons and 7717 at 4000 F1 0.9417 -> 0.9423, 0.9390
        -> 0.9392, 0.9325 -> 0.9333 (precision unchanged to the fourth digit, 0.9866 ->
        0.9865); generator seeds 101/202 at 3000 unchanged, 5151 at 4000 0.9684 -> 0.9686.
        Only loaded holders can be judged so: in the service a namesake's records that scored
        "new" against the batch are not loaded, and an unloaded member still makes the holder
        unknown. The city alone, measured through the API (bench_accuracy, EM, 2000 persons), on
        top of the "review" score in ``_rare_name_link``: households seeds 303/909 F1 0.9273 ->
        0.9290 (P 0.9857 -> 0.9870) and 0.9408 -> 0.9411; generator seeds 101/4242 0.9719 ->
        0.9719 and 0.9716 -> 0.9716; FEBRL3/4 0.9932/0.9915 unchanged. The in-memory engine with
        every record loaded (benchmarks/identity/offline.py's run) gains more: households 303
        0.9273 -> 0.9342.
        """
        holders = self._full_name_holders(keys)
        if holders is None:
            return None
        if len(holders) > 1:
            holders = {h for h in holders if not self._another_namesake(person, h)}
        return next(iter(holders)) if len(holders) == 1 else None

    def _full_name_holders(self, keys: Sequence[str]) -> set[str] | None:
        """The customers holding the record's full name (the members of its ``fs:`` blocks),
        or None when who holds it is unknown: no full-name block, a block over the size limit
        or with members not listed, or a member's records not loaded."""
        state = self.state
        names = [key for key in keys if key.startswith(NAME_KEY_PREFIX)]
        if not names:
            return None
        holders: set[str] = set()
        for key in names:
            members = state.blocks.get(key, [])
            if state.unlisted.get(key) or len(members) > MAX_BLOCK_SIZE:
                return None
            for pk in members:
                known = state.records.get(pk)
                if known is None:
                    return None
                holders.add(state.find(known.customer_id))
        return holders

    def _another_namesake(self, person: PersonRecord, customer_id: str) -> bool:
        """Whether the customer is known to be someone else of the same name: every record of
        it that has a place puts it in another city (at least one has), or every one with a
        patronymic, or with a birth date, has another than the record's. A customer whose
        records say nothing of a field may hold any value of it, the record's too."""
        levels = [comparison(person, other) for other in self._persons(customer_id)]
        for feature in _NAMESAKE_FEATURES:
            known = [lv[feature] for lv in levels if lv[feature] != MISSING]
            if known and all(level == "disagree" for level in known):
                return True
        return False

    def _rare_login_link(
        self,
        person: PersonRecord,
        owner: str,
        scored: CandidateScore,
        candidates: Sequence[PersonRecord] = (),
    ) -> bool:
        """Whether the same e-mail login at another provider, under the same given name, links
        the record to ``owner`` on a "review" score: people keep one login across mail.ru,
        Yandex, Gmail and bk.ru, and one with a digit that at most two mailboxes hold in the
        whole base (the model's login frequencies, counted at refit:
        ``scoring.rare_shared_login``, with the measurements) is one person's. Counted over
        the base, not over the customers holding it so far: a login made from a surname and
        an initial (``popov.e``) is held once only until the namesake arrives (holders so far
        cost generator seed 8888 at 6000 persons precision 0.9973 -> 0.9971).

        Only with no safety rule objecting, and only if none of the customer's records
        disagrees with the record on the place, birth date, card or phone. ``candidates``:
        the record's other candidates, whose mailboxes of the login count too.
        """
        pair = scored.pair
        levels = pair.levels
        if (
            scored.decision != "review"
            or pair.vetoes
            or levels["email"] != "local_part"
            or levels["first_name"] not in _GIVEN_NAME_AGREES
        ):
            return False
        candidate = self.state.records[int(scored.candidate_id)].person
        if not rare_shared_login(person, candidate, self.model, candidates):
            return False
        return not any(
            comparison(person, other)[feature] == "disagree"
            for other in self._persons(owner)
            for feature in _RARE_LOGIN_DISAGREEMENTS
        )

    def _married_name_link(self, person: PersonRecord, owner: str, scored: CandidateScore) -> bool:
        """Whether a woman's record under another surname (the "changed" level: a married
        name) links to ``owner`` on the same given name, the same birth date and the same
        place, where the surname-change rule alone holds the pair back for want of a contact
        in common (``scoring.surname_change_uncorroborated``).

        The pair's score must reach the link threshold by the model's own weights (EM: how
        often matching records show a changed surname, the birth date and the place), and no
        record of the customer may disagree with it on a contact, the place or the birth date.
        The place is asked because a given name and a birth date alone grow common with the
        base (about one other woman of a popular name per birth date at a million records).

        Measured (offline.py, EM): households seeds 303/606/404 at 3000 persons F1 0.9482 ->
        0.9488, 0.9405 -> 0.9410, 0.9417 -> 0.9427 (P 0.9960 -> 0.9956, 0.9897 -> 0.9898,
        0.9943 -> 0.9943), seed 707 at 10,000 0.9412 -> 0.9418 (P 0.9937 -> 0.9936);
        generator 101 0.9706 -> 0.9707, 202 and FEBRL3/4 unchanged. Without the place
        0.9497/0.9419/0.9431 at 3000, but at 10,000 (707) P 0.9928 for the same F1.
        """
        pair = scored.pair
        levels = pair.levels
        if (
            scored.decision != "review"
            or pair.vetoes != (Veto.SURNAME_CHANGE_UNCORROBORATED,)
            or scored.probability < self.model.link_threshold
            or levels["first_name"] not in _GIVEN_NAME_AGREES
            or levels["last_name"] != "changed"
            or levels["birth_date"] != "exact"
            or levels["location"] not in _PLACE_AGREES
        ):
            return False
        return self._no_record_disagrees(person, owner)

    def _rare_name_link(self, person: PersonRecord, owner: str, scored: CandidateScore) -> bool:
        """Whether a full name and a place, scoring over the link threshold, link the record to
        ``owner``, the only customer holding that full name so far (term frequency from the
        data: a name nobody else in the customer base has is strong evidence, one that many
        customers share is not, and their ``fs:`` block shows which).

        Only instead of a missing personal evidence (no other safety rule may object), and only
        if none of the customer's records disagrees with the record on a contact, the place or
        the birth date: a namesake arriving before the first one's records say so would
        otherwise join. Measured (offline engine, EM, 2000 persons): generator seeds 101/4242
        F1 0.9648 -> 0.9713 and 0.9699 -> 0.9718 (P 0.9970 -> 0.9961, 0.9990 -> 0.9942),
        FEBRL3 0.9927 -> 0.9931, FEBRL4 0.9915 -> 0.9915.

        The pair's own score must still reach the link threshold. Letting a "review" score do
        (the name's single holder standing in for its frequency) raised F1 at 2000 persons
        (households seeds 303/909 0.9222 -> 0.9273, 0.9383 -> 0.9408; generator 101 0.9713 ->
        0.9719) but cost precision more the larger the base (offline: generator 101 at 3000
        persons P 0.9959 -> 0.9920; households 909 at 4000 P 0.9938 -> 0.9880, and a customer
        mixing three namesakes: a popular name in a big city is "held once" only until its
        second holder arrives). Name frequencies learned from the whole base are the fix: the
        pair's score carries them (``model.TermFrequencies``, fitted at refit), so the same
        rare surname in a small town clears the threshold and Ольга Иванова in Москва does not.
        """
        return self._rare_name_pair(scored.pair) and self._no_record_disagrees(person, owner)

    def _login_year_link(
        self, person: PersonRecord, owner: str, scored: CandidateScore, keys: Sequence[str]
    ) -> CandidateScore | None:
        """The record linked to ``owner`` on its full name where a login made from the name
        ends in the birth year of the other side (``compare.login_birth_year``:
        ``maksim.sergeev60@mail.ru`` on a record without a birth date, Максим Сергеев born
        1960 on a till record), or None.

        People put their birth year in a login (the name was taken at the provider, a year
        added), and keep the login across providers: its year says what a birth date would
        of the same full name, one person and not a namesake, whom the year tells apart one
        time in dozens. It stands in for the missing personal evidence only: the pair must be
        held at "review" for that alone (``Veto.NO_PERSONAL_EVIDENCE``), given name and
        surname in agreement, no record of the customer giving another year that way nor
        disagreeing on a contact, the place or the birth date (``_no_record_disagrees``), and
        the customer's surname not another (``_another_surname``). Then it links where the
        score reaches the link threshold by the model's own weights (names with their term
        frequencies, the place), or on a "review" score where ``owner`` is the one holder of
        the full name the year can be (``_sole_year_holder``: every other holder known to be
        someone else) - the rare-name rule's test of the name's frequency, with the year.

        Measured (offline, EM; the rule off -> on, one fit per set, main a15aa32): households
        at 20,000 persons F1 seed 2026 0.9394 -> 0.9414, 3131 0.9392 -> 0.9403, 5353 0.9397 ->
        0.9408, 7171 (new) 0.9375 -> 0.9390 (P within -0.0003; 14 of 388 links wrong, 10 of
        them births of 2008, the year ``households.py`` clamps children to); 1313/2424 at
        3000 +0.0014/+0.0015 (P unchanged); generator 101/202 0.9714/0.9724 ->
        0.9718/0.9729; FEBRL3/4 unchanged. With the link threshold alone (no
        ``_sole_year_holder``) households 7171 at 5000 gained half (0.9440 -> 0.9448 of
        0.9462); asking ``_sole_year_holder`` of every link lost (2026 0.9412 -> 0.9400).
        A login made from no name of the records (a spouse's ``arhip_1970`` on a Даша Орехова
        born 1970, generator seed 101) joined a namesake: such logins say nothing
        (``compare.login_birth_year``).
        """
        pair = scored.pair
        levels = pair.levels
        if (
            pair.vetoes != (Veto.NO_PERSONAL_EVIDENCE,)
            or levels["first_name"] not in _GIVEN_NAME_AGREES
            or levels["last_name"] not in _SURNAME_AGREES
        ):
            return None
        years = [login_birth_year(person, other) for other in self._persons(owner)]
        if True not in years or False in years:
            return None
        if pair.probability < self.model.link_threshold and not self._sole_year_holder(
            keys, person, owner
        ):
            return None
        if not self._no_record_disagrees(person, owner) or self._another_surname(person, owner):
            return None
        return replace(scored, decision="link")

    def _sole_year_holder(self, keys: Sequence[str], person: PersonRecord, owner: str) -> bool:
        """Whether every customer but ``owner`` holding the record's full name (its ``fs:``
        blocks) is known to be someone else: another city, patronymic or birth date
        (``_another_namesake``), or a login's year not the other's birth year. False when a
        block is over the size limit or its members are not all loaded (who holds the name
        is then unknown), and without a full-name block."""
        holders = self._full_name_holders(keys)
        if holders is None:
            return False
        for holder in holders - {owner}:
            if self._another_namesake(person, holder):
                continue
            years = {login_birth_year(person, other) for other in self._persons(holder)}
            if False not in years or True in years:
                return False
        return True

    def _rare_name_pair(self, pair: PairScore) -> bool:
        """Whether a comparison is one the rare-name rule may link (``_rare_name_link``): held
        back at "review" only for want of personal evidence, scoring over the link threshold,
        with the given name, the surname and the place in agreement."""
        levels = pair.levels
        return (
            pair.decision == "review"
            and pair.vetoes == (Veto.NO_PERSONAL_EVIDENCE,)
            and pair.probability >= self.model.link_threshold
            and levels["first_name"] in _GIVEN_NAME_AGREES
            and levels["last_name"] in _SURNAME_AGREES
            and levels["location"] in _PLACE_AGREES
        )

    def _open_reviews(
        self, pk: int, customer_id: str, reviews: list[tuple[str, CandidateScore]]
    ) -> tuple[str, ...]:
        opened: list[str] = []
        for owner, scored in reviews:
            owner = self.state.find(owner)
            if owner == customer_id or frozenset((owner, customer_id)) in self.state.kept_apart:
                continue
            review_id = str(uuid.uuid4())
            self.changes.reviews.append(
                ReviewDraft(
                    review_id,
                    pk,
                    int(scored.candidate_id),
                    owner,
                    scored.score,
                    scored.probability,
                    scored.pair.explain(),
                )
            )
            opened.append(review_id)
            if len(opened) >= MAX_REVIEWS_PER_RECORD:
                break
        return tuple(opened)

    def _merge(
        self, survivor: str, merged: tuple[str, ...], ref: RecordRef | None, rule: str, pk: int
    ) -> None:
        state = self.state
        target = state.customers[survivor]
        for other in merged:
            state.alias[other] = survivor
            gone = state.customers.get(other)
            if gone is not None:
                target.records.extend(gone.records)
                target.keys |= gone.keys
            for pair in [p for p in state.kept_apart if other in p]:
                state.kept_apart.add(frozenset(survivor if c == other else c for c in pair))
        target.records.sort(key=_recency)
        self.changes.merges.append(Merge(survivor, merged, ref, rule, pk))

    def _count_sharer(self, key: IdentifierKey, owner: str, other: str) -> None:
        sharers = self.state.sharers.setdefault(key, set())
        if other in sharers:
            return
        sharers.add(other)
        self.changes.sharers.setdefault(key, set()).add(other)
        people = 1 + len({self.state.find(c) for c in sharers} - {self.state.find(owner)})
        limit = self.rules.rule_for(key).max_people_per_value
        if limit > 0 and people > limit and key not in self.state.blocked:
            self.state.blocked[key] = BlockReason.FREQUENCY
            self.changes.blocked.append((key, BlockReason.FREQUENCY, people))
