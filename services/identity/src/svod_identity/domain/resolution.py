"""Deterministic linking: which customer a record joins, from who owns its identifiers."""

from __future__ import annotations

from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.model import LinkDecision, Owner


def decide_link(
    identifiers: tuple[IdentifierKey, ...], owners: dict[IdentifierKey, Owner]
) -> LinkDecision:
    """Exact-match rule: join the oldest customer owning any of the record's identifiers.

    Identifiers owned by nobody are attached to that customer. Identifiers owned by a different
    customer stay where they are: joining two customers is a merge, which the identity rules
    decide, not a side effect of one record.
    """
    if not owners:
        return LinkDecision(None, identifiers, (), "new_customer")
    oldest = min(owners.values(), key=lambda o: (o.created_at, o.customer_id))
    link = tuple(i for i in identifiers if i not in owners)
    conflicting = tuple(i for i, owner in owners.items() if owner.customer_id != oldest.customer_id)
    matched = sorted({i.type for i, o in owners.items() if o.customer_id == oldest.customer_id})
    return LinkDecision(
        oldest.customer_id, link, tuple(sorted(conflicting)), "exact:" + "+".join(matched)
    )
