"""The only module that touches the ``segmentation`` schema.

Concurrency: a batch of changes locks its customers' ``customers`` rows, in customer order
(ROW EXCLUSIVE on the table);
a full recompute or a change of definitions takes SHARE ROW EXCLUSIVE on ``customers`` and
``rechecks`` for its transaction, so it sees no change half-applied and no change is evaluated
against definitions it is replacing. Every transaction that writes memberships also writes
their enter/exit events.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import operator
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql as pgsql
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from svod_runtime.custom_attributes import AttributeType
from svod_runtime.db import array_literal, direct_statement, dump_json, fetch_direct
from svod_segmentation.adapters import lookalike_storage
from svod_segmentation.adapters.rule_sql import Compiled, RuleCompiler, SqlBuilder, earliest_future
from svod_segmentation.domain import builtins
from svod_segmentation.domain.fields import NO_DECLARATIONS
from svod_segmentation.domain.lookalike import CustomerFeatures
from svod_segmentation.domain.model import (
    METRIC_FIELDS,
    CustomerEvent,
    CustomerSnapshot,
    Evaluation,
    EventColumns,
    Member,
    MembershipEvent,
    MembershipKind,
    MetricsSnapshot,
    Segment,
)
from svod_segmentation.domain.rules import (
    Rule,
    SegmentDefinition,
    rule_from_json,
    rule_to_json,
)

SNAPSHOT_COLUMNS = (
    "first_name",
    "last_name",
    "middle_name",
    "gender",
    "birth_date",
    "city",
    "region",
    "country_code",
    "postal_code",
    *METRIC_FIELDS,
    "sources",
    "identifier_types",
)
# Statements are built once per text; parsing a long text for its bind names costs more than
# running it.
_text = functools.lru_cache(maxsize=512)(text)
_direct = functools.lru_cache(maxsize=64)(direct_statement)
_BIND = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


# The batched forms: one statement for many customers / events, rows passed as one JSON
# array of arrays, each value read by its position and cast to its column's type. (Rows as
# JSON objects read with jsonb_populate_recordset cost 7.0-10.5 us of Postgres CPU an event
# row against 3.5-4.0 positional, inserted into a table without indexes; probe.)
# Metrics are versioned apart (metrics_version): a metrics change (events applied) carries
# them alone, and a whole profile older than the metrics held updates all but its metrics. The
# update time goes with the newest of the two.
_METRIC_COLUMNS = (*METRIC_FIELDS, "profile_updated_at")
_PROFILE_COLUMNS = tuple(c for c in SNAPSHOT_COLUMNS if c not in METRIC_FIELDS)
# Column types of what the batched statements read; text when not named. Arrays travel as
# Postgres array literals (svod_runtime.db.array_literal), JSON objects as themselves.
_TYPES = {
    "customer_id": "uuid",
    "profile_version": "bigint",
    "metrics_version": "bigint",
    "birth_date": "date",
    "order_count": "bigint",
    "total_spent": "numeric",
    "average_order_value": "numeric",
    "return_count": "bigint",
    "total_returned": "numeric",
    "first_order_at": "timestamptz",
    "last_order_at": "timestamptz",
    "last_contact_at": "timestamptz",
    "channels": "text[]",
    "items_bought": "bigint",
    "abandoned_cart_count": "bigint",
    "campaign_delivered_count": "bigint",
    "campaign_opened_count": "bigint",
    "campaign_clicked_count": "bigint",
    "session_count": "bigint",
    "support_ticket_count": "bigint",
    "last_support_ticket_at": "timestamptz",
    "loyalty_points_balance": "bigint",
    "sources": "text[]",
    "identifier_types": "text[]",
    "consents": "jsonb",
    "attributes": "jsonb",
    "profile_created_at": "timestamptz",
    "profile_updated_at": "timestamptz",
    "occurred_at": "timestamptz",
    "amount": "numeric",
    "discount": "numeric",
    "categories": "text[]",
    "properties": "jsonb",
}
_ARRAYS = frozenset(c for c, t in _TYPES.items() if t == "text[]")


def _positional_rows(columns: Sequence[str], rows_param: str = "rows") -> str:
    """``i``: the rows of a JSON array of arrays, each value as its column (see _TYPES)."""
    values = []
    for index, column in enumerate(columns):
        sql_type = _TYPES.get(column, "text")
        if sql_type == "jsonb":
            values.append(f"r -> {index} AS {column}")
        elif sql_type == "text":
            values.append(f"r ->> {index} AS {column}")
        else:
            values.append(f"CAST(r ->> {index} AS {sql_type}) AS {column}")
    return (
        f"(SELECT {', '.join(values)}, n FROM jsonb_array_elements(CAST(:{rows_param} AS jsonb)) "
        "WITH ORDINALITY AS x(r, n)) i"
    )


_UPSERT_ROW = (
    "customer_id",
    "profile_version",
    *SNAPSHOT_COLUMNS,
    "consents",
    "attributes",
    "profile_created_at",
    "profile_updated_at",
)
_METRICS_IF_NEWER = ", ".join(
    f"{c} = CASE WHEN customers.metrics_version < excluded.profile_version "
    f"THEN excluded.{c} ELSE customers.{c} END"
    for c in _METRIC_COLUMNS
)
_UPSERT_CUSTOMERS = f"""
INSERT INTO customers (customer_id, profile_version, metrics_version,
    {", ".join(SNAPSHOT_COLUMNS)}, consents, attributes, profile_created_at, profile_updated_at,
    applied_at)
SELECT i.customer_id, i.profile_version, i.profile_version,
    {", ".join(f"i.{c}" for c in SNAPSHOT_COLUMNS)},
    i.consents, i.attributes, i.profile_created_at, i.profile_updated_at, now()
FROM {_positional_rows(_UPSERT_ROW)}
WHERE NOT EXISTS (SELECT 1 FROM erased_customers x WHERE x.customer_id = i.customer_id)
ORDER BY i.customer_id
ON CONFLICT (customer_id) DO UPDATE SET
    profile_version = excluded.profile_version,
    {", ".join(f"{c} = excluded.{c}" for c in _PROFILE_COLUMNS)},
    {_METRICS_IF_NEWER},
    metrics_version = greatest(customers.metrics_version, excluded.profile_version),
    consents = excluded.consents, attributes = excluded.attributes,
    profile_created_at = excluded.profile_created_at, applied_at = now()
WHERE customers.profile_version < excluded.profile_version AND customers.merged_into IS NULL
RETURNING customer_id
"""
# Metrics changes: the metric columns of customers whose metrics held are older; a customer not
# seen before is stored with its metrics alone (profile_version 0: any whole profile is newer).
_METRICS_ROW = ("customer_id", "metrics_version", *_METRIC_COLUMNS, "profile_created_at")
_UPDATE_METRICS = f"""
INSERT INTO customers (customer_id, metrics_version, {", ".join(_METRIC_COLUMNS)},
    profile_created_at, applied_at)
SELECT i.customer_id, i.metrics_version, {", ".join(f"i.{c}" for c in _METRIC_COLUMNS)},
    i.profile_created_at, now()
FROM {_positional_rows(_METRICS_ROW)}
WHERE NOT EXISTS (SELECT 1 FROM erased_customers x WHERE x.customer_id = i.customer_id)
ORDER BY i.customer_id
ON CONFLICT (customer_id) DO UPDATE SET
    metrics_version = excluded.metrics_version,
    {", ".join(f"{c} = excluded.{c}" for c in _METRIC_COLUMNS)},
    profile_created_at = coalesce(customers.profile_created_at, excluded.profile_created_at),
    applied_at = now()
WHERE customers.metrics_version < excluded.metrics_version AND customers.merged_into IS NULL
RETURNING customer_id
"""

_CUSTOMER_STATES = """
WITH locked AS (
    SELECT customer_id, merged_into FROM customers
    WHERE customer_id = ANY(CAST(:ids AS uuid[])) ORDER BY customer_id FOR UPDATE
)
SELECT u.id AS customer_id, l.customer_id IS NOT NULL AS present, l.merged_into,
    EXISTS (SELECT 1 FROM erased_customers x WHERE x.customer_id = u.id) AS erased
FROM unnest(CAST(:ids AS uuid[])) AS u(id) LEFT JOIN locked l ON l.customer_id = u.id
"""

_EVENT_ROW = (
    "source",
    "message_id",
    "customer_id",
    "event_type",
    "occurred_at",
    "amount",
    "discount",
    "categories",
    "channel",
    "properties",
    "reference_id",
    "order_id",
)
_INSERT_EVENTS = f"""
INSERT INTO events ({", ".join(_EVENT_ROW)})
SELECT {", ".join(f"i.{c}" for c in _EVENT_ROW)}
FROM {_positional_rows(_EVENT_ROW)}
ORDER BY i.n
ON CONFLICT (source, message_id) DO NOTHING
"""
# Events in columns (domain.model.EventColumns with the customer of each event as a third
# column): one JSON array per column, zipped by ROWS FROM, each value cast to its column's type
# (the time from microseconds, exactly: whole seconds, then the microseconds). Nothing is
# made per event in Python: an event's CustomerEvent, its row and the row's JSON (decimals
# and times through a default hook) were most of segmentation's CPU for each imported event
# (docs/performance.md, "Announcing events in columns").
_INSERT_EVENT_COLUMNS = """
INSERT INTO events (source, message_id, customer_id, event_type, occurred_at, channel, amount,
    discount, categories, properties, reference_id, order_id)
SELECT x.s, x.m, CAST(x.c AS uuid), x.t,
    to_timestamp(CAST(x.us AS bigint) / 1000000)
        + CAST(x.us AS bigint) % 1000000 * interval '1 microsecond',
    x.ch, CAST(nullif(x.a, '') AS numeric), CAST(nullif(x.d, '') AS numeric),
    CAST(CASE WHEN x.cat = '' THEN '{}' ELSE x.cat END AS text[]),
    CASE WHEN x.p = '' THEN CAST('{}' AS jsonb) ELSE CAST(x.p AS jsonb) END, x.ref, x.o
FROM (SELECT CAST(:cols AS jsonb) AS j) AS doc, ROWS FROM (
    jsonb_array_elements_text(doc.j -> 0), jsonb_array_elements_text(doc.j -> 1),
    jsonb_array_elements_text(doc.j -> 2), jsonb_array_elements_text(doc.j -> 3),
    jsonb_array_elements_text(doc.j -> 4), jsonb_array_elements_text(doc.j -> 5),
    jsonb_array_elements_text(doc.j -> 6), jsonb_array_elements_text(doc.j -> 7),
    jsonb_array_elements_text(doc.j -> 8), jsonb_array_elements_text(doc.j -> 9),
    jsonb_array_elements_text(doc.j -> 10), jsonb_array_elements_text(doc.j -> 11)
) WITH ORDINALITY AS x(s, m, c, t, us, ch, a, d, cat, p, ref, o, n)
ORDER BY x.n
ON CONFLICT (source, message_id) DO NOTHING
"""
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def event_columns_of(events: Sequence[CustomerEvent]) -> EventColumns:
    """CustomerEvents (an announcement's new_events) in columns, as _INSERT_EVENT_COLUMNS
    stores them: the same values the rows of _INSERT_EVENTS carry."""
    return EventColumns(
        [e.source for e in events],
        [e.message_id for e in events],
        [e.event_type for e in events],
        [(e.occurred_at - _EPOCH) // _MICROSECOND for e in events],
        [e.channel for e in events],
        ["" if e.amount is None else str(e.amount) for e in events],
        ["" if e.discount is None else str(e.discount) for e in events],
        [array_literal(e.categories) if e.categories else "" for e in events],
        [dump_json(e.properties) if e.properties else "" for e in events],
        [e.reference_id for e in events],
        [e.order_id for e in events],
    )


# Events that change hands (a split): stored under their new customer, whether seen or not.
_MOVE_EVENTS = _INSERT_EVENTS.replace(
    "DO NOTHING", "DO UPDATE SET customer_id = excluded.customer_id"
)


# The feed, in the order transactions committed (segmentation_0010: a transaction that wrote
# membership events is numbered, feed_commits.seq, under a lock held until it commits, so no
# reader sees a number before a smaller one). A position names the last event read, "txid.
# event_id" as tokens always did; its transaction's number is looked up. A position whose
# transaction wrote no events (a token of before, given at the start of a watch; "0.0") is
# after the transaction below it in txid order: the order transactions of before were numbered
# in (and any newer one has a larger txid). Read transaction by transaction in that order,
# each one's events through the (txid, event_id) index from where the position is: a batch
# costs its events, not the transaction's events before the position.
_FEED_POSITION = """
WITH held AS MATERIALIZED (
    SELECT seq FROM feed_commits WHERE txid = CAST(:t AS xid8)
), p AS MATERIALIZED (
    SELECT coalesce(
            (SELECT seq FROM held),
            (SELECT seq FROM feed_commits WHERE txid < CAST(:t AS xid8) AND seq IS NOT NULL
             ORDER BY txid DESC LIMIT 1),
            0) AS seq,
        CASE WHEN EXISTS (SELECT 1 FROM held) THEN CAST(:e AS bigint)
            ELSE 9223372036854775807 END AS e
)
"""


def _json_value(value: Any) -> Any:
    """JSON form of what json does not know (dates and times, decimals)."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON: {value!r}")


# A snapshot's and a metrics change's values in their rows' order (_UPSERT_ROW, _METRICS_ROW),
# read in one call each: a getattr per column in a generator was 6% of the process's py-spy
# samples with metrics changes of one event each.
_snapshot_values = operator.attrgetter(
    "customer_id",
    "profile_version",
    *SNAPSHOT_COLUMNS,
    "consents",
    "attributes",
    "created_at",
    "updated_at",
)
_metrics_values = operator.attrgetter(
    "customer_id", "profile_version", *METRIC_FIELDS, "updated_at", "created_at"
)
_SNAPSHOT_ARRAYS = tuple(i for i, c in enumerate(_UPSERT_ROW) if c in _ARRAYS)
_METRICS_ARRAYS = tuple(i for i, c in enumerate(_METRICS_ROW) if c in _ARRAYS)


def _positional(values: tuple[Any, ...], arrays: tuple[int, ...]) -> list[Any]:
    """A row's values with its arrays as array literals."""
    row = list(values)
    for index in arrays:
        row[index] = array_literal(row[index])
    return row


def _event_row(customer_id: str, e: CustomerEvent) -> tuple[Any, ...]:
    """An event as a row of _INSERT_EVENTS (in _EVENT_ROW's order)."""
    return (
        e.source,
        e.message_id,
        customer_id,
        e.event_type,
        e.occurred_at,
        e.amount,
        e.discount,
        array_literal(e.categories) if e.categories else "{}",
        e.channel,
        e.properties,
        e.reference_id,
        e.order_id,
    )


# Rows as JSON arrays: [segment, customer] / [segment, customer, label] /
# [segment, customer, kind, label].
_WRITE_DIFF = """
WITH gone AS (
    DELETE FROM memberships m
    USING jsonb_array_elements(CAST(:del AS jsonb)) AS d(r)
    WHERE m.segment_id = d.r ->> 0 AND m.customer_id = CAST(d.r ->> 1 AS uuid)
), kept AS (
    INSERT INTO memberships (segment_id, customer_id, label, entered_at)
    SELECT p.r ->> 0, CAST(p.r ->> 1 AS uuid), p.r ->> 2, :now
    FROM jsonb_array_elements(CAST(:put AS jsonb)) AS p(r)
    ON CONFLICT (segment_id, customer_id) DO UPDATE
        SET label = excluded.label, entered_at = excluded.entered_at
)
INSERT INTO membership_events (segment_id, customer_id, kind, label, at)
SELECT x.r ->> 0, CAST(x.r ->> 1 AS uuid), x.r ->> 2, x.r ->> 3, :now
FROM jsonb_array_elements(CAST(:ev AS jsonb)) WITH ORDINALITY AS x(r, n)
ORDER BY x.n
"""

_SET_RECHECKS = """
WITH cleared AS (
    DELETE FROM rechecks WHERE customer_id = ANY(CAST(:clear AS uuid[]))
        AND NOT customer_id = ANY(CAST(:set_c AS uuid[]))
)
INSERT INTO rechecks (customer_id, due_at)
SELECT c, d FROM unnest(CAST(:set_c AS uuid[]), CAST(:set_d AS timestamptz[])) AS r(c, d)
ON CONFLICT (customer_id) DO UPDATE SET due_at = excluded.due_at
"""

_DIFF_CTE = """
old AS (SELECT customer_id, label FROM memberships WHERE segment_id = :seg),
diff AS MATERIALIZED (
    SELECT coalesce(t.customer_id, o.customer_id) AS customer_id,
        o.customer_id IS NOT NULL AS was_in, t.customer_id IS NOT NULL AS is_in,
        o.label AS old_label, t.label AS new_label
    FROM target t FULL JOIN old o ON o.customer_id = t.customer_id
    WHERE t.customer_id IS NULL OR o.customer_id IS NULL OR t.label IS DISTINCT FROM o.label
),
gone AS (
    DELETE FROM memberships m USING diff d
    WHERE m.segment_id = :seg AND m.customer_id = d.customer_id AND NOT d.is_in
),
kept AS (
    INSERT INTO memberships (segment_id, customer_id, label, entered_at)
    SELECT :seg, customer_id, new_label, :now FROM diff WHERE is_in
    ON CONFLICT (segment_id, customer_id) DO UPDATE
        SET label = excluded.label, entered_at = excluded.entered_at
),
logged AS (
    INSERT INTO membership_events (segment_id, customer_id, kind, label, at)
    SELECT :seg, customer_id, kind, label, :now FROM (
        SELECT customer_id, 'exited' AS kind, old_label AS label, 0 AS o FROM diff WHERE was_in
        UNION ALL
        SELECT customer_id, 'entered', new_label, 1 FROM diff WHERE is_in
    ) x ORDER BY customer_id, o
)
"""


def _segment_row(row: Any) -> Segment:
    return Segment(
        definition=SegmentDefinition(
            segment_id=row.segment_id,
            rule=None if row.rule is None else rule_from_json(row.rule),
            builtin=row.builtin,
            parameters=dict(row.parameters or {}),
        ),
        display_name=row.display_name,
        description=row.description,
        version=int(row.version),
        updated_at=row.updated_at,
        state=dict(row.state or {}),
    )


class StatementCache:
    """The incremental statement compiled for the current generation of definitions (one per
    store: compiling a segment set costs more than evaluating a change against it)."""

    def __init__(self) -> None:
        self.statement: IncrementalStatement | None = None


class SegmentationTransaction:
    def __init__(
        self,
        conn: AsyncConnection,
        declared: Mapping[str, AttributeType] = NO_DECLARATIONS,
        compiled: StatementCache | None = None,
    ) -> None:
        self.conn = conn
        # Declared custom attributes' types: rules compare them by type.
        self.declared = declared
        self.compiled = compiled if compiled is not None else StatementCache()

    async def _exec(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        return await self.conn.execute(_text(sql), dict(params or {}))

    async def _fetch(self, sql: str, params: Mapping[str, Any]) -> list[Any]:
        """``_exec`` past SQLAlchemy's execution layer (rows as named tuples), for the
        statements every batch of profile changes runs: through SQLAlchemy each cost more
        Python than its rows (its execute path was 5-6% of the process's py-spy samples while
        events streamed in, issue #20)."""
        return await fetch_direct(self.conn, _direct(sql), params)

    # -- definitions ---------------------------------------------------------------------
    async def generation(self) -> int:
        return int((await self._exec("SELECT generation FROM registry")).scalar_one())

    async def generation_direct(self) -> int:
        """``generation``, past SQLAlchemy (read for every batch of changes when no segment
        is defined)."""
        return int((await self._fetch("SELECT generation FROM registry", {}))[0].generation)

    async def bump_generation(self) -> None:
        await self._exec("UPDATE registry SET generation = generation + 1")

    async def load_segments(self) -> dict[str, Segment]:
        rows = await self._exec(
            "SELECT segment_id, display_name, description, rule, builtin, parameters, state, "
            "version, updated_at FROM segments ORDER BY segment_id"
        )
        return {row.segment_id: _segment_row(row) for row in rows}

    async def bulk_settings(self) -> None:
        """For statements over every customer, until the transaction ends: no JIT (compiling
        the long expressions of a segment set costs seconds, several times their run) and
        room to hash the diffs in memory."""
        await self._exec("SET LOCAL jit = off")
        await self._exec("SET LOCAL work_mem = '64MB'")

    async def lock_for_recompute(self) -> None:
        """Waits for changes in flight and holds new ones until this transaction ends."""
        await self._exec("LOCK TABLE customers, rechecks IN SHARE ROW EXCLUSIVE MODE")

    async def lock_segment(self, segment_id: str) -> Segment | None:
        rows = await self._exec(
            "SELECT segment_id, display_name, description, rule, builtin, parameters, state, "
            "version, updated_at FROM segments WHERE segment_id = :s FOR UPDATE",
            {"s": segment_id},
        )
        row = rows.first()
        return None if row is None else _segment_row(row)

    async def save_segment(self, segment: Segment, *, create: bool, actor: str = "") -> Segment:
        d = segment.definition
        params = {
            "s": d.segment_id,
            "n": segment.display_name,
            "ds": segment.description,
            "r": None if d.rule is None else json.dumps(rule_to_json(d.rule)),
            "b": d.builtin,
            "p": json.dumps(d.parameters),
        }
        if create:
            row = (
                await self._exec(
                    """
                    INSERT INTO segments (segment_id, display_name, description, rule, builtin,
                        parameters, version)
                    VALUES (:s, :n, :ds, CAST(:r AS jsonb), :b, CAST(:p AS jsonb), 1)
                    ON CONFLICT (segment_id) DO NOTHING
                    RETURNING version, updated_at
                    """,
                    params,
                )
            ).first()
            if row is None:
                raise KeyError(d.segment_id)
        else:
            row = (
                await self._exec(
                    """
                    UPDATE segments SET display_name = :n, description = :ds,
                        rule = CAST(:r AS jsonb), builtin = :b, parameters = CAST(:p AS jsonb),
                        version = version + 1, updated_at = now(),
                        state = CASE WHEN builtin = :b THEN state ELSE '{}' END
                    WHERE segment_id = :s RETURNING version, updated_at
                    """,
                    params,
                )
            ).one()
        await self._exec(
            """
            INSERT INTO segment_versions (segment_id, version, display_name, description, rule,
                builtin, parameters, actor)
            VALUES (:s, :v, :n, :ds, CAST(:r AS jsonb), :b, CAST(:p AS jsonb), :actor)
            """,
            {**params, "v": row.version, "actor": actor},
        )
        await self.bump_generation()
        return Segment(
            definition=d,
            display_name=segment.display_name,
            description=segment.description,
            version=int(row.version),
            updated_at=row.updated_at,
        )

    async def save_state(self, segment_id: str, state: dict[str, object]) -> None:
        await self._exec(
            "UPDATE segments SET state = CAST(:st AS jsonb) WHERE segment_id = :s",
            {"s": segment_id, "st": json.dumps(state)},
        )

    async def delete_segment(self, segment_id: str, now: dt.datetime, actor: str = "") -> int:
        """Ends every membership with an exit event; returns how many ended. The deletion is
        kept as a last version naming who deleted it."""
        row = (
            await self._exec(
                """
                WITH gone AS (
                    DELETE FROM memberships WHERE segment_id = :s
                    RETURNING customer_id, label
                ), logged AS (
                    INSERT INTO membership_events (segment_id, customer_id, kind, label, at)
                    SELECT :s, customer_id, 'exited', label, :now FROM gone
                    ORDER BY customer_id
                )
                SELECT count(*) FROM gone
                """,
                {"s": segment_id, "now": now},
            )
        ).scalar_one()
        await self._exec(
            """
            INSERT INTO segment_versions (segment_id, version, display_name, description,
                builtin, actor, deleted)
            SELECT segment_id, version + 1, display_name, description, builtin, :actor, true
            FROM segments WHERE segment_id = :s
            """,
            {"s": segment_id, "actor": actor},
        )
        await self._exec("DELETE FROM segments WHERE segment_id = :s", {"s": segment_id})
        await self.bump_generation()
        return int(row)

    async def member_counts(self, segment_ids: Sequence[str]) -> dict[str, int]:
        rows = await self._exec(
            "SELECT segment_id, count(*) AS n FROM memberships "
            "WHERE segment_id = ANY(CAST(:s AS text[])) GROUP BY segment_id",
            {"s": list(segment_ids)},
        )
        return {row.segment_id: int(row.n) for row in rows}

    # -- full recompute ----------------------------------------------------------------------
    async def builtin_state(
        self, segment: Segment, segments: Mapping[str, Segment], now: dt.datetime
    ) -> dict[str, object]:
        """Cut-offs of an RFM or ABC built-in over its population, computed in SQL."""
        builder = SqlBuilder()
        compiler = RuleCompiler(segments, builder, self.declared)
        population = compiler.population(segment, [])
        join = builder.aggregate_join()
        params = {**builder.params, "now": now}
        base = f"FROM customers c {join} WHERE c.merged_into IS NULL AND {population}"
        if segment.definition.builtin == builtins.Builtin.RFM:
            quintiles = "ARRAY[0.2, 0.4, 0.6, 0.8]"
            row = (
                await self._exec(
                    f"""
                    SELECT percentile_cont({quintiles}) WITHIN GROUP
                            (ORDER BY extract(epoch FROM (:now - c.last_order_at))) AS r,
                        percentile_cont({quintiles}) WITHIN GROUP
                            (ORDER BY CAST(c.order_count AS float8)) AS f,
                        percentile_cont({quintiles}) WITHIN GROUP
                            (ORDER BY CAST(c.total_spent AS float8)) AS m,
                        count(*) AS n
                    {base} AND c.order_count > 0 AND c.last_order_at IS NOT NULL
                    """,
                    params,
                )
            ).one()
            if not row.n:
                return {"customers": 0}
            return builtins.rfm_state(now, row.r, row.f, row.m, int(row.n))
        a_share = float(segment.definition.parameters.get("a_share") or 0.8)
        b_share = float(segment.definition.parameters.get("b_share") or 0.15)
        row = (
            await self._exec(
                f"""
                WITH ranked AS (
                    SELECT c.total_spent AS spent,
                        sum(c.total_spent) OVER (ORDER BY c.total_spent DESC, c.customer_id
                            ROWS UNBOUNDED PRECEDING) - c.total_spent AS before,
                        sum(c.total_spent) OVER () AS total
                    {base} AND c.total_spent > 0
                )
                SELECT min(spent) FILTER (WHERE before < :a * total) AS a_min,
                    min(spent) FILTER (WHERE before < :ab * total) AS b_min,
                    max(total) AS total, count(*) AS n
                FROM ranked
                """,
                {**params, "a": a_share, "ab": a_share + b_share},
            )
        ).one()
        if not row.n:
            return {"customers": 0}
        return {
            "a_min": str(row.a_min),
            "b_min": str(row.b_min),
            "revenue": str(row.total),
            "customers": int(row.n),
        }

    async def recompute_many(
        self,
        segment_ids: Sequence[str],
        segments: Mapping[str, Segment],
        now: dt.datetime,
        per_segment: dict[str, tuple[int, int]] | None = None,
    ) -> tuple[int, int]:
        """Recomputes several segments with one pass over customers and events.

        Every segment's predicate and label is evaluated for every customer by one statement
        (one shared aggregate of the events) into a scratch table dropped at commit; then each
        segment's members are diffed against it, in the order given, writing only the changes.
        Recheck times are written only where they move earlier. Returns (entered, exited);
        ``per_segment`` receives each segment's own (entered, exited).
        """
        if not segment_ids:
            return 0, 0
        builder = SqlBuilder()
        compiler = RuleCompiler(segments, builder, self.declared)
        compiled = [compiler.segment(s) for s in segment_ids]
        join = builder.aggregate_join()
        columns: list[str] = []
        due: list[str] = []
        for index, c in enumerate(compiled):
            columns.append(f"{c.predicate} AS s{index}")
            columns.append(f"{c.label or 'CAST(NULL AS text)'} AS l{index}")
            due.extend(c.due)
        params = {**builder.params, "now": now}
        await self.bulk_settings()
        await self._exec("DROP TABLE IF EXISTS pg_temp.recompute_eval")
        await self._exec(
            f"""
            CREATE TEMP TABLE recompute_eval ON COMMIT DROP AS
            SELECT c.customer_id, {earliest_future(due)} AS due, {", ".join(columns)}
            FROM customers c {join} WHERE c.merged_into IS NULL
            """,
            params,
        )
        if due:
            await self._exec(
                """
                INSERT INTO rechecks (customer_id, due_at)
                SELECT e.customer_id, e.due FROM pg_temp.recompute_eval e
                LEFT JOIN rechecks r ON r.customer_id = e.customer_id
                WHERE e.due IS NOT NULL AND (r.due_at IS NULL OR r.due_at > e.due)
                ON CONFLICT (customer_id) DO UPDATE SET due_at = excluded.due_at
                WHERE rechecks.due_at > excluded.due_at
                """
            )
        entered = exited = 0
        for index, segment_id in enumerate(segment_ids):
            row = (
                await self._exec(
                    f"""
                    WITH target AS (
                        SELECT customer_id, l{index} AS label FROM pg_temp.recompute_eval
                        WHERE s{index}
                    ),
                    {_DIFF_CTE}
                    SELECT count(*) FILTER (WHERE is_in AND NOT was_in) AS entered,
                        count(*) FILTER (WHERE was_in AND NOT is_in) AS exited
                    FROM diff
                    """,
                    {"now": now, "seg": segment_id},
                )
            ).one()
            entered, exited = entered + int(row.entered), exited + int(row.exited)
            if per_segment is not None:
                per_segment[segment_id] = (int(row.entered), int(row.exited))
        await self._exec("DROP TABLE pg_temp.recompute_eval")
        return entered, exited

    async def preview(
        self,
        rule: Rule,
        segments: Mapping[str, Segment],
        now: dt.datetime,
        sample: int,
        within: Sequence[str] | None = None,
    ) -> tuple[int, list[str]]:
        """Count and sample of the customers the rule selects; ``within``: only members of
        these segments (a principal limited to them)."""
        builder = SqlBuilder()
        predicate = RuleCompiler(segments, builder, self.declared).rule(rule, [])
        join = builder.aggregate_join()
        members_only = ""
        if within is not None:
            members_only = (
                "AND EXISTS (SELECT 1 FROM memberships m WHERE m.customer_id = c.customer_id "
                "AND m.segment_id = ANY(CAST(:within AS text[])))"
            )
        row = (
            await self._exec(
                f"""
                WITH t AS MATERIALIZED (
                    SELECT c.customer_id FROM customers c {join}
                    WHERE c.merged_into IS NULL AND {predicate} {members_only}
                )
                SELECT (SELECT count(*) FROM t) AS n,
                    ARRAY(SELECT CAST(customer_id AS text) FROM t ORDER BY customer_id
                          LIMIT :sample) AS sample
                """,
                {**builder.params, "now": now, "sample": sample, "within": list(within or ())},
            )
        ).one()
        return int(row.n), list(row.sample)

    # -- incremental ---------------------------------------------------------------------
    async def upsert_customers(self, snapshots: Sequence[CustomerSnapshot]) -> set[str]:
        """Stores the newer profiles (one per customer); returns the customers stored."""
        if not snapshots:
            return set()
        rows = [_positional(_snapshot_values(s), _SNAPSHOT_ARRAYS) for s in snapshots]
        result = await self._fetch(_UPSERT_CUSTOMERS, {"rows": dump_json(rows, _json_value)})
        return {str(r.customer_id) for r in result}

    async def update_metrics(self, changes: Sequence[MetricsSnapshot]) -> set[str]:
        """Stores the newer metrics (one change per customer); returns the customers stored."""
        if not changes:
            return set()
        rows = [_positional(_metrics_values(c), _METRICS_ARRAYS) for c in changes]
        result = await self._fetch(_UPDATE_METRICS, {"rows": dump_json(rows, _json_value)})
        return {str(r.customer_id) for r in result}

    async def customer_states(
        self, customer_ids: Sequence[str]
    ) -> dict[str, tuple[bool, str | None, bool]]:
        """(exists, merged into, erased) of each customer, locking the rows."""
        if not customer_ids:
            return {}
        rows = await self._fetch(_CUSTOMER_STATES, {"ids": list(customer_ids)})
        return {
            str(r.customer_id): (
                bool(r.present),
                None if r.merged_into is None else str(r.merged_into),
                bool(r.erased),
            )
            for r in rows
        }

    async def ensure_customers(self, customer_ids: Sequence[str]) -> None:
        if not customer_ids:
            return
        await self._exec(
            "INSERT INTO customers (customer_id) "
            "SELECT c FROM unnest(CAST(:c AS uuid[])) AS u(c) ORDER BY c "
            "ON CONFLICT (customer_id) DO UPDATE SET customer_id = excluded.customer_id",
            {"c": sorted(set(customer_ids))},
        )

    async def add_events_many(
        self, events: Sequence[tuple[str, Sequence[CustomerEvent] | EventColumns]]
    ) -> None:
        """Stores (customer, its events) pairs in one statement, in the order given,
        idempotent by each event's record (the first of a record stored wins)."""
        columns: list[list[Any]] = [[] for _ in range(12)]
        for customer_id, given in events:
            part = given if isinstance(given, EventColumns) else event_columns_of(given)
            if not len(part):
                continue
            source, message_id, *rest = part.columns()
            columns[0].extend(source)
            columns[1].extend(message_id)
            columns[2].extend([customer_id] * len(part))
            for column, values in zip(columns[3:], rest, strict=True):
                column.extend(values)
        if columns[0]:
            await self._fetch(_INSERT_EVENT_COLUMNS, {"cols": dump_json(columns)})

    async def move_events(self, customer_id: str, events: Sequence[CustomerEvent]) -> None:
        """The events belong to this customer now (recorded here when not seen before)."""
        if not events:
            return
        # One row per event: an upsert may not touch a row twice.
        unique = {(e.source, e.message_id): e for e in events}
        rows = [_event_row(customer_id, e) for e in unique.values()]
        await self._exec(_MOVE_EVENTS, {"rows": dump_json(rows, _json_value)})

    async def unmerge(self, customer_ids: Sequence[str]) -> None:
        """These customers are customers of their own again (records were split into them)."""
        if customer_ids:
            await self._exec(
                "UPDATE customers SET merged_into = NULL "
                "WHERE customer_id = ANY(CAST(:c AS uuid[])) AND merged_into IS NOT NULL",
                {"c": sorted(set(customer_ids))},
            )

    async def ensure_customer(self, customer_id: str) -> None:
        await self._exec(
            "INSERT INTO customers (customer_id) VALUES (:c) "
            "ON CONFLICT (customer_id) DO UPDATE SET customer_id = excluded.customer_id",
            {"c": customer_id},
        )

    async def merge(self, survivor: str, merged: Sequence[str]) -> None:
        """Marks the merged customers and moves their events to the survivor."""
        params = {"s": survivor, "m": list(merged)}
        for sql in (
            "INSERT INTO customers (customer_id, merged_into) "
            "SELECT unnest(CAST(:m AS uuid[])), :s "
            "ON CONFLICT (customer_id) DO UPDATE SET merged_into = excluded.merged_into",
            "UPDATE customers SET merged_into = :s WHERE merged_into = ANY(CAST(:m AS uuid[]))",
            "UPDATE events SET customer_id = :s WHERE customer_id = ANY(CAST(:m AS uuid[]))",
            "DELETE FROM rechecks WHERE customer_id = ANY(CAST(:m AS uuid[]))",
        ):
            await self._exec(sql, params)

    async def evaluate(
        self, customer_ids: Sequence[str], statement: IncrementalStatement, now: dt.datetime
    ) -> list[Evaluation]:
        raw = await self.conn.get_raw_connection()
        driver: psycopg.AsyncConnection = raw.driver_connection  # type: ignore[assignment]
        async with psycopg.AsyncRawCursor(driver) as cursor:
            await cursor.execute(statement.sql, [list(customer_ids), now], prepare=True)
            names = [d.name for d in cursor.description or ()]
            rows = [_Row(dict(zip(names, v, strict=True))) for v in await cursor.fetchall()]
        out = []
        for row in rows:
            now_in: dict[str, str] = {}
            if row.live:
                for index, segment_id in enumerate(statement.segment_ids):
                    if getattr(row, f"s{index}"):
                        label = getattr(row, f"l{index}") if statement.labelled[index] else ""
                        now_in[segment_id] = label or ""
            out.append(
                Evaluation(
                    customer_id=str(row.customer_id),
                    now_in=now_in,
                    was_in=dict(row.current or {}),
                    due=row.due if row.live else None,
                    generation=int(row.generation),
                    recheck_due=row.recheck_due,
                )
            )
        return out

    async def _statement(self) -> IncrementalStatement:
        if self.compiled.statement is None:
            segments = await self.load_segments()
            self.compiled.statement = incremental_statement(
                await self.generation(), segments, self.declared
            )
        return self.compiled.statement

    async def evaluate_current(
        self, customer_ids: Sequence[str], now: dt.datetime
    ) -> list[Evaluation]:
        """The customers against the current definitions: the statement compiled for them is
        kept, and compiled again when another process changed the definitions since."""
        statement = await self._statement()
        if not statement.segment_ids:
            # No segments: nobody can be in one (deleting a segment ends its memberships), so
            # only the definitions' generation is read, where the statement would read it.
            # Evaluating a change with none took 7 us of Postgres time a customer (pg_stat_
            # statements) besides this process' work on the rows.
            generation = await self.generation_direct()
            if generation == statement.generation:
                return [Evaluation(c, {}, {}, None, generation) for c in customer_ids]
            self.compiled.statement = None
            statement = await self._statement()
        evaluations = await self.evaluate(customer_ids, statement, now)
        if evaluations and evaluations[0].generation != statement.generation:
            self.compiled.statement = None
            statement = await self._statement()
            evaluations = await self.evaluate(customer_ids, statement, now)
        return evaluations

    async def write_changes(
        self,
        removed: list[tuple[str, str]],
        put: list[tuple[str, str, str]],
        events: list[tuple[str, str, MembershipKind, str]],
        now: dt.datetime,
    ) -> None:
        """Memberships to remove (segment, customer) and to put (segment, customer, label),
        with their events (segment, customer, kind, label) in order."""
        if not events:
            return
        await self._fetch(
            _WRITE_DIFF,
            {
                "del": json.dumps(removed),
                "put": json.dumps([(s, c, label or None) for s, c, label in put]),
                "ev": json.dumps([(s, c, k, label or None) for s, c, k, label in events]),
                "now": now,
            },
        )

    async def set_rechecks(self, due: dict[str, dt.datetime | None]) -> None:
        """Replaces the customers' recheck times (None: no time condition pending)."""
        if not due:
            return
        await self._exec(
            _SET_RECHECKS,
            {
                "clear": [c for c, d in due.items() if d is None],
                "set_c": [c for c, d in due.items() if d is not None],
                "set_d": [d for d in due.values() if d is not None],
            },
        )

    async def claim_due(self, now: dt.datetime, limit: int) -> list[str]:
        """Customers whose time conditions may have flipped, locked for this transaction."""
        due = await self._exec(
            "SELECT customer_id FROM rechecks WHERE due_at <= :now ORDER BY due_at LIMIT :n",
            {"now": now, "n": limit},
        )
        ids = [str(r.customer_id) for r in due]
        if not ids:
            return []
        locked = await self._exec(
            "SELECT customer_id FROM customers WHERE customer_id = ANY(CAST(:ids AS uuid[])) "
            "ORDER BY customer_id FOR UPDATE SKIP LOCKED",
            {"ids": ids},
        )
        mine = [str(r.customer_id) for r in locked]
        await self._exec(
            "DELETE FROM rechecks WHERE customer_id = ANY(CAST(:ids AS uuid[])) AND due_at <= :now",
            {"ids": mine, "now": now},
        )
        return mine

    # -- look-alikes -----------------------------------------------------------------------
    async def segment_members(self, segment_id: str) -> list[str]:
        return await lookalike_storage.segment_members(self.conn, segment_id)

    async def load_features(
        self, now: dt.datetime, population: Sequence[str] | None
    ) -> list[CustomerFeatures]:
        return await lookalike_storage.load_features(self.conn, now, population)

    async def replace_scores(self, segment_id: str, chosen: Sequence[tuple[str, float]]) -> None:
        await lookalike_storage.replace_scores(self.conn, segment_id, chosen)

    async def drop_scores(self, segment_id: str) -> None:
        await lookalike_storage.drop_scores(self.conn, segment_id)

    # -- reads ---------------------------------------------------------------------------
    async def members(self, segment_id: str, after: str, limit: int) -> list[Member]:
        rows = await self._exec(
            "SELECT customer_id, label, entered_at FROM memberships "
            "WHERE segment_id = :s AND customer_id > CAST(:after AS uuid) "
            "ORDER BY customer_id LIMIT :n",
            {"s": segment_id, "after": after or "00000000-0000-0000-0000-000000000000", "n": limit},
        )
        return [Member(str(r.customer_id), r.entered_at, r.label or "", segment_id) for r in rows]

    async def members_with_consent(
        self, segment_id: str, channel: str, after: str, limit: int
    ) -> list[Member]:
        rows = await self._exec(
            """
            SELECT m.customer_id, m.label, m.entered_at FROM memberships m
            JOIN customers c ON c.customer_id = m.customer_id
            WHERE m.segment_id = :s AND m.customer_id > CAST(:after AS uuid)
              AND c.merged_into IS NULL AND c.consents ->> :ch = 'opted_in'
            ORDER BY m.customer_id LIMIT :n
            """,
            {
                "s": segment_id,
                "ch": channel,
                "n": limit,
                "after": after or "00000000-0000-0000-0000-000000000000",
            },
        )
        return [Member(str(r.customer_id), r.entered_at, r.label or "", segment_id) for r in rows]

    async def rfm_inputs(
        self, customer_ids: Sequence[str]
    ) -> dict[str, tuple[dt.datetime | None, int, Decimal]]:
        """(last order time, order count, total spent) of each customer, as RFM scores them."""
        if not customer_ids:
            return {}
        rows = await self._exec(
            "SELECT customer_id, last_order_at, order_count, total_spent FROM customers "
            "WHERE customer_id = ANY(CAST(:ids AS uuid[]))",
            {"ids": list(customer_ids)},
        )
        return {
            str(r.customer_id): (r.last_order_at, int(r.order_count), Decimal(r.total_spent))
            for r in rows
        }

    async def customer_memberships(self, customer_id: str) -> list[Member]:
        rows = await self._exec(
            "SELECT segment_id, label, entered_at FROM memberships WHERE customer_id = :c "
            "ORDER BY segment_id",
            {"c": customer_id},
        )
        return [Member(customer_id, r.entered_at, r.label or "", r.segment_id) for r in rows]

    async def current_id(self, customer_id: str) -> str:
        row = (
            await self._exec(
                "SELECT merged_into FROM customers WHERE customer_id = :c", {"c": customer_id}
            )
        ).first()
        return customer_id if row is None or row.merged_into is None else str(row.merged_into)

    async def feed_start(self) -> tuple[int, int]:
        """The position after the last event committed ((0, 0) when there is none)."""
        row = (
            await self._exec(
                """
                SELECT CAST(f.txid AS text) AS txid,
                    coalesce((SELECT max(e.event_id) FROM membership_events e
                              WHERE e.txid = f.txid), 0) AS event_id
                FROM feed_commits f WHERE f.seq IS NOT NULL ORDER BY f.seq DESC LIMIT 1
                """
            )
        ).first()
        return (0, 0) if row is None else (int(row.txid), int(row.event_id))

    async def feed(
        self, after: tuple[int, int], segment_ids: Sequence[str] | None, limit: int
    ) -> list[MembershipEvent]:
        only = "AND e.segment_id = ANY(CAST(:segs AS text[]))" if segment_ids is not None else ""
        rows = await self._exec(
            f"""
            {_FEED_POSITION}
            SELECT e.event_id, CAST(e.txid AS text) AS txid, e.segment_id, e.customer_id,
                e.kind, e.label, e.at
            FROM feed_commits f CROSS JOIN LATERAL (
                SELECT * FROM membership_events e
                WHERE e.txid = f.txid AND e.event_id > CASE
                    WHEN f.seq = (SELECT seq FROM p) THEN (SELECT e FROM p) ELSE 0 END {only}
                ORDER BY e.event_id LIMIT :n
            ) e
            WHERE f.seq >= (SELECT seq FROM p)
            ORDER BY f.seq, e.event_id LIMIT :n
            """,
            {"t": str(after[0]), "e": after[1], "segs": list(segment_ids or []), "n": limit},
        )
        return [
            MembershipEvent(
                r.segment_id,
                str(r.customer_id),
                MembershipKind(r.kind),
                r.at,
                r.label or "",
                (int(r.txid), int(r.event_id)),
            )
            for r in rows
        ]

    async def is_erased(self, customer_id: str) -> bool:
        row = await self._exec(
            "SELECT 1 FROM erased_customers WHERE customer_id = :c", {"c": customer_id}
        )
        return row.first() is not None

    async def erase(self, customer_id: str, now: dt.datetime) -> int:
        """Forgets the customer and every row merged into it (their names, birth dates and
        cities stay on a merged-away row otherwise); tombstones them all: a late change
        announcement about any of them is dropped."""
        ids = [
            str(r[0])
            for r in (
                await self._exec(
                    "SELECT CAST(:c AS uuid) UNION SELECT customer_id FROM customers "
                    "WHERE merged_into = :c",
                    {"c": customer_id},
                )
            ).all()
        ]
        params = {"ids": ids, "now": now}
        row = (
            await self._exec(
                """
                WITH gone AS (
                    DELETE FROM memberships WHERE customer_id = ANY(CAST(:ids AS uuid[]))
                    RETURNING segment_id, customer_id, label
                ), wiped AS (
                    DELETE FROM membership_events WHERE customer_id = ANY(CAST(:ids AS uuid[]))
                ), logged AS (
                    INSERT INTO membership_events (segment_id, customer_id, kind, label, at)
                    SELECT segment_id, customer_id, 'exited', NULL, :now FROM gone
                    ORDER BY segment_id
                )
                SELECT count(*) FROM gone
                """,
                params,
            )
        ).scalar_one()
        for sql in (
            "DELETE FROM events WHERE customer_id = ANY(CAST(:ids AS uuid[]))",
            "DELETE FROM rechecks WHERE customer_id = ANY(CAST(:ids AS uuid[]))",
            "DELETE FROM lookalike_scores WHERE customer_id = ANY(CAST(:ids AS uuid[]))",
            "DELETE FROM customers WHERE customer_id = ANY(CAST(:ids AS uuid[]))",
            "INSERT INTO erased_customers (customer_id) "
            "SELECT unnest(CAST(:ids AS uuid[])) ON CONFLICT DO NOTHING",
        ):
            await self._exec(sql, params)
        return int(row)


class _Row:
    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:  # columns are known only at run time
        raise AttributeError(name)


@dataclass(frozen=True)
class IncrementalStatement:
    """Evaluates a few customers against every segment at once (compiled per generation).

    The segments' constants are rendered as SQL literals and the customers ($1) and the
    clock ($2) are the only parameters, so the text is parsed and planned once per
    generation (a prepared statement), not on every profile change.
    """

    generation: int
    sql: str
    segment_ids: tuple[str, ...]
    labelled: tuple[bool, ...]


def _inline(sql: str, params: Mapping[str, Any]) -> str:
    positional = {"ids": "$1", "now": "$2"}

    def render(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in positional:
            return positional[name]
        return pgsql.Literal(params[name]).as_string(None)

    return _BIND.sub(render, sql)


def incremental_statement(
    generation: int,
    segments: Mapping[str, Segment],
    declared: Mapping[str, AttributeType] = NO_DECLARATIONS,
) -> IncrementalStatement:
    builder = SqlBuilder()
    compiler = RuleCompiler(segments, builder, declared)
    ids = tuple(sorted(segments))
    compiled: list[Compiled] = [compiler.segment(s) for s in ids]
    columns = []
    due: list[str] = []
    for index, c in enumerate(compiled):
        columns.append(f"{c.predicate} AS s{index}")
        if c.label is not None:
            columns.append(f"{c.label} AS l{index}")
        due.extend(c.due)
    join = builder.aggregate_join("e.customer_id = ANY(CAST(:ids AS uuid[]))")
    extra = "".join(f", {col}" for col in columns)
    sql = f"""
        SELECT c.customer_id, c.merged_into IS NULL AS live, {earliest_future(due)} AS due,
            (SELECT generation FROM registry) AS generation,
            (SELECT r.due_at FROM rechecks r WHERE r.customer_id = c.customer_id) AS recheck_due,
            (SELECT coalesce(jsonb_object_agg(m.segment_id, coalesce(m.label, '')), '{{}}')
             FROM memberships m WHERE m.customer_id = c.customer_id) AS current{extra}
        FROM customers c {join}
        WHERE c.customer_id = ANY(CAST(:ids AS uuid[]))
    """
    return IncrementalStatement(
        generation,
        _inline(sql, builder.params),
        ids,
        tuple(c.label is not None for c in compiled),
    )


class SegmentationStore:
    def __init__(
        self, engine: AsyncEngine, declared: Mapping[str, AttributeType] = NO_DECLARATIONS
    ) -> None:
        self.engine = engine
        self.declared = declared
        self._compiled = StatementCache()

    def definitions_changed(self) -> None:
        """This process changed the definitions: the next evaluation compiles them again."""
        self._compiled.statement = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SegmentationTransaction]:
        async with self.engine.begin() as conn:
            yield SegmentationTransaction(conn, self.declared, self._compiled)
