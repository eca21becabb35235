"""What the append-only identity ledger records, and what it may keep.

The ledger is never rewritten, not even by an erasure: whatever goes in stays. So what an entry
may hold is decided here, once, for ``Resolve``, the batch engine and the use cases alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from svod_identity.domain.model import RecordRef, ResolutionOutcome


class LedgerKind(StrEnum):
    """The kinds of ledger entry (``ListLedgerEntriesRequest.kinds`` in the API)."""

    CUSTOMER_CREATED = "customer_created"
    RECORD_LINKED = "record_linked"
    CUSTOMERS_MERGED = "customers_merged"
    MANUAL_MERGE = "manual_merge"
    REVIEW_ACCEPTED = "review_accepted"
    REVIEW_REJECTED = "review_rejected"
    CUSTOMER_SPLIT = "customer_split"
    CUSTOMER_ERASED = "customer_erased"
    RULES_UPDATED = "rules_updated"


# One entry per record placed: where the record first went.
PLACEMENT_KINDS = (LedgerKind.CUSTOMER_CREATED, LedgerKind.RECORD_LINKED)
# A person's decisions keeping two customers apart.
APART_KINDS = (LedgerKind.REVIEW_REJECTED, LedgerKind.CUSTOMER_SPLIT)
# A person's decisions joining two customers.
HUMAN_MERGE_KINDS = (LedgerKind.MANUAL_MERGE, LedgerKind.REVIEW_ACCEPTED)

# The customer id of entries about no customer (a rules update).
NO_CUSTOMER = "00000000-0000-0000-0000-000000000000"


def placement_kind(outcome: ResolutionOutcome) -> LedgerKind:
    """The entry recording where a new record went: a customer made for it, or an existing
    one it was linked to."""
    if outcome == ResolutionOutcome.CREATED:
        return LedgerKind.CUSTOMER_CREATED
    return LedgerKind.RECORD_LINKED


def ledger_evidence(evidence: Mapping[str, Any]) -> dict[str, Any]:
    """What the ledger keeps of a record's evidence: never an identifier's value (erasure
    cannot remove it from there), only its type."""
    kept = {k: v for k, v in evidence.items() if k != "identifier"}
    if "identifier" in evidence:
        kept["identifier_type"] = evidence["identifier"][0]
    return kept


def placement_detail(rule: str, evidence: Mapping[str, Any]) -> dict[str, Any]:
    """The detail of a record's placement entry: the rule that placed it and its evidence as
    far as the ledger may keep it."""
    return {"rule": rule, **ledger_evidence(evidence)}


def merge_reason(ref: RecordRef | None) -> str:
    """The reason given for an automatic merge: the record whose arrival joined them."""
    return f"record {ref.source}/{ref.message_id} links them" if ref else ""
