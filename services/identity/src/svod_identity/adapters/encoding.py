"""Values to and from the ``identity`` schema's columns and statement parameters."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from typing import Any

from svod_identity.domain.engine import KnownRecord, person_from
from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.model import RecordRef
from svod_runtime.db import array_literal

# A ``:keys`` parameter (``key_rows``) as a table of identifiers to join against.
KEYS_TABLE = "jsonb_to_recordset(CAST(:keys AS jsonb)) AS x(t text, n text, v text)"


def to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def keys_json(keys: Sequence[IdentifierKey]) -> str:
    """A record's identifiers as stored in ``records.identifiers``."""
    return json.dumps([[k.type, k.namespace, k.value] for k in keys], ensure_ascii=False)


def stored_keys(raw: Any) -> tuple[IdentifierKey, ...]:
    """The identifiers of ``records.identifiers`` (see ``keys_json``)."""
    return tuple(IdentifierKey(t, v, n) for t, n, v in raw or ())


def key_rows(keys: Iterable[IdentifierKey]) -> str:
    """Identifiers as the ``:keys`` parameter of ``KEYS_TABLE``."""
    return json.dumps(
        [{"t": k.type, "n": k.namespace, "v": k.value} for k in keys], ensure_ascii=False
    )


def ints(values: Iterable[int]) -> str:
    return array_literal(map(str, values))


def times(values: Iterable[dt.datetime]) -> str:
    return array_literal(value.isoformat() for value in values)


def known_record(
    pk: Any, source: str, message_id: str, customer_id: Any, identifiers: Any, attributes: Any
) -> KnownRecord:
    """A stored record as the engine knows it, from its columns."""
    keys = stored_keys(identifiers)
    return KnownRecord(
        int(pk),
        RecordRef(source, message_id),
        str(customer_id),
        person_from(str(pk), attributes or {}, keys, source),
        keys,
    )


def known_record_of(row: Any) -> KnownRecord:
    """``known_record`` of a row with the ``records`` table's column names."""
    return known_record(
        row.record_pk,
        row.source,
        row.message_id,
        row.customer_id,
        row.identifiers,
        row.attributes,
    )
