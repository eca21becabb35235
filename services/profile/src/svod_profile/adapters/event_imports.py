"""Event imports in the ``profile`` schema: staging with COPY, folding set-based (issue 22).

An import's staged events are in a table of their own, ``event_import_rows_<import_pk>``
(made by the import's first staging, indexed by customer when the commit starts, dropped when
it is done). A commit folds them a chunk of customers at a time: one INSERT ... SELECT moves
the chunk's events into ``events`` (ON CONFLICT DO NOTHING: an event applied before counts
once) and the same statement aggregates the rows it inserted per customer, in SQL, into the
metrics of those events; the use case adds them to the stored metrics (``domain.events.combine``).

Why SQL and not the domain's fold over the events read back: reading an event row into an
EventFact cost 22.8 us of Python and folding it 4.2 us, against 10.2 us of profile CPU per
event for a whole commit this way (bench_event_import, 100,000 order events; the fold's
steps are counts, sums and min/max, which SQL aggregates exactly - the equivalence test holds
the two to each other).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import psycopg
from sqlalchemy.ext.asyncio import AsyncConnection

from svod_profile.adapters.event_storage import EVENT_COLUMNS, _event_from_row
from svod_profile.domain.announcements import ProfileChanged
from svod_profile.domain.contacts import CONTACT_FAILED
from svod_profile.domain.events import (
    CAMPAIGN_CLICKED,
    CAMPAIGN_DELIVERED,
    CAMPAIGN_OPENED,
    CAMPAIGN_UNSUBSCRIBED,
    CART_ABANDONED,
    CONTACT_EVENTS,
    LOYALTY_ACCRUED,
    LOYALTY_REDEEMED,
    ORDER_PLACED,
    ORDER_RETURNED,
    PAGE_VIEWED,
    PRODUCT_VIEWED,
    SESSION_STARTED,
    SUPPORT_OPENED,
    EventFact,
    Metrics,
)
from svod_profile.domain.imports import ChunkFolded, EventImport, ImportState, StagedEvent
from svod_runtime.db import array_literal, fetch_direct

# Event types whose effects go beyond metrics (a consent, a report to quality): their rows
# are read back whole after a chunk's insert.
SIDE_EFFECT_TYPES = (CAMPAIGN_UNSUBSCRIBED, CONTACT_FAILED)

_STAGED_COLUMNS = (
    "customer_id",
    "source",
    "message_id",
    "event_type",
    "occurred_at",
    "channel",
    "currency",
    "amount",
    "discount",
    "items",
    "categories",
    "order_id",
    "reference_id",
    "contact_channel",
    "loyalty_points",
    "properties",
    "identifiers",
)


def _q(value: str) -> str:
    """A constant as an SQL string literal (only the module's own event type names)."""
    return "'" + value.replace("'", "''") + "'"


def _types(*names: str) -> str:
    return "event_type IN (" + ", ".join(_q(n) for n in names) + ")"


# Per customer, the metrics of the events a chunk inserted: each line is the SQL of one step
# of domain.events.apply_event (the equivalence test holds the two to each other).
_ORDER = _types(ORDER_PLACED)
_AGGREGATES = f"""
    max(currency) AS currency,
    count(*) FILTER (WHERE {_ORDER}) AS order_count,
    coalesce(sum(amount) FILTER (WHERE {_ORDER}), 0) AS total_spent,
    coalesce(sum(items) FILTER (WHERE {_ORDER}), 0) AS items_bought,
    coalesce(sum(discount) FILTER (WHERE {_ORDER}), 0) AS discount_total,
    count(*) FILTER (WHERE {_ORDER} AND discount > 0) AS discounted_order_count,
    count(*) FILTER (WHERE {_types(ORDER_RETURNED)}) AS return_count,
    coalesce(sum(amount) FILTER (WHERE {_types(ORDER_RETURNED)}), 0) AS total_returned,
    min(occurred_at) FILTER (WHERE {_ORDER}) AS first_order_at,
    max(occurred_at) FILTER (WHERE {_ORDER}) AS last_order_at,
    max(occurred_at) FILTER (WHERE {_types(*sorted(CONTACT_EVENTS))}) AS last_contact_at,
    max(occurred_at) AS last_event_at,
    array_agg(DISTINCT channel) AS channels,
    count(*) FILTER (WHERE {_types(CART_ABANDONED)}) AS abandoned_cart_count,
    count(*) FILTER (WHERE {_types(CAMPAIGN_DELIVERED)}) AS campaign_delivered_count,
    count(*) FILTER (WHERE {_types(CAMPAIGN_OPENED)}) AS campaign_opened_count,
    count(*) FILTER (WHERE {_types(CAMPAIGN_CLICKED)}) AS campaign_clicked_count,
    count(*) FILTER (WHERE {_types(SESSION_STARTED)}) AS session_count,
    count(*) FILTER (WHERE {_types(PAGE_VIEWED, PRODUCT_VIEWED)}) AS view_count,
    count(*) FILTER (WHERE {_types(SUPPORT_OPENED)}) AS support_ticket_count,
    max(occurred_at) FILTER (WHERE {_types(SUPPORT_OPENED)}) AS last_support_ticket_at,
    coalesce(sum(loyalty_points) FILTER (WHERE {_types(LOYALTY_ACCRUED)}), 0)
        - coalesce(sum(loyalty_points) FILTER (WHERE {_types(LOYALTY_REDEEMED)}), 0)
        AS loyalty_points_balance,
    count(*) AS inserted,
    -- The ProfileChanged announcement's JSON (domain.announcements: {{"events": [[source,
    -- message_id], ...]}}), built here: 10M refs through Python objects and json.dumps cost
    -- more than the fold itself.
    jsonb_build_object('events', jsonb_agg(jsonb_build_array(source, message_id)))::text
        AS announcement,
    array_agg(source) FILTER (WHERE {_types(*SIDE_EFFECT_TYPES)}) AS side_sources,
    array_agg(message_id) FILTER (WHERE {_types(*SIDE_EFFECT_TYPES)}) AS side_messages
"""
_COUNTS = (
    "order_count",
    "items_bought",
    "discounted_order_count",
    "return_count",
    "abandoned_cart_count",
    "campaign_delivered_count",
    "campaign_opened_count",
    "campaign_clicked_count",
    "session_count",
    "view_count",
    "support_ticket_count",
    "loyalty_points_balance",
)
_SUMS = ("total_spent", "discount_total", "total_returned")
_TIMES = ("first_order_at", "last_order_at", "last_contact_at", "last_event_at")


# COPY's text format: these four characters are written escaped (NUL is refused before).
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _text_array(values: tuple[str, ...]) -> str:
    if not values:
        return "{}"
    quoted = (v.replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return "{" + ",".join(f'"{v}"' for v in quoted) + "}"


# The tabs between a staged row's fields (_STAGED_COLUMNS).
_SEPARATORS = len(_STAGED_COLUMNS) - 1


def staged_event(customer_id: str, e: EventFact) -> StagedEvent:
    """The event as staged for the customer (its record ref and COPY row)."""
    return StagedEvent(e.source, e.message_id, _copy_line(customer_id, e))


def plain_copy_line(fields: tuple[str, ...], categories: tuple[str, ...]) -> str | None:
    """The staged row of ``fields`` (every column of _STAGED_COLUMNS as text, ``categories``
    those of its array) when none of them holds a character COPY or an array literal escapes
    (no tab, line break, backslash, or quote in a category): then it is the escaped row
    already. None otherwise: the caller escapes field by field (``_escaped_copy_line``)."""
    line = "\t".join(fields)
    if (
        line.count("\t") == _SEPARATORS
        and "\\" not in line
        and "\n" not in line
        and "\r" not in line
        and not any('"' in v for v in categories)
    ):
        return line + "\n"
    return None


def _copy_line(customer_id: str, e: EventFact) -> str:
    """One staged row in COPY's text format. Written by hand: psycopg's write_row (its
    per-value dumpers, the array dumper) and json.dumps of empty maps took 2/3 of staging's
    CPU (cProfile, 60,000 order events).

    The row is joined as it is and looked at once: with none of the characters COPY or an
    array literal escapes in it (no tab but the separators, no line break, backslash or
    quote) it is the escaped row already; only a row with one is escaped field by field.
    4.5-6.3 us of CPU an order event against 7.8-8.3 escaping every text field (probe)."""
    categories = e.categories
    line = plain_copy_line(
        (
            customer_id,
            e.source,
            e.message_id,
            e.type,
            e.occurred_at.isoformat(),
            e.channel,
            e.currency,
            str(e.amount),
            str(e.discount),
            str(e.items),
            "{" + ",".join(f'"{v}"' for v in categories) + "}" if categories else "{}",
            e.order_id,
            e.reference_id,
            e.contact_channel,
            str(e.loyalty_points),
            json.dumps(e.properties, ensure_ascii=False) if e.properties else "{}",
            json.dumps([list(i) for i in e.identifiers], ensure_ascii=False)
            if e.identifiers
            else "[]",
        ),
        categories,
    )
    return line if line is not None else _escaped_copy_line(customer_id, e)


def _escaped_copy_line(customer_id: str, e: EventFact) -> str:
    """``_copy_line`` escaping every text field (a row with a character to escape)."""
    esc = _COPY_ESCAPES
    return (
        "\t".join(
            (
                customer_id,  # a canonical UUID, the type, channel and currency names: nothing
                e.source.translate(esc),  # to escape in those
                e.message_id.translate(esc),
                e.type,
                e.occurred_at.isoformat(),
                e.channel,
                e.currency,
                str(e.amount),
                str(e.discount),
                str(e.items),
                _text_array(e.categories).translate(esc),
                e.order_id.translate(esc),
                e.reference_id.translate(esc),
                e.contact_channel.translate(esc),
                str(e.loyalty_points),
                json.dumps(e.properties, ensure_ascii=False).translate(esc)
                if e.properties
                else "{}",
                json.dumps([list(i) for i in e.identifiers], ensure_ascii=False).translate(esc)
                if e.identifiers
                else "[]",
            )
        )
        + "\n"
    )


def rows_table(import_pk: int) -> str:
    return f"event_import_rows_{int(import_pk)}"


def _delta(row: Any) -> Metrics:
    values: dict[str, Any] = {name: int(getattr(row, name)) for name in _COUNTS}
    values.update({name: Decimal(getattr(row, name)) for name in _SUMS})
    values.update({name: getattr(row, name) for name in _TIMES})
    values["last_support_ticket_at"] = row.last_support_ticket_at
    values["channels"] = frozenset(row.channels)
    values["currency"] = row.currency or ""
    return Metrics(**values)


def _import_of(row: Any) -> EventImport:
    return EventImport(
        import_id=row.import_id,
        state=ImportState(row.state),
        staged=int(row.staged_count),
        applied=int(row.applied_count),
        duplicates=int(row.duplicate_count),
        erased=int(row.erased_count),
        customers=int(row.customer_count),
        created_at=row.created_at,
        committed_at=row.committed_at,
        finished_at=row.finished_at,
    )


_IMPORT_COLUMNS = (
    "import_pk, import_id, state, staged_count, applied_count, duplicate_count, erased_count, "
    "customer_count, folded_through, created_at, committed_at, finished_at"
)


class EventImportRows:
    """An import's rows and state, inside a ProfileTransaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def get(self, import_id: str) -> EventImport | None:
        rows = await fetch_direct(
            self.conn,
            f"SELECT {_IMPORT_COLUMNS} FROM event_imports WHERE import_id = %(i)s",
            {"i": import_id},
        )
        return _import_of(rows[0]) if rows else None

    async def lock(self, import_id: str) -> tuple[int, EventImport, str | None] | None:
        """The import's key, state and how far its commit got, locked (staging and commits
        of one import go one at a time); None when it was never staged."""
        rows = await fetch_direct(
            self.conn,
            f"SELECT {_IMPORT_COLUMNS} FROM event_imports WHERE import_id = %(i)s FOR UPDATE",
            {"i": import_id},
        )
        if not rows:
            return None
        row = rows[0]
        through = None if row.folded_through is None else str(row.folded_through)
        return int(row.import_pk), _import_of(row), through

    async def lock_or_create(self, import_id: str) -> tuple[int, EventImport]:
        """As ``lock``, creating the import (and its staging table) when new."""
        await fetch_direct(
            self.conn,
            "INSERT INTO event_imports (import_id) VALUES (%(i)s) "
            "ON CONFLICT (import_id) DO NOTHING",
            {"i": import_id},
        )
        locked = await self.lock(import_id)
        assert locked is not None
        pk, state, _ = locked
        if state.state == ImportState.STAGING:
            await fetch_direct(
                self.conn,
                f"""
                CREATE TABLE IF NOT EXISTS {rows_table(pk)} (
                    customer_id uuid NOT NULL,
                    source text NOT NULL,
                    message_id text NOT NULL,
                    event_type text NOT NULL,
                    occurred_at timestamptz NOT NULL,
                    channel text NOT NULL,
                    currency text NOT NULL,
                    amount numeric(20, 9) NOT NULL,
                    discount numeric(20, 9) NOT NULL,
                    items integer NOT NULL,
                    categories text[] NOT NULL,
                    order_id text NOT NULL,
                    reference_id text NOT NULL,
                    contact_channel text NOT NULL,
                    loyalty_points bigint NOT NULL,
                    properties jsonb NOT NULL,
                    identifiers jsonb NOT NULL,
                    PRIMARY KEY (source, message_id)
                )
                """,
            )
        return pk, state

    async def stage(self, import_pk: int, rows: Sequence[StagedEvent]) -> tuple[int, int]:
        """COPYs the events new to the import (the first copy of a record counts); returns
        (staged, duplicates). The caller holds the import's lock.

        The COPY is tried first, in a savepoint, with no look-up: a message's events are new to
        the import unless the message is sent again, which is rare. Only when the COPY meets
        a staged key (a unique violation) are the staged ones looked up and left out. The
        look-up of every message was 7.5 us of Postgres CPU per event (2,000 keys against the
        primary key of a 200,000-row staging table, under a load average of 17)."""
        table = rows_table(import_pk)
        lines: dict[tuple[str, str], str] = {}
        for source, message_id, line in rows:
            lines.setdefault((source, message_id), line)
        if not lines:
            return 0, len(rows)
        fresh = list(lines)
        raw = await self.conn.get_raw_connection()
        driver = raw.driver_connection
        try:
            async with driver.transaction():  # type: ignore[union-attr]
                await self._copy(driver, table, "".join(lines.values()))
            return len(fresh), len(rows) - len(fresh)
        except psycopg.errors.UniqueViolation:
            pass  # the savepoint is rolled back: nothing of the message is staged yet
        seen = await fetch_direct(
            self.conn,
            f"SELECT r.source, r.message_id FROM {table} r JOIN unnest("
            "CAST(%(s)s AS text[]), CAST(%(m)s AS text[])) AS x(s, m) "
            "ON r.source = x.s AND r.message_id = x.m",
            # Array literals: psycopg dumps a list element by element in Python.
            {"s": array_literal(s for s, _ in fresh), "m": array_literal(m for _, m in fresh)},
        )
        for row in seen:
            del lines[(row.source, row.message_id)]
        if lines:
            await self._copy(driver, table, "".join(lines.values()))
        return len(lines), len(rows) - len(lines)

    @staticmethod
    async def _copy(driver: Any, table: str, data: str) -> None:
        cursor = driver.cursor()
        async with cursor.copy(f"COPY {table} ({', '.join(_STAGED_COLUMNS)}) FROM STDIN") as copy:
            await copy.write(data.encode())

    async def add_staged(self, import_pk: int, staged: int) -> int:
        rows = await fetch_direct(
            self.conn,
            "UPDATE event_imports SET staged_count = staged_count + %(n)s "
            "WHERE import_pk = %(p)s RETURNING staged_count",
            {"n": staged, "p": import_pk},
        )
        return int(rows[0].staged_count)

    async def start_commit(self, import_pk: int) -> None:
        """COMMITTING from now on; the rows get the index the chunks are read by."""
        table = rows_table(import_pk)
        await fetch_direct(
            self.conn, f"CREATE INDEX IF NOT EXISTS {table}_customer ON {table} (customer_id)"
        )
        await fetch_direct(
            self.conn,
            "UPDATE event_imports SET state = %(s)s, committed_at = now() WHERE import_pk = %(p)s",
            {"s": int(ImportState.COMMITTING), "p": import_pk},
        )

    async def next_customers(
        self, import_pk: int, after: str | None, rows: int
    ) -> list[tuple[str, int]]:
        """The staged customer ids after ``after`` (in id order) whose events make about
        ``rows`` rows: every id whole (one customer with more rows is a chunk alone)."""
        found = await fetch_direct(
            self.conn,
            f"""
            SELECT customer_id, count(*) AS n FROM (
                SELECT customer_id FROM {rows_table(import_pk)}
                WHERE customer_id > CAST(%(a)s AS uuid) ORDER BY customer_id LIMIT %(n)s
            ) s GROUP BY customer_id ORDER BY customer_id
            """,
            {"a": after or "00000000-0000-0000-0000-000000000000", "n": rows},
        )
        ids = [(str(r.customer_id), int(r.n)) for r in found]
        if len(ids) > 1 and sum(n for _, n in ids) >= rows:
            ids.pop()  # its last rows may be past the limit: it goes whole in the next chunk
        elif len(ids) == 1 and ids[0][1] >= rows:  # a customer of more rows is a chunk alone
            whole = await fetch_direct(
                self.conn,
                f"SELECT count(*) AS n FROM {rows_table(import_pk)} WHERE customer_id = %(c)s",
                {"c": ids[0][0]},
            )
            ids = [(ids[0][0], int(whole[0].n))]
        return ids

    async def erased_among(self, customer_ids: list[str]) -> set[str]:
        """The ids erased, or merged into an erased customer: their events are dropped."""
        rows = await fetch_direct(
            self.conn,
            "SELECT customer_id FROM erased_customers "
            "WHERE customer_id = ANY(CAST(%(c)s AS uuid[])) "
            "UNION SELECT m.customer_id FROM merged_customers m JOIN erased_customers e "
            "ON e.customer_id = m.survivor_id WHERE m.customer_id = ANY(CAST(%(c)s AS uuid[]))",
            {"c": array_literal(customer_ids)},
        )
        return {str(r.customer_id) for r in rows}

    async def fold(
        self, import_pk: int, owners: dict[str, str], announce_events: int
    ) -> tuple[dict[str, Metrics], dict[str, list[bytes]], list[tuple[str, EventFact]], int]:
        """Moves the staged events of the ``owners`` keys (staged id -> the customer it names
        now) into ``events``, those seen before left out; returns per customer the metrics
        of its new events and its change announcements (at most ``announce_events`` events
        each), the new events with effects beyond metrics (with their customer), and how
        many were inserted."""
        if not owners:
            return {}, {}, [], 0
        staged = sorted(owners)
        rows = await fetch_direct(
            self.conn,
            f"""
            WITH m AS (
                SELECT * FROM unnest(CAST(%(s)s AS uuid[]), CAST(%(o)s AS uuid[]))
                    AS m(staged, owner)
            ), ins AS (
                INSERT INTO events (customer_id, {EVENT_COLUMNS})
                SELECT m.owner, {", ".join("r." + c for c in _STAGED_COLUMNS[1:])}
                FROM {rows_table(import_pk)} r JOIN m ON r.customer_id = m.staged
                WHERE r.customer_id >= CAST(%(lo)s AS uuid)
                    AND r.customer_id <= CAST(%(hi)s AS uuid)
                ON CONFLICT (source, message_id) DO NOTHING
                RETURNING customer_id, source, message_id, event_type, occurred_at, channel,
                    currency, amount, discount, items, loyalty_points
            )
            SELECT customer_id, {_AGGREGATES} FROM ins GROUP BY customer_id
            """,
            {
                "s": array_literal(staged),
                "o": array_literal(owners[s] for s in staged),
                "lo": staged[0],
                "hi": staged[-1],
            },
        )
        deltas: dict[str, Metrics] = {}
        announcements: dict[str, list[bytes]] = {}
        side_refs: list[tuple[str, str]] = []
        inserted = 0
        for row in rows:
            customer = str(row.customer_id)
            deltas[customer] = _delta(row)
            if int(row.inserted) <= announce_events:
                announcements[customer] = [row.announcement.encode()]
            else:  # rare (a customer with thousands of events): in parts, in order
                refs = ProfileChanged.parse(row.announcement.encode()).events
                announcements[customer] = [
                    ProfileChanged(events=refs[i : i + announce_events]).payload()
                    for i in range(0, len(refs), announce_events)
                ]
            inserted += int(row.inserted)
            if row.side_sources:
                side_refs += zip(row.side_sources, row.side_messages, strict=True)
        side: list[tuple[str, EventFact]] = []
        if side_refs:
            found = await fetch_direct(
                self.conn,
                f"SELECT customer_id, {EVENT_COLUMNS} FROM events WHERE (source, message_id) IN "
                "(SELECT s, m FROM unnest(CAST(%(s)s AS text[]), CAST(%(m)s AS text[])) "
                "AS x(s, m)) ORDER BY occurred_at, source, message_id",
                {"s": [s for s, _ in side_refs], "m": [m for _, m in side_refs]},
            )
            side = [(str(r.customer_id), _event_from_row(r)) for r in found]
        return deltas, announcements, side, inserted

    async def advance(self, import_pk: int, through: str, chunk: ChunkFolded) -> None:
        await fetch_direct(
            self.conn,
            """
            UPDATE event_imports SET folded_through = %(t)s,
                applied_count = applied_count + %(a)s,
                duplicate_count = duplicate_count + %(d)s,
                erased_count = erased_count + %(e)s,
                customer_count = customer_count + %(c)s
            WHERE import_pk = %(p)s
            """,
            {
                "t": through,
                "a": chunk.applied,
                "d": chunk.duplicates,
                "e": chunk.erased,
                "c": chunk.customers,
                "p": import_pk,
            },
        )

    async def erase_staged(self, customer_ids: list[str]) -> int:
        """Deletes the customers' staged events from every import not committed yet; the
        imports' rows are locked (shared) meanwhile, so none is staged or folded under it.
        Without a commit's index a staging table is scanned whole: erasures are rare."""
        imports = await fetch_direct(
            self.conn,
            "SELECT import_pk FROM event_imports WHERE state <> %(done)s ORDER BY import_pk "
            "FOR SHARE",
            {"done": int(ImportState.COMMITTED)},
        )
        deleted = 0
        for row in imports:
            rows = await fetch_direct(
                self.conn,
                f"WITH d AS (DELETE FROM {rows_table(row.import_pk)} "
                "WHERE customer_id = ANY(CAST(%(c)s AS uuid[])) RETURNING 1) "
                "SELECT count(*) AS n FROM d",
                {"c": array_literal(customer_ids)},
            )
            deleted += int(rows[0].n)
        return deleted

    async def finish(self, import_pk: int) -> None:
        await fetch_direct(
            self.conn,
            "UPDATE event_imports SET state = %(s)s, finished_at = now() WHERE import_pk = %(p)s",
            {"s": int(ImportState.COMMITTED), "p": import_pk},
        )
        await fetch_direct(self.conn, f"DROP TABLE IF EXISTS {rows_table(import_pk)}")
