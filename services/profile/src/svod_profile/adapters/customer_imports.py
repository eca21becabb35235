"""Customer imports in the ``profile`` schema: resolved records folded set-based (issue 22).

ApplyBatch writes a record with one statement of its own (``storage._CLAIM_AND_OBSERVE``: the
claim, its traits, identifiers and source). A fold writes a whole call's records with one
statement: the records travel as one JSON document, the claims are inserted together
(``ON CONFLICT DO NOTHING``: a record applied before, by any path, is left out) and the same
statement stores the claimed records' traits, identifiers and sources. What one statement per
record did in turn is done here per key at once, with the same result:

- a trait value per record and field, in record order (``value_pk`` grows as ApplyBatch's);
- an identifier row keeps the provenance of the first record that brought it and the latest
  time any did (ApplyBatch: inserted by the first, ``observed_at = greatest(...)`` after);
- a source row keeps its first record's channel, the earliest and latest times and the count.

Every value of a record carries the record's provenance (entrypoints' ``application``), so
the document sends it once per record.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from contextlib import suppress
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.ext.asyncio import AsyncConnection

from svod_profile.domain.model import Provenance, RecordApplication, TraitObservation
from svod_runtime.db import array_literal, dump_json, fetch_direct

_FOLD = """
WITH x AS (
    SELECT * FROM jsonb_to_recordset(CAST(%(rows)s AS jsonb))
        AS x(i int, c uuid, s text, m text, ch text, at timestamptz, t jsonb, d jsonb)
), claim AS (
    INSERT INTO applied_records (source, message_id, customer_id, channel, observed_at)
    SELECT s, m, c, ch, at FROM x ORDER BY i
    ON CONFLICT DO NOTHING RETURNING source, message_id
), new AS (
    SELECT x.* FROM x JOIN claim ON claim.source = x.s AND claim.message_id = x.m
), traits AS (
    INSERT INTO trait_values (customer_id, field, value, source, channel, observed_at,
        record_source, record_message_id)
    SELECT new.c, e.v ->> 0, e.v ->> 1, new.s, new.ch, new.at, new.s, new.m
    FROM new CROSS JOIN LATERAL jsonb_array_elements(new.t) WITH ORDINALITY AS e(v, n)
    ORDER BY new.i, e.n
), ids AS (
    SELECT new.i, new.c, new.s, new.ch, new.at,
        e.v ->> 0 AS t, e.v ->> 1 AS n, e.v ->> 2 AS v
    FROM new CROSS JOIN LATERAL jsonb_array_elements(new.d) AS e(v)
), identifiers AS (
    INSERT INTO profile_identifiers (customer_id, id_type, namespace, value, source, channel,
        observed_at)
    SELECT DISTINCT ON (c, t, n, v) c, t, n, v, s, ch,
        max(at) OVER (PARTITION BY c, t, n, v)
    FROM ids ORDER BY c, t, n, v, i
    ON CONFLICT (customer_id, id_type, namespace, value) DO UPDATE
    SET observed_at = greatest(profile_identifiers.observed_at, excluded.observed_at)
), sources AS (
    INSERT INTO profile_sources (customer_id, source, channel, first_seen, last_seen,
        record_count)
    SELECT DISTINCT ON (c, s) c, s, ch, min(at) OVER w, max(at) OVER w, count(*) OVER w
    FROM new WINDOW w AS (PARTITION BY c, s) ORDER BY c, s, i
    ON CONFLICT (customer_id, source) DO UPDATE SET
        first_seen = least(profile_sources.first_seen, excluded.first_seen),
        last_seen = greatest(profile_sources.last_seen, excluded.last_seen),
        record_count = profile_sources.record_count + excluded.record_count
)
SELECT i FROM new
"""

# Every value of the customers, in the order they were stored (as the per-customer read of
# ApplyBatch gives them, through the (customer_id, field) index).
_OBSERVATIONS = """
SELECT CAST(customer_id AS text) AS customer_id, field, value, source, channel, observed_at
FROM trait_values
WHERE customer_id = ANY(CAST(%(c)s AS uuid[])) ORDER BY customer_id, field, value_pk
"""

# The customers an import's folds changed; those of them announced now, taken off the list
# (a chunk at a time: FinishCustomerImport of a million customers is many short
# transactions), each as its current id (merged-away ones as their survivor).
_NOTE = """
INSERT INTO customer_import_changes (import_id, customer_id)
SELECT %(i)s, unnest(CAST(%(c)s AS uuid[])) ON CONFLICT DO NOTHING
"""
_TAKE = """
WITH taken AS (
    DELETE FROM customer_import_changes
    WHERE import_id = %(i)s AND customer_id IN (
        SELECT customer_id FROM customer_import_changes WHERE import_id = %(i)s
        ORDER BY customer_id LIMIT %(n)s
    )
    RETURNING customer_id
)
SELECT DISTINCT coalesce(m.survivor_id, t.customer_id) AS customer_id
FROM taken t LEFT JOIN merged_customers m ON m.customer_id = t.customer_id
ORDER BY 1
"""


_UNFILL = """
UPDATE profiles SET shown = '{}', name_variants = '[]', name_keys = '{}', version = 0
WHERE customer_id = ANY(CAST(%(c)s AS uuid[]))
"""


# Time zones whose offset is always zero: the times of a server in UTC (psycopg reads them
# in its ZoneInfo, the same object each time) and of the records (timezone.utc).
def _utc_zones() -> frozenset[dt.tzinfo]:
    zones: set[dt.tzinfo] = {dt.UTC}
    for key in ("UTC", "Etc/UTC", "Etc/UCT", "Etc/Universal", "Etc/Zulu"):
        with suppress(ZoneInfoNotFoundError, ValueError):  # no zone data: asked as others
            zones.add(ZoneInfo(key))
    return frozenset(zones)


_UTC_ZONES = _utc_zones()


def json_time(value: dt.datetime) -> dt.datetime | str:
    """A time for ``dump_json`` to write as ``isoformat()`` does: the datetime itself (orjson
    writes it: 0.3 us against isoformat()'s 3.5, timeit), but for an offset with seconds (a
    zone's local mean time before about 1920), which orjson writes to the minute. A time in
    UTC is known whole without asking its offset: a customer import's fold writes about 7
    times a record, and the utcoffset() calls were 5% of profile's CPU in the fold (py-spy,
    probe)."""
    if value.tzinfo in _UTC_ZONES:
        return value
    offset = value.utcoffset()
    if offset is None or offset.seconds % 60 or offset.microseconds:
        return value.isoformat()
    return value


def _row(position: int, app: RecordApplication) -> dict[str, Any]:
    p = app.provenance
    return {
        "i": position,
        "c": app.customer_id,
        "s": app.source,
        "m": app.message_id,
        "ch": p.channel,
        "at": json_time(p.observed_at),
        "t": [[t.field, t.value] for t in app.traits],
        "d": [[i.type, i.namespace, i.value] for i in app.identifiers],
    }


class CustomerImportRows:
    """A customer import's writes, in a transaction (``ProfileTransaction.customer_imports``)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def claim_and_observe(self, apps: list[RecordApplication]) -> list[bool]:
        """``ProfileTransaction.claim_and_observe`` of each record in turn, as one statement:
        for each, whether it was new (a record already applied, or earlier in ``apps``, is
        not). The records' customers must be locked."""
        if not apps:
            return []
        first: dict[tuple[str, str], int] = {}
        for position, app in enumerate(apps):
            first.setdefault((app.source, app.message_id), position)
        # A record twice in ``apps``: its later copy is a duplicate, as in a second Apply.
        rows = [_row(position, apps[position]) for position in first.values()]
        # orjson (dump_json): json.dumps of a call's 2,000 records was 2% of the fold's CPU in
        # process (cProfile, probe).
        found = await fetch_direct(self.conn, _FOLD, {"rows": dump_json(rows)})
        claimed = {int(r.i) for r in found}
        return [position in claimed for position in range(len(apps))]

    async def observations(
        self,
        customer_ids: Iterable[str],
        written: Mapping[str, Sequence[RecordApplication]] | None = None,
    ) -> dict[str, list[TraitObservation]]:
        """Every value observed for the customers, by customer, in the order stored.

        ``written``: customers whose profiles this transaction created, each with the records
        ``claim_and_observe`` stored for them, in its order. Such a profile holds nothing but
        what the transaction wrote, so its values are given as the read would give them (each
        value with its record's provenance; times in the connection's time zone, as psycopg
        reads a timestamptz) without reading them: most customers of an import are new, and
        reading their values back was 13% of the fold's CPU in process (cProfile, probe)."""
        ids = sorted(set(customer_ids) - set(written or ()))
        found: dict[str, list[TraitObservation]] = {c: [] for c in ids}
        if written:
            found.update(await self.as_stored(written))
        if not ids:
            return found
        rows = await fetch_direct(self.conn, _OBSERVATIONS, {"c": array_literal(ids)})
        # Fewer objects a row: the customer ids as text (no UUID made of each), and a record's
        # values share one Provenance.
        provenances: dict[tuple[str, str, dt.datetime], Provenance] = {}
        for r in rows:
            key = (r.source, r.channel, r.observed_at)
            provenance = provenances.get(key)
            if provenance is None:
                provenance = provenances[key] = Provenance(*key)
            found[r.customer_id].append(TraitObservation(r.field, r.value, provenance))
        return found

    async def as_stored(
        self, apps_of: Mapping[str, Sequence[RecordApplication]]
    ) -> dict[str, list[TraitObservation]]:
        """The values ``claim_and_observe`` stores of each customer's records (all of them
        new), in its order, as ``observations`` reads them back (each value with its record's
        provenance, the time in the connection's time zone)."""
        raw = await self.conn.get_raw_connection()
        driver: Any = raw.driver_connection
        zone = driver.info.timezone
        in_utc = zone in _UTC_ZONES
        found: dict[str, list[TraitObservation]] = {}
        for customer_id, apps in apps_of.items():
            values = found[customer_id] = []
            for app in apps:
                # _FOLD stores each value with its record's source, channel and time.
                p = app.provenance
                if (
                    in_utc
                    and p.observed_at.tzinfo in _UTC_ZONES
                    and p.source == app.source
                    and all(t.provenance is p for t in app.traits)
                ):
                    # The record's own values, as read back on a server in UTC (their times
                    # written alike): no objects made anew for them (making them was 7% of
                    # profile's CPU in the fold, with the collections of the garbage
                    # collector they set off; py-spy, probe).
                    values.extend(app.traits)
                    continue
                provenance = Provenance(app.source, p.channel, p.observed_at.astimezone(zone))
                values.extend(TraitObservation(t.field, t.value, provenance) for t in app.traits)
        return found

    async def unfill(self, customer_ids: Iterable[str]) -> None:
        """Profiles made whole (``lock_current_profiles``' ``filled``) set back to as made
        empty: some record they were made from was not stored for them after all."""
        ids = sorted(set(customer_ids))
        if ids:
            await fetch_direct(self.conn, _UNFILL, {"c": array_literal(ids)})

    async def note_changed(self, import_id: str, customer_ids: Iterable[str]) -> None:
        ids = sorted(set(customer_ids))
        if ids:
            await fetch_direct(self.conn, _NOTE, {"i": import_id, "c": array_literal(ids)})

    async def take_changed(self, import_id: str, limit: int) -> list[str]:
        """Up to ``limit`` of the customers the import changed and nobody announced yet (each
        as its current id: merged-away ones as their survivor), taken off the list."""
        rows = await fetch_direct(self.conn, _TAKE, {"i": import_id, "n": limit})
        return [str(r.customer_id) for r in rows]
