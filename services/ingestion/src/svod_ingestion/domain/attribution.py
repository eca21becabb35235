"""Which customer an event belongs to: decided on all its identifiers, never guessed.

Identity says, for each identifier of an event, whether it names one customer on its own
(DECISIVE), is held by nobody yet (UNKNOWN), is carried by several customers identity keeps
apart (SHARED: a family's phone) or never links (BLOCKED: a blocked value of the rules, a
placeholder, the frequency blocklist - a shop's own number typed at a till). Then:

- exactly one customer named by DECISIVE identifiers: the event is theirs, whatever its shared
  or blocked identifiers say (the family's phone beside the daughter's card is the daughter's);
- more than one: held as unattributed (CONFLICTING_IDENTIFIERS), until a merge, a split or a
  rules change settles it;
- none, with identifiers nobody holds yet: the event waits for its customer's identify, on the
  grace clock (below);
- none otherwise, or once the grace clock ran out: held as unattributed (SHARED_IDENTIFIER,
  BLOCKED_IDENTIFIER or UNKNOWN_CUSTOMER, in that order of precedence).

A held event is never failed and never dropped: it is looked at again when an identify
carrying one of its identifiers is delivered, when identity announces a merge, split or rules
change touching its candidates, and otherwise at growing intervals; it is attributed the first
time its identifiers name one customer.

The grace clock (``SVOD_UNKNOWN_CUSTOMER_GRACE_S``) counts only time in which the customer was
genuinely unknown: the time between two consecutive looks in which identity answered and named
nobody while no identify carrying one of the event's identifiers was still waiting in
ingestion to be resolved. A look identity did not answer (an outage, of any length), or one
that found such an identify pending, stops the clock until the next answered look. So an
identity outage never uses up an event's grace, and neither does a backlog of identify calls.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence
from dataclasses import dataclass

from svod_contacts.cards import normalize_card
from svod_contacts.emails import normalize_email
from svod_contacts.identifiers import NAMESPACED_NAMES, IdentifierType
from svod_contacts.phones import normalize_phone

# How often a held or waiting event is looked at again when nothing wakes it: from
# FIRST_RECHECK_S, doubling, up to the cap of its kind. The first look comes soon, so an
# identify delivered while the event was being looked at (too late for that look) is seen.
FIRST_RECHECK_S = 0.5
WAITING_RECHECK_MAX_S = 30.0
DEFAULT_HELD_RECHECK_MAX_S = 3600.0


class IdentifierState(enum.Enum):
    """What identity says about one identifier (``svod.identity.v1.IdentifierState``)."""

    UNKNOWN = "unknown"
    DECISIVE = "decisive"
    SHARED = "shared"
    BLOCKED = "blocked"


class Issue(enum.Enum):
    """Why an event is not attributed (yet); mirrors ``svod.ingestion.v1.AttributionIssue``."""

    CONFLICTING_IDENTIFIERS = "conflicting_identifiers"
    SHARED_IDENTIFIER = "shared_identifier"
    BLOCKED_IDENTIFIER = "blocked_identifier"
    UNKNOWN_CUSTOMER = "unknown_customer"
    # The two below are waits (the event is PENDING), the others holds (UNATTRIBUTED).
    IDENTITY_UNAVAILABLE = "identity_unavailable"
    AWAITING_CUSTOMER = "awaiting_customer"

    @property
    def waiting(self) -> bool:
        return self in (Issue.IDENTITY_UNAVAILABLE, Issue.AWAITING_CUSTOMER)


@dataclass(frozen=True)
class HeldEvent:
    """An event held unattributed (or waiting), as the operators' API lists it."""

    record_pk: int
    record_id: str
    source: str
    message_id: str
    payload: bytes | None
    issue: Issue
    candidates: tuple[str, ...]
    received_at: dt.datetime
    held_at: dt.datetime
    checks: int
    next_check_at: dt.datetime


@dataclass(frozen=True)
class Finding:
    """Identity's answer for one identifier of an event."""

    state: IdentifierState
    customer_id: str = ""
    candidates: tuple[str, ...] = ()


@dataclass(frozen=True)
class GraceClock:
    """Seconds of genuinely-unknown time so far, and when the last look that counts was."""

    used_s: float = 0.0
    counting_since: dt.datetime | None = None

    def advance(self, now: dt.datetime, *, genuinely_unknown: bool) -> GraceClock:
        """After a look at ``now``: identity answered and named nobody while nothing was
        pending (``genuinely_unknown``), or not (identity unreachable, an identify pending)."""
        if not genuinely_unknown:
            return GraceClock(self.used_s, None)
        gained = 0.0
        if self.counting_since is not None:
            gained = max(0.0, (now - self.counting_since).total_seconds())
        return GraceClock(self.used_s + gained, now)


@dataclass(frozen=True)
class Hold:
    """One event to hold (or keep waiting) after a look."""

    record_pk: int
    issue: Issue
    candidates: tuple[str, ...]
    detail: str
    clock: GraceClock
    # Canonical keys of the event's identifiers (``identifier_key``).
    keys: tuple[str, ...]
    trace_carrier: dict[str, str]


@dataclass(frozen=True)
class Attributed:
    customer_id: str


@dataclass(frozen=True)
class NotAttributed:
    """Held (``issue`` not waiting) or waiting; ``candidates`` are the customers it may be."""

    issue: Issue
    candidates: tuple[str, ...] = ()


def attribute(
    findings: Sequence[Finding], clock: GraceClock, grace_s: float
) -> Attributed | NotAttributed:
    """The decision for one event from identity's answers for its identifiers (malformed ones
    left out) and its grace clock as advanced by this look."""
    decisive = (f.customer_id for f in findings if f.state is IdentifierState.DECISIVE)
    named = list(dict.fromkeys(decisive))
    if len(named) == 1:
        return Attributed(named[0])
    candidates = list(named)
    for finding in findings:
        for candidate in finding.candidates:
            if candidate not in candidates:
                candidates.append(candidate)
    if named:
        return NotAttributed(Issue.CONFLICTING_IDENTIFIERS, tuple(candidates))
    states = {f.state for f in findings}
    if IdentifierState.UNKNOWN in states and clock.used_s < grace_s:
        return NotAttributed(Issue.AWAITING_CUSTOMER, tuple(candidates))
    if IdentifierState.SHARED in states:
        return NotAttributed(Issue.SHARED_IDENTIFIER, tuple(candidates))
    if IdentifierState.BLOCKED in states:
        return NotAttributed(Issue.BLOCKED_IDENTIFIER, tuple(candidates))
    return NotAttributed(Issue.UNKNOWN_CUSTOMER, tuple(candidates))


def sole_customer(findings: Sequence[Finding | None]) -> str | None:
    """The customer ``attribute`` attributes an event to, whatever its grace clock (None
    findings, identifiers identity refused, left out), or None when it attributes it to
    nobody: exactly one customer named by DECISIVE identifiers. For a bulk first look that
    needs only that (an event import): no clock and no decision object per event."""
    named: str | None = None
    for finding in findings:
        if finding is not None and finding.state is IdentifierState.DECISIVE:
            if named is None:
                named = finding.customer_id
            elif finding.customer_id != named:
                return None
    return named


def recheck_delay_s(issue: Issue, checks: int, held_max_s: float) -> float:
    """Seconds until a not-attributed event is looked at again, after ``checks`` looks."""
    cap = WAITING_RECHECK_MAX_S if issue.waiting else held_max_s
    return min(cap, FIRST_RECHECK_S * 2.0 ** min(max(checks, 0), 30))


def describe(issue: Issue, candidates: int, clock: GraceClock, grace_s: float) -> str:
    """What GetRecordStatus says about a not-attributed event (never personal data)."""
    if issue is Issue.IDENTITY_UNAVAILABLE:
        return "waiting for identity, which could not be reached; the grace clock is stopped"
    if issue is Issue.AWAITING_CUSTOMER:
        return (
            "waiting for its customer: no customer has its identifiers yet "
            f"(grace clock {clock.used_s:.0f} s of {grace_s:.0f} s)"
        )
    if issue is Issue.CONFLICTING_IDENTIFIERS:
        return f"unattributed: its identifiers name {candidates} different customers"
    if issue is Issue.SHARED_IDENTIFIER:
        return f"unattributed: its identifiers are shared by {candidates} customers"
    if issue is Issue.BLOCKED_IDENTIFIER:
        return "unattributed: its only known identifiers are blocked and name nobody"
    return "unattributed: no customer has any of its identifiers after the grace period"


# -- identifier keys -------------------------------------------------------------------------
# Ingestion compares identifiers of events with those of identify calls (a pending identify,
# the identify that should wake a held event) in one canonical spelling, identity's and every
# service's (svod_contacts): phones in E.164 (RU for national formats), e-mails trimmed,
# lower-cased and in email-validator's normal form, cards without spaces or dashes, upper-cased.


def identifier_key(id_type: str, value: str, namespace: str = "") -> str:
    """The canonical key of an identifier; a value that does not parse keeps its own text."""
    text = value.strip()
    canonical: str | None = None
    if id_type == IdentifierType.PHONE:
        canonical = normalize_phone(text)
    elif id_type == IdentifierType.EMAIL:
        canonical = normalize_email(text)
        text = text.lower()
    elif id_type == IdentifierType.LOYALTY_CARD:
        canonical = normalize_card(text)
    scope = namespace.strip().lower() if id_type in NAMESPACED_NAMES else ""
    return f"{id_type}\x1f{scope}\x1f{canonical or text}"
