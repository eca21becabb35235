"""Deterministic linking: which customer a record joins, from who owns its identifiers."""

from __future__ import annotations

from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.model import LinkDecision, Owner


def decide_link(
    identifiers: tuple[IdentifierKey, ...], owners: dict[IdentifierKey, Owner]
) -> LinkDecision:
    """Exact-match rule: the record joins the customer owning any of its identifiers.

    When its identifiers belong to several customers, the record proves they are one person:
    they merge into the oldest (its id survives; the others become aliases). Which identifiers
    may link at all (blocked values, limits, shared placeholders) is decided before this, by
    the identity rules, which pass only linkable identifiers in ``owners``.
    """
    if not owners:
        return LinkDecision(None, identifiers, (), "new_customer")
    by_customer: dict[str, Owner] = {o.customer_id: o for o in owners.values()}
    survivor = min(by_customer.values(), key=lambda o: (o.created_at, o.customer_id))
    merge = tuple(sorted(c for c in by_customer if c != survivor.customer_id))
    link = tuple(i for i in identifiers if i not in owners)
    matched = "+".join(sorted({i.type for i in owners}))
    return LinkDecision(survivor.customer_id, link, merge, f"exact:{matched}")
