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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from svod_identity.domain.identifiers import IdentifierKey

# Candidates returned per identifier (a blocked value may be carried by thousands of people).
MAX_CANDIDATES = 20


class IdentifierState(enum.Enum):
    """Mirrors ``svod.identity.v1.IdentifierState`` (parity is tested)."""

    UNKNOWN = "unknown"
    DECISIVE = "decisive"
    SHARED = "shared"
    BLOCKED = "blocked"


@dataclass(frozen=True)
class IdentifierAnswer:
    key: IdentifierKey
    state: IdentifierState
    # The customer the identifier names (DECISIVE only).
    customer_id: str = ""
    # Current customers known to carry it, its holder first (SHARED, and BLOCKED when held).
    candidates: tuple[str, ...] = ()
    # "configured", "placeholder" or "frequency" (BLOCKED only).
    blocked_reason: str = ""


def answer_for(
    key: IdentifierKey,
    owner: str | None,
    sharers: Iterable[str],
    blocked_reason: str | None,
    current: Mapping[str, str] | None = None,
) -> IdentifierAnswer:
    """The answer for ``key`` held by ``owner`` (None: nobody), with the customers recorded as
    sharing it (possibly merged away since: ``current`` maps them to their current ids; an id
    it does not know is gone, e.g. erased) and the reason it is blocked, if it is."""
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
