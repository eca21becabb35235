"""Incoming records for the resolver's unit tests: the n-th record of one source, n minutes
after T0, with the given identifiers and attributes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.model import IncomingRecord, RecordRef

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def incoming(n: int, *identifiers: IdentifierKey, **attributes: Any) -> IncomingRecord:
    return IncomingRecord(
        ref=RecordRef("src", f"m{n}"),
        channel="pos",
        observed_at=T0 + dt.timedelta(minutes=n),
        identifiers=identifiers,
        attributes=attributes,
    )
