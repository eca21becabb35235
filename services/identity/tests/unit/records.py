"""Incoming records for the resolver's unit tests (the n-th record of one source, n minutes
after T0, with the given identifiers and attributes), and their placement into a new graph."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from svod_identity.domain.engine import GraphState, Resolver
from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.matching.model import MatchModel, default_model
from svod_identity.domain.model import IncomingRecord, RecordRef
from svod_identity.domain.rules import default_rules

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def reweighted(
    base: MatchModel, weights: Mapping[tuple[str, str], tuple[float, float]], **changes: Any
) -> MatchModel:
    """``base`` with the (m, u) of some (feature, level) pairs set as EM would fit them on a
    data set of the test's kind (and any other field of the model in ``changes``)."""
    m = {f: dict(levels) for f, levels in base.m.items()}
    u = {f: dict(levels) for f, levels in base.u.items()}
    for (feature, level), (m_value, u_value) in weights.items():
        m[feature][level], u[feature][level] = m_value, u_value
    return replace(base, m=m, u=u, **changes)


# A model's ``trained_pairs`` when a test stands for one EM fitted on this customer base (what
# the rules that read a place as telling ask for: ``scoring.strong_place``).
FITTED_PAIRS = 10_000

# (m, u) as EM fits them on data whose sources garble or replace birth dates, first names and
# surnames, and where unrelated people practically never share a street address (FEBRL-like).
GARBLED_SOURCES = {
    ("birth_date", "disagree"): (0.04, 0.95),
    ("first_name", "other"): (0.12, 0.6),
    ("last_name", "disagree"): (0.08, 0.06),
    ("location", "address"): (0.78, 0.002),
}


def city_model(trained_pairs: int = 10_000) -> MatchModel:
    """A model fitted where a shared small city says much (as EM finds in such data): the
    full name and the city score over the link threshold, without personal evidence."""
    return reweighted(
        default_model(), {("location", "city"): (0.7, 0.05)}, trained_pairs=trained_pairs
    )


def phone(n: int) -> IdentifierKey:
    """The n-th of a run of mobile numbers."""
    return IdentifierKey("phone", f"+7916482{n:04d}")


def incoming(n: int, *identifiers: IdentifierKey, **attributes: Any) -> IncomingRecord:
    return IncomingRecord(
        ref=RecordRef("src", f"m{n}"),
        channel="pos",
        observed_at=T0 + dt.timedelta(minutes=n),
        identifiers=identifiers,
        attributes=attributes,
    )


def place(
    model: MatchModel, *records: IncomingRecord, **options: bool
) -> tuple[list[str], Resolver]:
    """Resolves ``records`` in order into an empty graph: each one's customer as it ends up
    (after later merges), and the resolver."""
    state = GraphState()
    resolver = Resolver(state, default_rules(), model, new_id=iter("abcdef").__next__, **options)
    placed = [resolver.resolve(r) for r in records]
    return [state.find(p.customer_id) for p in placed], resolver
