"""Events, metrics and consents in the ``profile`` schema (used by ProfileTransaction)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from svod_profile.adapters.erasure_locks import erasure_lock_statement
from svod_profile.domain.consents import Consent
from svod_profile.domain.events import EventFact, Metrics
from svod_profile.domain.summaries import ShownEvent
from svod_runtime.db import array_literal, dump_json, fetch_direct, fetch_direct_pipelined
from svod_runtime.errors import CustomerErased
from svod_runtime.priority import sliced

_MERGED_OF = (
    "SELECT customer_id, survivor_id FROM merged_customers "
    "WHERE customer_id = ANY(CAST(%(c)s AS uuid[]))"
)
# The ids erased, or merged into an erased customer.
_ERASED_OF = (
    "SELECT customer_id FROM erased_customers WHERE customer_id = ANY(CAST(%(c)s AS uuid[])) "
    "OR customer_id IN (SELECT survivor_id FROM merged_customers "
    "WHERE customer_id = ANY(CAST(%(c)s AS uuid[])))"
)

# lock_current_profiles: missing profiles made, then all locked in id order (no deadlocks).
_CREATE_PROFILES = (
    "INSERT INTO profiles (customer_id) SELECT unnest(CAST(%(c)s AS uuid[])) "
    "ON CONFLICT (customer_id) DO NOTHING RETURNING CAST(customer_id AS text) AS customer_id"
)
# The same, new profiles made whole where ``filled`` gives their shown values, name variants
# and keys (rows of storage.shown_set_rows): as the empty profile updated by
# _UPDATE_SHOWN_SET would be, version 1 included. Rows in id order (the locks' order).
_CREATE_FILLED_PROFILES = """
INSERT INTO profiles (customer_id, shown, name_variants, name_keys, version)
SELECT i.c, coalesce(x.s, '{}'), coalesce(x.v, '[]'), coalesce(x.k, '{}'),
    CASE WHEN x.c IS NULL THEN 0 ELSE 1 END
FROM unnest(CAST(%(c)s AS uuid[])) WITH ORDINALITY AS i(c, n)
LEFT JOIN jsonb_to_recordset(CAST(%(filled)s AS jsonb)) AS x(c uuid, s jsonb, v jsonb, k text[])
    ON x.c = i.c
ORDER BY i.n
ON CONFLICT (customer_id) DO NOTHING
RETURNING CAST(customer_id AS text) AS customer_id, version
"""
_LOCK_PROFILES = (
    "SELECT customer_id, metrics FROM profiles "
    "WHERE customer_id = ANY(CAST(%(c)s AS uuid[])) ORDER BY customer_id FOR UPDATE"
)
# The same locks without the metrics or ids (a customer import's fold uses neither: reading
# the metrics was 2-3% of its CPU in process, cProfile, probe). Ids come back as text where
# they are returned: no UUID made of each and turned back into a string.
_LOCK_PROFILES_ONLY = (
    "SELECT 1 FROM profiles "
    "WHERE customer_id = ANY(CAST(%(c)s AS uuid[])) ORDER BY customer_id FOR UPDATE"
)

_TIME_FIELDS = {f.name for f in fields(Metrics) if "datetime" in str(f.type)}
_DECIMAL_FIELDS = {f.name for f in fields(Metrics) if "Decimal" in str(f.type)}


_METRIC_FIELDS = tuple(f.name for f in fields(Metrics))


def metrics_to_dict(metrics: Metrics) -> dict[str, Any]:
    """JSON-ready metrics (no dataclasses.asdict: its deep copy dominated event batches)."""
    raw = dict(metrics.__dict__)
    for name in _TIME_FIELDS:
        value = raw[name]
        if value is not None:
            raw[name] = value.isoformat()
    for name in _DECIMAL_FIELDS:
        raw[name] = str(raw[name])
    raw["channels"] = sorted(raw["channels"])
    return raw


def metrics_to_json(metrics: Metrics) -> str:
    return json.dumps(metrics_to_dict(metrics))


# (field name, how its JSON is read) for every metric, worked out once.
_METRIC_READERS: tuple[tuple[str, Any], ...] = tuple(
    (
        name,
        dt.datetime.fromisoformat
        if name in _TIME_FIELDS
        else Decimal
        if name in _DECIMAL_FIELDS
        else frozenset
        if name == "channels"
        else None,
    )
    for name in _METRIC_FIELDS
)


def metrics_from_json(raw: dict[str, Any]) -> Metrics:
    values: dict[str, Any] = {}
    for name, read in _METRIC_READERS:
        value = raw.get(name)
        if value is not None:
            values[name] = value if read is None else read(value)
    return Metrics(**values)


def _event_row(customer_id: str, event: EventFact) -> dict[str, Any]:
    return {
        "c": customer_id,
        "s": event.source,
        "m": event.message_id,
        "t": event.type,
        "at": event.occurred_at.isoformat(),
        "ch": event.channel,
        "cur": event.currency,
        "amount": str(event.amount),
        "discount": str(event.discount),
        "items": event.items,
        "categories": list(event.categories),
        "order_id": event.order_id,
        "ref": event.reference_id,
        "contact": event.contact_channel,
        "points": event.loyalty_points,
        "props": event.properties,
        "ids": [list(i) for i in event.identifiers],
    }


def _event_from_row(row: Any) -> EventFact:
    return EventFact(
        source=row.source,
        message_id=row.message_id,
        type=row.event_type,
        occurred_at=row.occurred_at,
        channel=row.channel,
        currency=row.currency,
        amount=Decimal(row.amount),
        discount=Decimal(row.discount),
        items=row.items,
        categories=tuple(row.categories),
        order_id=row.order_id,
        reference_id=row.reference_id,
        contact_channel=row.contact_channel,
        loyalty_points=row.loyalty_points,
        properties=dict(row.properties),
        identifiers=tuple(tuple(i) for i in row.identifiers),
    )


EVENT_COLUMNS = (
    "source, message_id, event_type, occurred_at, channel, currency, amount, discount, items, "
    "categories, order_id, reference_id, contact_channel, loyalty_points, properties, identifiers"
)


@dataclass(frozen=True)
class CurrentMetrics:
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime
    metrics: Metrics


# An event's columns but its identifiers, named as a ShownEvent's fields (announced_events).
_SHOWN_COLUMNS = EVENT_COLUMNS.removesuffix(", identifiers").replace(
    "event_type,", "event_type AS type,"
)


# announced_event_columns: each column as segmentation's EventColumns field of that name
# (a TimelineEntry's field as announced before: an amount and discount only with a currency,
# the contact channel among the properties; numeric(20, 9) amounts, so no rounding).
# Each reference is looked up by itself through events' (source, message_id) key: the lateral
# subquery's OFFSET 0 keeps Postgres from flattening it into a join it may plan as a hash join
# over a scan of all of events. It did, on every relay pass of the pipeline benchmark (the
# references' count guessed at 10,000, events' statistics stale while the table grew): a pass
# of 500 changes took 38 ms at 12,000 stored events and grew with the table (auto_explain,
# docs/performance.md, "Plans that scanned whole tables").
_ANNOUNCED_COLUMN_NAMES = (
    "source",
    "message_id",
    "event_type",
    "occurred_time_micros",
    "channel",
    "amount",
    "discount",
    "categories",
    "properties",
    "reference_id",
    "order_id",
)
_ANNOUNCED_COLUMNS = """
SELECT i, array_agg(source) AS a1, array_agg(message_id) AS a2, array_agg(event_type) AS a3,
    array_agg(us) AS a4, array_agg(channel) AS a5, array_agg(amount) AS a6,
    array_agg(discount) AS a7, array_agg(categories) AS a8, array_agg(properties) AS a9,
    array_agg(reference_id) AS a10, array_agg(order_id) AS a11
FROM (
    SELECT c.i, e.source, e.message_id, e.event_type,
        CAST(extract(epoch FROM e.occurred_at) * 1000000 AS bigint) AS us,
        CASE WHEN e.channel = ANY(CAST(%(channels)s AS text[])) THEN e.channel ELSE '' END
            AS channel,
        CASE WHEN e.currency <> '' THEN CAST(trim_scale(e.amount) AS text) ELSE '' END
            AS amount,
        CASE WHEN e.currency <> '' THEN CAST(trim_scale(e.discount) AS text) ELSE '' END
            AS discount,
        CASE WHEN cardinality(e.categories) > 0 THEN CAST(e.categories AS text) ELSE '' END
            AS categories,
        CASE WHEN e.contact_channel <> '' THEN
                CAST(e.properties || jsonb_build_object('contact_channel', e.contact_channel)
                    AS text)
            WHEN e.properties = CAST('{}' AS jsonb) THEN ''
            ELSE CAST(e.properties AS text) END AS properties,
        e.reference_id, e.order_id
    FROM jsonb_array_elements(CAST(%(changes)s AS jsonb)) WITH ORDINALITY AS c(body, i)
    CROSS JOIN LATERAL jsonb_array_elements(c.body -> 'events') WITH ORDINALITY AS r(ref, n)
    CROSS JOIN LATERAL (
        SELECT * FROM events
        WHERE events.source = r.ref ->> 0 AND events.message_id = r.ref ->> 1
        OFFSET 0
    ) e
    ORDER BY c.i, r.n
) ordered
GROUP BY i
"""


class EventRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        # Profiles this transaction created (lock_current_profiles): nothing but what it writes
        # yet.
        self.created: set[str] = set()
        # Those of them made whole (lock_current_profiles' ``filled``).
        self.filled: set[str] = set()

    async def insert_event(self, customer_id: str, event: EventFact) -> bool:
        """Stores an event once; False when it had been applied before."""
        inserted = await self.insert_events([(customer_id, event)])
        return (event.source, event.message_id) in inserted

    async def insert_events(self, rows: list[tuple[str, EventFact]]) -> set[tuple[str, str]]:
        """Stores events once each; returns the (source, message id) of those new here."""
        result = await fetch_direct(
            self.conn,
            f"""
                INSERT INTO events (customer_id, {EVENT_COLUMNS})
                SELECT x.c, x.s, x.m, x.t, x.at, x.ch, x.cur, x.amount, x.discount, x.items,
                       x.categories, x.order_id, x.ref, x.contact, x.points, x.props, x.ids
                FROM jsonb_to_recordset(CAST(%(rows)s AS jsonb)) AS x(
                    c uuid, s text, m text, t text, at timestamptz, ch text, cur text,
                    amount numeric, discount numeric, items integer, categories text[],
                    order_id text, ref text, contact text, points bigint, props jsonb,
                    ids jsonb)
                ON CONFLICT (source, message_id) DO NOTHING RETURNING source, message_id
                """,
            {"rows": dump_json([_event_row(c, e) async for c, e in sliced(rows)])},
        )
        return {(r.source, r.message_id) for r in result}

    async def current_ids(self, customer_ids: list[str]) -> dict[str, str]:
        """Each id -> the survivor when merged away, else itself."""
        rows = await fetch_direct(
            self.conn,
            "SELECT customer_id, survivor_id FROM merged_customers "
            "WHERE customer_id = ANY(CAST(%(c)s AS uuid[]))",
            {"c": array_literal(customer_ids)},
        )
        merged = {str(r.customer_id): str(r.survivor_id) for r in rows}
        return {c: merged.get(c, c) for c in customer_ids}

    async def _current_unless_erased(
        self, customer_ids: list[str], erasure_locked: bool = False
    ) -> dict[str, str]:
        """current_ids, and CustomerErased when one of the ids (or the customer it was merged
        into) was erased: a late message never brings an erased customer back. The ids'
        erasure locks are taken shared (adapters/erasure_locks.py) unless ``erasure_locked``
        (the transaction holds them already); an erasure locks every id of the person,
        merged-away ones too. One round trip."""
        params = {"c": array_literal(customer_ids)}
        locks = [] if erasure_locked else [(erasure_lock_statement(shared=True), params)]
        rows, *_, erased = await fetch_direct_pipelined(
            self.conn, [(_MERGED_OF, params), *locks, (_ERASED_OF, params)]
        )
        if erased:
            raise CustomerErased(min(str(r.customer_id) for r in erased))
        merged = {str(r.customer_id): str(r.survivor_id) for r in rows}
        return {c: merged.get(c, c) for c in customer_ids}

    async def lock_current_profiles(
        self,
        customer_ids: list[str],
        *,
        with_metrics: bool = True,
        erasure_locked: bool = False,
        filled: str | None = None,
    ) -> tuple[dict[str, str], dict[str, Metrics]]:
        """Each id -> the profile it names now, and those profiles locked with their metrics
        (none read when not ``with_metrics``). ``erasure_locked``: the transaction holds the
        ids' erasure locks already (``erased_among``), they are not taken again.

        ``filled``: JSON rows (``ProfileTransaction.shown_json``) of the shown values, name
        variants and keys a profile this call creates is made with (noted in ``filled``)
        instead of empty - a customer import's new customers, whose profiles would otherwise
        be inserted empty here and updated at once (a second row version with its index
        entries, the name keys' GIN included). Only the rows' contents differ: the profiles
        are still created here, by the same INSERT ... ON CONFLICT DO NOTHING in id order
        before any lock is taken, so a concurrent creator (ApplyBatch, the event batcher)
        meets the same row at the same point as before. If it inserted first, this INSERT
        waits for it and does nothing (the profile is not ``created``, its ``filled`` row
        unused: the caller reads its values as an existing customer's); if this one did, the
        other waits for this transaction and then finds the filled row, which holds what
        the empty row and the caller's update would. Only the first pass uses ``filled``:
        a profile made after following a merge is made empty.

        A merge may commit while we wait for a lock, and the locking would then bring the
        merged-away profile back: so once the locks are held the merges are looked up again
        and followed, and the rows the locking re-created dropped. An erased id (or one merged
        into an erased customer) raises CustomerErased: nothing is written for it.
        """
        current = await self._current_unless_erased(customer_ids, erasure_locked)
        lock = _LOCK_PROFILES if with_metrics else _LOCK_PROFILES_ONLY
        while True:
            owners = sorted(set(current.values()))
            ids = {"c": array_literal(owners)}
            # The profiles made, locked and their merges looked up again in one round trip
            # (three before: a batch's statements wait on the round trips, and each costs the
            # process a wake-up; see docs/performance.md, "Profile and segmentation CPU").
            create = (
                (_CREATE_PROFILES, ids)
                if filled is None
                else (_CREATE_FILLED_PROFILES, {**ids, "filled": filled})
            )
            created, locked, merged = await fetch_direct_pipelined(
                self.conn, [create, (lock, ids), (_MERGED_OF, ids)]
            )
            self.created.update(str(r.customer_id) for r in created)
            if filled is not None:
                self.filled.update(r.customer_id for r in created if r.version)
                filled = None
            metrics = (
                {str(r.customer_id): metrics_from_json(r.metrics) async for r in sliced(locked)}
                if with_metrics
                else {}
            )
            moved = {str(r.customer_id): str(r.survivor_id) for r in merged}
            if not moved:
                return current, metrics
            await fetch_direct(
                self.conn,
                "DELETE FROM profiles WHERE customer_id = ANY(CAST(%(c)s AS uuid[]))",
                {"c": array_literal(moved)},
            )
            current = {c: moved.get(o, o) for c, o in current.items()}
            self.filled -= moved.keys()

    async def current_metrics(self, customer_ids: list[str]) -> dict[str, CurrentMetrics]:
        """The version, times and metrics of each profile there is, without the rest of it
        (a metrics change announced to segmentation)."""
        if not customer_ids:
            return {}
        rows = await fetch_direct(
            self.conn,
            "SELECT customer_id, version, created_at, updated_at, metrics FROM profiles "
            "WHERE customer_id = ANY(CAST(%(c)s AS uuid[]))",
            {"c": array_literal(customer_ids)},
        )
        return {
            str(r.customer_id): CurrentMetrics(
                int(r.version), r.created_at, r.updated_at, metrics_from_json(r.metrics)
            )
            async for r in sliced(rows)
        }

    async def save_metrics_many(self, metrics: dict[str, Metrics]) -> dict[str, int]:
        if not metrics:
            return {}
        rows = await fetch_direct(
            self.conn,
            """
                UPDATE profiles p SET metrics = x.m, updated_at = now(), version = version + 1
                FROM jsonb_to_recordset(CAST(%(rows)s AS jsonb)) AS x(c uuid, m jsonb)
                WHERE p.customer_id = x.c RETURNING p.customer_id, p.version
                """,
            {
                "rows": dump_json(
                    [{"c": c, "m": metrics_to_dict(m)} async for c, m in sliced(metrics.items())]
                )
            },
        )
        return {str(r.customer_id): int(r.version) for r in rows}

    async def metrics(self, customer_id: str) -> Metrics:
        row = (
            await self.conn.execute(
                text("SELECT metrics FROM profiles WHERE customer_id = :c"), {"c": customer_id}
            )
        ).first()
        return Metrics() if row is None else metrics_from_json(row.metrics)

    async def save_metrics(self, customer_id: str, metrics: Metrics) -> int:
        row = (
            await self.conn.execute(
                text(
                    "UPDATE profiles SET metrics = CAST(:m AS jsonb), updated_at = now(), "
                    "version = version + 1 WHERE customer_id = :c RETURNING version"
                ),
                {"c": customer_id, "m": metrics_to_json(metrics)},
            )
        ).one()
        return int(row[0])

    async def events_of(self, customer_id: str) -> list[EventFact]:
        rows = await self.conn.execute(
            text(f"SELECT {EVENT_COLUMNS} FROM events WHERE customer_id = :c"),
            {"c": customer_id},
        )
        return [_event_from_row(r) for r in rows]

    async def events_by_ref(self, refs: list[tuple[str, str]]) -> list[EventFact]:
        if not refs:
            return []
        rows = await self.conn.execute(
            text(
                f"""
                SELECT {EVENT_COLUMNS} FROM events
                WHERE (source, message_id) IN (
                    SELECT s, m FROM jsonb_to_recordset(CAST(:refs AS jsonb)) AS x(s text, m text))
                """
            ),
            {"refs": dump_json([{"s": s, "m": m} for s, m in refs])},
        )
        return [_event_from_row(r) for r in rows]

    async def announced_events(self, refs: list[tuple[str, str]]) -> list[ShownEvent]:
        """The events by reference as a change announcement carries them (TimelineEntry): all
        but the identifiers the source named the customer by, read past SQLAlchemy (in the
        relay's passes events_by_ref and its row mapping were 6-9% of the process's py-spy
        samples). The rows themselves, named as EventFact's fields: making an EventFact of
        each was a fifth of announcing an import (200,000 events, py-spy)."""
        if not refs:
            return []
        return await fetch_direct(
            self.conn,
            f"SELECT {_SHOWN_COLUMNS} FROM events WHERE (source, message_id) IN ("
            "SELECT x.s, x.m FROM jsonb_to_recordset(CAST(%(refs)s AS jsonb)) "
            "AS x(s text, m text))",
            {"refs": dump_json([{"s": s, "m": m} for s, m in refs])},
        )

    async def announced_event_columns(
        self, payloads: Sequence[bytes], channels: Sequence[str]
    ) -> list[tuple[int, dict[str, list[Any]]]]:
        """The events of change announcements (ProfileChanged payloads, as the outbox holds
        them) in columns, as segmentation's EventColumns carries them: (the payload's index,
        its events' columns) for each payload with an event still stored, events in the
        payload's order. Postgres reads the references out of the payloads and makes the
        columns, so nothing is made per event in Python (a row and a TimelineEntry per event
        were about 40% of the process's CPU on an event import: docs/performance.md,
        "Announcing events in columns"). ``channels``: the channel names segmentation knows;
        another is sent as "" (as a TimelineEntry's unknown channel number reads)."""
        if not payloads:
            return []
        rows = await fetch_direct(
            self.conn,
            _ANNOUNCED_COLUMNS,
            {
                "changes": (b"[" + b",".join(payloads) + b"]").decode(),
                "channels": array_literal(channels),
            },
        )
        return [
            (int(r[0]) - 1, dict(zip(_ANNOUNCED_COLUMN_NAMES, r[1:], strict=True))) for r in rows
        ]

    async def timeline(
        self, customer_id: str, limit: int, after: tuple[dt.datetime, str, str] | None
    ) -> list[EventFact]:
        """Newest first; ``after`` is the last entry of the previous page (keyset paging)."""
        condition = ""
        params: dict[str, Any] = {"c": customer_id, "n": limit}
        if after is not None:
            condition = "AND (occurred_at, source, message_id) < (:at, :s, :m)"
            params.update({"at": after[0], "s": after[1], "m": after[2]})
        rows = await self.conn.execute(
            text(
                f"""
                SELECT {EVENT_COLUMNS} FROM events WHERE customer_id = :c {condition}
                ORDER BY occurred_at DESC, source DESC, message_id DESC LIMIT :n
                """
            ),
            params,
        )
        return [_event_from_row(r) for r in rows]

    async def move_events_by_ref(self, target: str, refs: list[tuple[str, str]]) -> None:
        if refs:
            await self.conn.execute(
                text(
                    """
                    UPDATE events SET customer_id = :t WHERE (source, message_id) IN (
                        SELECT s, m FROM jsonb_to_recordset(CAST(:refs AS jsonb))
                            AS x(s text, m text))
                    """
                ),
                {"t": target, "refs": json.dumps([{"s": s, "m": m} for s, m in refs])},
            )

    async def move_events(self, survivor: str, merged: list[str]) -> None:
        await self.conn.execute(
            text("UPDATE events SET customer_id = :s WHERE customer_id = ANY(CAST(:m AS uuid[]))"),
            {"s": survivor, "m": merged},
        )

    async def consents(self, customer_ids: list[str]) -> list[tuple[str, Consent]]:
        rows = await self.conn.execute(
            text(
                "SELECT customer_id, channel, status, source, at, legal_basis, received_at "
                "FROM consents WHERE customer_id = ANY(CAST(:c AS uuid[])) ORDER BY channel"
            ),
            {"c": customer_ids},
        )
        return [
            (
                str(r.customer_id),
                Consent(r.channel, r.status, r.source, r.at, r.legal_basis, r.received_at),
            )
            for r in rows
        ]

    async def record_consent(
        self,
        customer_id: str,
        consent: Consent,
        current: bool,
        history: bool = True,
        *,
        stated_for: str | None = None,
        record_ref: tuple[str, str] | None = None,
    ) -> None:
        """Kept in the history (with the customer id it was made for and the event it came
        from, if any); made the current one when it stands."""
        params = {
            "c": customer_id,
            "for": stated_for or customer_id,
            "rs": record_ref[0] if record_ref else None,
            "rm": record_ref[1] if record_ref else None,
            "ch": consent.channel,
            "st": consent.status,
            "s": consent.source,
            "at": consent.at,
            "lb": consent.legal_basis,
            "rcv": consent.received_at,
        }
        if history:
            await self.conn.execute(
                text(
                    "INSERT INTO consent_history (customer_id, channel, status, source, at, "
                    "legal_basis, recorded_at, stated_for, record_source, record_message_id) "
                    "VALUES (:c, :ch, :st, :s, :at, :lb, "
                    "coalesce(CAST(:rcv AS timestamptz), now()), :for, :rs, :rm)"
                ),
                params,
            )
        if current:
            await self.conn.execute(
                text(
                    """
                    INSERT INTO consents (customer_id, channel, status, source, at, legal_basis,
                        received_at)
                    VALUES (:c, :ch, :st, :s, :at, :lb, coalesce(CAST(:rcv AS timestamptz), now()))
                    ON CONFLICT (customer_id, channel) DO UPDATE SET status = excluded.status,
                        source = excluded.source, at = excluded.at,
                        legal_basis = excluded.legal_basis, received_at = excluded.received_at
                    """
                ),
                params,
            )

    async def replace_consents(
        self, customer_id: str, consents: list[Consent], drop: list[str]
    ) -> None:
        await self.conn.execute(
            text("DELETE FROM consents WHERE customer_id = ANY(CAST(:c AS uuid[]))"),
            {"c": [customer_id, *drop]},
        )
        await self.conn.execute(
            text(
                "UPDATE consent_history SET customer_id = :s "
                "WHERE customer_id = ANY(CAST(:m AS uuid[]))"
            ),
            {"s": customer_id, "m": drop},
        )
        for consent in consents:
            await self.record_consent(customer_id, consent, current=True, history=False)

    async def consent_history(self, customer_id: str) -> list[Consent]:
        """Every statement kept for the customer, in the order received."""
        rows = await self.conn.execute(
            text(
                "SELECT channel, status, source, at, legal_basis, recorded_at "
                "FROM consent_history WHERE customer_id = :c ORDER BY recorded_at, entry_pk"
            ),
            {"c": customer_id},
        )
        return [
            Consent(r.channel, r.status, r.source, r.at, r.legal_basis, r.recorded_at) for r in rows
        ]

    async def move_consent_statements(
        self, source: str, target: str, events: list[tuple[str, str]], stated_for: list[str]
    ) -> None:
        """Statements that came with moved events, or were made for ids that are the
        target's now, go to the target (a split)."""
        await self.conn.execute(
            text(
                """
                UPDATE consent_history SET customer_id = :t
                WHERE customer_id = :s AND (
                    stated_for = ANY(CAST(:ids AS uuid[]))
                    OR (record_source, record_message_id) IN (
                        SELECT x.s, x.m FROM jsonb_to_recordset(CAST(:refs AS jsonb))
                            AS x(s text, m text)))
                """
            ),
            {
                "s": source,
                "t": target,
                "ids": stated_for,
                "refs": json.dumps([{"s": s, "m": m} for s, m in events]),
            },
        )

    async def set_consents(self, customer_id: str, standing: list[Consent]) -> None:
        """The customer's standing consents are exactly these."""
        await self.conn.execute(
            text("DELETE FROM consents WHERE customer_id = :c"), {"c": customer_id}
        )
        for consent in standing:
            await self.record_consent(customer_id, consent, current=True, history=False)
