"""What one identifier says about who it belongs to, for look-ups (LookupCustomer,
BatchLookupCustomers) and through them for ingestion's event delivery.

An identifier names a customer on its own only when exactly one customer holds it and no other
customer's records carry it. The identity graph keeps, on each held identifier, the other
customers whose records carried it but were kept apart from its owner (``sharers``: a first-name,
birth-date or patronymic conflict, a person's "keep apart" decision, or a split that left the
identifier on both sides). Such an identifier (a family's phone) is SHARED: it lists every
candidate and names none. An identifier that never links (a blocked value of the rules, a
placeholder phone, or on the frequency blocklist, like a shop's own number typed at a till) is
BLOCKED whoever holds it. Nothing is ever guessed: the caller decides with its other
identifiers, or holds what it was about.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from svod_identity.domain.identifiers import IdentifierKey
from svod_runtime.errors import InvalidArgument

# Candidates returned per identifier (a blocked value may be carried by thousands of people).
MAX_CANDIDATES = 20


class IdentifierState(enum.Enum):
    """Mirrors ``svod.identity.v1.IdentifierState`` (parity is tested)."""

    UNKNOWN = "unknown"
    DECISIVE = "decisive"
    SHARED = "shared"
    BLOCKED = "blocked"


class IdentifierAnswer(NamedTuple):
    """Immutable; a named tuple rather than a frozen dataclass: one is made per identifier
    looked up, and the dataclass's __init__ was 1 us of the ~13 us a look-up cost (issue #22,
    py-spy)."""

    key: IdentifierKey
    state: IdentifierState
    # The customer the identifier names (DECISIVE only).
    customer_id: str = ""
    # Current customers known to carry it, its holder first (SHARED, and BLOCKED when held).
    candidates: tuple[str, ...] = ()
    # "configured", "placeholder" or "frequency" (BLOCKED only).
    blocked_reason: str = ""


@dataclass(frozen=True)
class Lookups:
    """The answers to a batch of look-ups: one per distinct identifier (after normalisation)
    in ``answers``, and for each identifier asked, in order, the position of its answer there
    or why it is malformed (its own error, its path ``identifiers[i]...``)."""

    answers: list[IdentifierAnswer]
    slots: list[int | InvalidArgument]


# What the graph holds on an identifier: (holder, customers recorded as sharing it, stored block
# reason); an identifier it holds nothing on has NOTHING_HELD.
Fact = tuple[str | None, Collection[str], str | None]
NOTHING_HELD: Fact = (None, (), None)


def answer_for(
    key: IdentifierKey,
    owner: str | None,
    sharers: Collection[str],
    blocked_reason: str | None,
    current: Mapping[str, str] | None = None,
) -> IdentifierAnswer:
    """The answer for ``key`` held by ``owner`` (None: nobody), with the customers recorded as
    sharing it (possibly merged away since: ``current`` maps them to their current ids; an id
    it does not know is gone, e.g. erased) and the reason it is blocked, if it is."""
    if owner is not None and not sharers and not blocked_reason:
        # The usual answer (one holder, nobody else), without the candidate list's work: the
        # general path below gives the same. Issue #22: answers were 10% of identity's CPU for
        # an event import.
        return IdentifierAnswer(key, IdentifierState.DECISIVE, owner, (owner,))
    candidates: list[str] = []
    if owner is not None:
        candidates.append(owner)
        for sharer in sharers:
            now = sharer if current is None else current.get(sharer)
            if now is not None and now not in candidates:
                candidates.append(now)
    shown = tuple(candidates[:MAX_CANDIDATES])
    if blocked_reason:
        return IdentifierAnswer(key, IdentifierState.BLOCKED, "", shown, blocked_reason)
    if owner is None:
        return IdentifierAnswer(key, IdentifierState.UNKNOWN)
    if len(candidates) > 1:
        return IdentifierAnswer(key, IdentifierState.SHARED, "", shown)
    return IdentifierAnswer(key, IdentifierState.DECISIVE, owner, shown)


def answers_for(
    keys: Sequence[IdentifierKey],
    facts: Mapping[int, Fact],
    block_reason: Callable[[IdentifierKey], str | None],
    current: Mapping[str, str],
) -> list[IdentifierAnswer]:
    """The answer for each of ``keys`` (distinct), from what the graph holds on them
    (``facts`` by position in ``keys``; none: nothing held), the rules' block reason (which
    comes before a stored one) and the current ids of the recorded sharers."""
    answers = []
    for position, key in enumerate(keys):
        owner, sharers, stored_block = facts.get(position, NOTHING_HELD)
        reason = block_reason(key) or stored_block
        answers.append(answer_for(key, owner, sharers, reason, current))
    return answers
