"""Activation's part of the ``segmentation`` schema: destinations, bindings, what each
webhook binding's destination holds, syncs and deliveries; plus the reads of campaign
reports, responsiveness and look-alike features. Only customer ids and labels are stored
here: contact data is fetched from the profile service when a delivery is made.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from svod_runtime.outbox import enqueue_many
from svod_runtime.telemetry import current_trace_carrier
from svod_segmentation.adapters.rule_sql import responsiveness_source
from svod_segmentation.domain.activation import (
    AdPlatform,
    Binding,
    BindingMode,
    Delivery,
    DeliveryKind,
    DeliveryState,
    Destination,
    DestinationKind,
    FileFormat,
    Sync,
    SyncState,
)
from svod_segmentation.domain.attribution import Order, Touch
from svod_segmentation.domain.responsiveness import CHANNELS, ChannelStats

WEBHOOK_TOPIC = "destination.webhook"
EXPORT_TOPIC = "destination.export"
_text = functools.lru_cache(maxsize=256)(text)

_DESTINATION_COLUMNS = (
    "destination_id, display_name, kind, consent_channel, settings, secret, created_at"
)
_BINDING_COLUMNS = (
    "b.binding_id, b.segment_id, b.destination_id, b.mode, b.schedule_seconds, "
    "b.next_sync_at, b.created_at, "
    "(SELECT count(*) FROM destination_members x WHERE x.binding_id = b.binding_id) AS synced"
)
_SYNC_COLUMNS = (
    "sync_id, binding_id, segment_id, destination_id, state, started_at, ended_at, "
    "member_count, delivered_count, skipped_no_consent, skipped_no_contact, file_paths, error"
)
_DELIVERY_COLUMNS = (
    "delivery_id, binding_id, destination_id, segment_id, sequence, kind, state, items, "
    "sync_id, page, last_page, attempts, failed_attempts, last_http_status, last_error, "
    "created_at, delivered_at"
)

# Who a binding's destination should hold now: the segment's members whose latest answer for
# the destination's consent channel is an opt-in (the read model's view; the delivery checks
# the profile again when it sends).
_DESIRED = """
SELECT m.customer_id, coalesce(m.label, '') AS label
FROM memberships m JOIN customers c ON c.customer_id = m.customer_id
WHERE m.segment_id = :seg AND c.merged_into IS NULL AND c.consents ->> :ch = 'opted_in'
"""

# The live diff of one binding, applied to destination_members in the same statement.
_RECONCILE = f"""
WITH desired AS ({_DESIRED}),
held AS (SELECT customer_id, label FROM destination_members WHERE binding_id = :b),
diff AS MATERIALIZED (
    SELECT coalesce(d.customer_id, h.customer_id) AS customer_id,
        h.customer_id IS NOT NULL AS was_in, d.customer_id IS NOT NULL AS is_in,
        h.label AS old_label, d.label AS new_label
    FROM desired d FULL JOIN held h ON h.customer_id = d.customer_id
    WHERE d.customer_id IS NULL OR h.customer_id IS NULL OR d.label <> h.label
),
gone AS (
    DELETE FROM destination_members x USING diff
    WHERE x.binding_id = :b AND x.customer_id = diff.customer_id AND NOT diff.is_in
),
put AS (
    INSERT INTO destination_members (binding_id, customer_id, label)
    SELECT :b, customer_id, new_label FROM diff WHERE is_in
    ON CONFLICT (binding_id, customer_id) DO UPDATE SET label = excluded.label
)
SELECT CAST(customer_id AS text) AS customer_id, was_in, is_in, old_label, new_label
FROM diff ORDER BY customer_id
"""


def _destination(row: Any) -> Destination:
    settings = dict(row.settings or {})
    fmt, platform = settings.get("format"), settings.get("platform")
    return Destination(
        destination_id=row.destination_id,
        kind=DestinationKind(row.kind),
        consent_channel=row.consent_channel,
        display_name=row.display_name,
        file_format=FileFormat(fmt) if fmt else None,
        url=settings.get("url", ""),
        secret=row.secret,
        max_attempts=int(settings.get("max_attempts", 10)),
        platform=AdPlatform(platform) if platform else None,
        created_at=row.created_at,
    )


def _binding(row: Any) -> Binding:
    return Binding(
        binding_id=str(row.binding_id),
        segment_id=row.segment_id,
        destination_id=row.destination_id,
        mode=BindingMode(row.mode),
        schedule_seconds=int(row.schedule_seconds),
        next_sync_at=row.next_sync_at,
        created_at=row.created_at,
        synced_count=int(row.synced),
    )


def _sync(row: Any) -> Sync:
    return Sync(
        sync_id=str(row.sync_id),
        binding_id=str(row.binding_id),
        segment_id=row.segment_id,
        destination_id=row.destination_id,
        state=SyncState(row.state),
        started_at=row.started_at,
        ended_at=row.ended_at,
        member_count=int(row.member_count),
        delivered_count=int(row.delivered_count),
        skipped_no_consent=int(row.skipped_no_consent),
        skipped_no_contact=int(row.skipped_no_contact),
        file_paths=tuple(row.file_paths),
        error=row.error,
    )


def _delivery(row: Any) -> Delivery:
    return Delivery(
        delivery_id=str(row.delivery_id),
        binding_id=str(row.binding_id),
        destination_id=row.destination_id,
        segment_id=row.segment_id,
        sequence=int(row.sequence),
        kind=DeliveryKind(row.kind),
        state=DeliveryState(row.state),
        items=tuple(tuple(i) for i in row.items),
        sync_id="" if row.sync_id is None else str(row.sync_id),
        page=int(row.page),
        last_page=bool(row.last_page),
        attempts=int(row.attempts),
        failed_attempts=int(row.failed_attempts),
        last_http_status=int(row.last_http_status),
        last_error=row.last_error,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
    )


class ActivationTransaction:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def _exec(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        return await self.conn.execute(_text(sql), dict(params or {}))

    # -- destinations ------------------------------------------------------------------------
    async def insert_destination(self, d: Destination) -> Destination:
        settings: dict[str, object] = {}
        if d.file_format is not None:
            settings["format"] = d.file_format.value
        if d.kind is DestinationKind.WEBHOOK:
            settings.update(url=d.url, max_attempts=d.max_attempts)
        if d.platform is not None:
            settings["platform"] = d.platform.value
        row = (
            await self._exec(
                f"""
                INSERT INTO destinations (destination_id, display_name, kind, consent_channel,
                    settings, secret)
                VALUES (:id, :n, :k, :ch, CAST(:s AS jsonb), :sec)
                ON CONFLICT (destination_id) DO NOTHING RETURNING {_DESTINATION_COLUMNS}
                """,
                {
                    "id": d.destination_id,
                    "n": d.display_name,
                    "k": d.kind.value,
                    "ch": d.consent_channel,
                    "s": json.dumps(settings),
                    "sec": d.secret,
                },
            )
        ).first()
        if row is None:
            raise KeyError(d.destination_id)
        return _destination(row)

    async def destination(self, destination_id: str) -> Destination | None:
        row = (
            await self._exec(
                f"SELECT {_DESTINATION_COLUMNS} FROM destinations WHERE destination_id = :id",
                {"id": destination_id},
            )
        ).first()
        return None if row is None else _destination(row)

    async def destinations(self, after: str, limit: int) -> list[Destination]:
        rows = await self._exec(
            f"SELECT {_DESTINATION_COLUMNS} FROM destinations WHERE destination_id > :a "
            "ORDER BY destination_id LIMIT :n",
            {"a": after, "n": limit},
        )
        return [_destination(r) for r in rows]

    async def delete_destination(self, destination_id: str) -> None:
        await self._exec(
            "DELETE FROM destinations WHERE destination_id = :id", {"id": destination_id}
        )

    # -- bindings ----------------------------------------------------------------------------
    async def insert_binding(self, b: Binding) -> Binding:
        await self._exec(
            """
            INSERT INTO bindings (binding_id, segment_id, destination_id, mode, schedule_seconds,
                next_sync_at)
            VALUES (:b, :s, :d, :m, :sch, :next)
            """,
            {
                "b": b.binding_id,
                "s": b.segment_id,
                "d": b.destination_id,
                "m": b.mode.value,
                "sch": b.schedule_seconds,
                "next": b.next_sync_at,
            },
        )
        found = await self.binding(b.binding_id)
        assert found is not None
        return found

    async def binding(self, binding_id: str, *, lock: bool = False) -> Binding | None:
        row = (
            await self._exec(
                f"SELECT {_BINDING_COLUMNS} FROM bindings b WHERE b.binding_id = CAST(:b AS uuid)"
                + (" FOR UPDATE" if lock else ""),
                {"b": binding_id},
            )
        ).first()
        return None if row is None else _binding(row)

    async def bindings(self, segment_id: str = "", destination_id: str = "") -> list[Binding]:
        rows = await self._exec(
            f"""
            SELECT {_BINDING_COLUMNS} FROM bindings b
            WHERE (:s = '' OR b.segment_id = :s) AND (:d = '' OR b.destination_id = :d)
            ORDER BY b.created_at, b.binding_id
            """,
            {"s": segment_id, "d": destination_id},
        )
        return [_binding(r) for r in rows]

    async def delete_binding(self, binding_id: str) -> None:
        for sql in (
            "DELETE FROM destination_members WHERE binding_id = CAST(:b AS uuid)",
            "DELETE FROM bindings WHERE binding_id = CAST(:b AS uuid)",
        ):
            await self._exec(sql, {"b": binding_id})

    async def lock_live_binding(self, binding_id: str) -> Binding | None:
        """The binding, locked for this transaction, unless another replica holds it."""
        row = (
            await self._exec(
                f"SELECT {_BINDING_COLUMNS} FROM bindings b "
                "WHERE b.binding_id = CAST(:b AS uuid) FOR UPDATE SKIP LOCKED",
                {"b": binding_id},
            )
        ).first()
        return None if row is None else _binding(row)

    async def live_binding_ids(self) -> list[str]:
        rows = await self._exec("SELECT binding_id FROM bindings WHERE mode = 'live'")
        return [str(r.binding_id) for r in rows]

    async def claim_scheduled(self, now: dt.datetime) -> list[Binding]:
        """Bindings whose scheduled full sync is due, moved on to their next time."""
        rows = await self._exec(
            f"""
            WITH due AS (
                SELECT binding_id FROM bindings
                WHERE next_sync_at <= :now ORDER BY next_sync_at LIMIT 50
                FOR UPDATE SKIP LOCKED
            ), moved AS (
                UPDATE bindings b SET next_sync_at = :now
                    + make_interval(secs => b.schedule_seconds)
                FROM due WHERE b.binding_id = due.binding_id RETURNING b.binding_id
            )
            SELECT {_BINDING_COLUMNS} FROM bindings b JOIN moved USING (binding_id)
            """,
            {"now": now},
        )
        return [_binding(r) for r in rows]

    # -- audiences ---------------------------------------------------------------------------
    async def reconcile(
        self, binding_id: str, segment_id: str, channel: str
    ) -> list[tuple[str, bool, bool, str, str]]:
        """Brings what the destination holds in line with the consenting members; returns
        (customer, was in, is in, old label, new label) per change, by customer."""
        rows = await self._exec(_RECONCILE, {"b": binding_id, "seg": segment_id, "ch": channel})
        return [
            (r.customer_id, r.was_in, r.is_in, r.old_label or "", r.new_label or "") for r in rows
        ]

    async def replace_held(
        self, binding_id: str, segment_id: str, channel: str
    ) -> list[tuple[str, str]]:
        """A full sync: the destination holds exactly the consenting members now; returns
        them (customer, label) by customer."""
        await self._exec(
            "DELETE FROM destination_members WHERE binding_id = CAST(:b AS uuid)",
            {"b": binding_id},
        )
        rows = await self._exec(
            f"""
            WITH desired AS ({_DESIRED}),
            put AS (
                INSERT INTO destination_members (binding_id, customer_id, label)
                SELECT :b, customer_id, label FROM desired
            )
            SELECT CAST(customer_id AS text) AS customer_id, label FROM desired
            ORDER BY customer_id
            """,
            {"b": binding_id, "seg": segment_id, "ch": channel},
        )
        return [(r.customer_id, r.label) for r in rows]

    async def members(self, segment_id: str) -> list[tuple[str, str]]:
        """Every live member (customer, label), by customer."""
        rows = await self._exec(
            """
            SELECT CAST(m.customer_id AS text) AS customer_id, coalesce(m.label, '') AS label
            FROM memberships m JOIN customers c ON c.customer_id = m.customer_id
            WHERE m.segment_id = :s AND c.merged_into IS NULL ORDER BY m.customer_id
            """,
            {"s": segment_id},
        )
        return [(r.customer_id, r.label) for r in rows]

    async def member_count(self, segment_id: str) -> int:
        row = (
            await self._exec(
                "SELECT count(*) AS n FROM memberships WHERE segment_id = :s", {"s": segment_id}
            )
        ).one()
        return int(row.n)

    # -- syncs -------------------------------------------------------------------------------
    async def insert_sync(self, sync: Sync, scheduled: bool) -> None:
        await self._exec(
            """
            INSERT INTO syncs (sync_id, binding_id, segment_id, destination_id, scheduled, state,
                started_at)
            VALUES (:id, :b, :s, :d, :sch, :st, :at)
            """,
            {
                "id": sync.sync_id,
                "b": sync.binding_id,
                "s": sync.segment_id,
                "d": sync.destination_id,
                "sch": scheduled,
                "st": sync.state.value,
                "at": sync.started_at,
            },
        )

    async def finish_sync(self, sync: Sync) -> None:
        await self._exec(
            """
            UPDATE syncs SET state = :st, ended_at = :end, member_count = :mc,
                delivered_count = :dc, skipped_no_consent = :nc, skipped_no_contact = :nt,
                file_paths = :fp, error = :e
            WHERE sync_id = CAST(:id AS uuid)
            """,
            {
                "id": sync.sync_id,
                "st": sync.state.value,
                "end": sync.ended_at,
                "mc": sync.member_count,
                "dc": sync.delivered_count,
                "nc": sync.skipped_no_consent,
                "nt": sync.skipped_no_contact,
                "fp": list(sync.file_paths),
                "e": sync.error,
            },
        )

    async def sync(self, sync_id: str) -> Sync | None:
        row = (
            await self._exec(
                f"SELECT {_SYNC_COLUMNS} FROM syncs WHERE sync_id = CAST(:id AS uuid)",
                {"id": sync_id},
            )
        ).first()
        return None if row is None else _sync(row)

    # -- deliveries --------------------------------------------------------------------------
    async def add_deliveries(
        self,
        binding: Binding,
        kind: DeliveryKind,
        item_pages: Sequence[Sequence[Sequence[str]]],
        sync_id: str = "",
    ) -> list[str]:
        """Queues one delivery per page (in order, numbered from the binding's sequence) and
        its outbox message; returns their ids."""
        if not item_pages:
            return []
        first = (
            await self._exec(
                "UPDATE bindings SET next_sequence = next_sequence + :n "
                "WHERE binding_id = CAST(:b AS uuid) RETURNING next_sequence - :n AS first",
                {"b": binding.binding_id, "n": len(item_pages)},
            )
        ).scalar_one()
        rows = []
        for index, items in enumerate(item_pages):
            rows.append(
                {
                    "delivery_id": str(uuid.uuid4()),
                    "binding_id": binding.binding_id,
                    "destination_id": binding.destination_id,
                    "segment_id": binding.segment_id,
                    "sequence": int(first) + index,
                    "kind": kind.value,
                    "state": DeliveryState.PENDING.value,
                    "items": [list(i) for i in items],
                    "item_count": len(items),
                    "sync_id": sync_id or None,
                    "page": index + 1 if sync_id else 0,
                    "last_page": bool(sync_id) and index == len(item_pages) - 1,
                }
            )
        await self._exec(
            """
            INSERT INTO deliveries (delivery_id, binding_id, destination_id, segment_id, sequence,
                kind, state, items, item_count, sync_id, page, last_page)
            SELECT delivery_id, binding_id, destination_id, segment_id, sequence, kind, state,
                items, item_count, sync_id, page, last_page
            FROM jsonb_populate_recordset(NULL::deliveries, CAST(:rows AS jsonb))
            """,
            {"rows": json.dumps(rows)},
        )
        delivery_ids = [str(r["delivery_id"]) for r in rows]
        await self.enqueue_webhooks([(binding.binding_id, d) for d in delivery_ids])
        return delivery_ids

    async def enqueue_webhooks(self, deliveries: Sequence[tuple[str, str]]) -> None:
        """Outbox messages (key: the binding, so its deliveries keep their order)."""
        carrier = current_trace_carrier()
        await enqueue_many(
            self.conn,
            WEBHOOK_TOPIC,
            [(binding_id, delivery_id.encode(), carrier) for binding_id, delivery_id in deliveries],
        )

    async def enqueue_export(self, binding_id: str, sync_id: str) -> None:
        await enqueue_many(
            self.conn, EXPORT_TOPIC, [(binding_id, sync_id.encode(), current_trace_carrier())]
        )

    async def delivery(self, delivery_id: str) -> Delivery | None:
        row = (
            await self._exec(
                f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE delivery_id = CAST(:id AS uuid)",
                {"id": delivery_id},
            )
        ).first()
        return None if row is None else _delivery(row)

    async def earlier_pending(self, binding_id: str, sequence: int) -> int | None:
        """The sequence of an earlier delivery of the binding still pending, if any."""
        row = (
            await self._exec(
                "SELECT min(sequence) AS s FROM deliveries WHERE binding_id = CAST(:b AS uuid) "
                "AND state = 'pending' AND sequence < :q",
                {"b": binding_id, "q": sequence},
            )
        ).one()
        return None if row.s is None else int(row.s)

    async def record_attempt(
        self,
        delivery_id: str,
        state: DeliveryState,
        status: int,
        error: str,
        *,
        counted: bool,
        now: dt.datetime,
    ) -> None:
        await self._exec(
            """
            UPDATE deliveries SET state = :st, attempts = attempts + 1,
                failed_attempts = failed_attempts + CAST(:c AS int), last_http_status = :h,
                last_error = :e,
                delivered_at = CASE WHEN :st = 'delivered' THEN :now ELSE delivered_at END
            WHERE delivery_id = CAST(:id AS uuid) AND state = 'pending'
            """,
            {
                "id": delivery_id,
                "st": state.value,
                "c": int(counted),
                "h": status,
                "e": error,
                "now": now,
            },
        )

    async def deliveries(
        self, destination_id: str, state: DeliveryState | None, before: str, limit: int
    ) -> list[Delivery]:
        """Newest first (by sequence within a binding, by creation across); ``before`` is the
        page token (a delivery id)."""
        rows = await self._exec(
            f"""
            SELECT {_DELIVERY_COLUMNS} FROM deliveries d
            WHERE d.destination_id = :d AND (:st = '' OR d.state = :st)
              AND (:before = '' OR (d.created_at, d.delivery_id) < (
                    SELECT created_at, delivery_id FROM deliveries
                    WHERE delivery_id = CAST(NULLIF(:before, '') AS uuid)))
            ORDER BY d.created_at DESC, d.delivery_id DESC LIMIT :n
            """,
            {"d": destination_id, "st": state.value if state else "", "before": before, "n": limit},
        )
        return [_delivery(r) for r in rows]

    async def dead_letter_count(self, destination_id: str) -> int:
        row = (
            await self._exec(
                "SELECT count(*) AS n FROM deliveries WHERE destination_id = :d "
                "AND state = 'dead_letter'",
                {"d": destination_id},
            )
        ).one()
        return int(row.n)

    async def states_of(self, destination_id: str, ids: Sequence[str]) -> dict[str, str]:
        rows = await self._exec(
            "SELECT CAST(delivery_id AS text) AS id, state FROM deliveries "
            "WHERE destination_id = :d AND delivery_id = ANY(CAST(:ids AS uuid[]))",
            {"d": destination_id, "ids": list(ids)},
        )
        return {r.id: r.state for r in rows}

    async def redrive(
        self, destination_id: str, ids: Sequence[str] | None
    ) -> list[tuple[str, str]]:
        """Dead letters made pending again with a fresh attempt budget (all of the destination
        when ``ids`` is None), their outbox messages queued; returns (binding, delivery)."""
        rows = await self._exec(
            """
            UPDATE deliveries SET state = 'pending', failed_attempts = 0
            WHERE destination_id = :d AND state = 'dead_letter'
              AND (CAST(:all AS boolean) OR delivery_id = ANY(CAST(:ids AS uuid[])))
            RETURNING CAST(binding_id AS text) AS b, CAST(delivery_id AS text) AS id, sequence
            """,
            {"d": destination_id, "all": ids is None, "ids": list(ids or [])},
        )
        found = sorted((r.b, r.sequence, r.id) for r in rows)
        pairs = [(b, i) for b, _, i in found]
        await self.enqueue_webhooks(pairs)
        return pairs

    # -- campaigns ---------------------------------------------------------------------------
    async def orders_and_touches(
        self,
        start: dt.datetime,
        end: dt.datetime,
        window: dt.timedelta,
        touch_types: Sequence[str],
        campaign_ids: Sequence[str],
    ) -> tuple[list[Order], list[Touch]]:
        params = {"start": start, "end": end, "w": window}
        orders = await self._exec(
            """
            SELECT CAST(e.customer_id AS text) AS c, e.occurred_at AS at,
                coalesce(e.amount, 0) AS amount
            FROM events e JOIN customers c ON c.customer_id = e.customer_id
            WHERE e.event_type = 'order_placed' AND e.occurred_at >= :start
              AND e.occurred_at < :end AND c.merged_into IS NULL
            """,
            params,
        )
        order_list = [Order(r.c, r.at, Decimal(r.amount)) for r in orders]
        types = [f"campaign_{t}" for t in touch_types]
        touches = await self._exec(
            """
            SELECT CAST(e.customer_id AS text) AS c, e.occurred_at AS at, e.reference_id AS ref,
                coalesce(e.properties ->> 'contact_channel', '') AS ch, e.event_type AS kind
            FROM events e
            WHERE e.event_type = ANY(CAST(:types AS text[]))
              AND e.occurred_at >= CAST(:start AS timestamptz) - CAST(:w AS interval)
              AND e.occurred_at < :end
              AND (cardinality(CAST(:camps AS text[])) = 0
                   OR e.reference_id = ANY(CAST(:camps AS text[])))
              AND e.customer_id IN (
                SELECT customer_id FROM events WHERE event_type = 'order_placed'
                  AND occurred_at >= :start AND occurred_at < :end)
            """,
            {**params, "types": types, "camps": list(campaign_ids)},
        )
        touch_list = [
            Touch(r.c, r.at, r.ref, r.ch, r.kind.removeprefix("campaign_")) for r in touches
        ]
        return order_list, touch_list

    async def responsiveness(self, customer_id: str) -> list[ChannelStats]:
        row = (
            await self._exec(
                responsiveness_source("e.customer_id = CAST(:c AS uuid)"), {"c": customer_id}
            )
        ).first()
        if row is None:
            return []
        out = []
        for ch in CHANNELS:
            stats = ChannelStats(
                ch,
                int(getattr(row, f"{ch}_delivered")),
                int(getattr(row, f"{ch}_opened")),
                int(getattr(row, f"{ch}_clicked")),
                int(getattr(row, f"{ch}_ignored")),
                getattr(row, f"{ch}_last"),
            )
            if stats.delivered or stats.opened or stats.clicked:
                out.append(stats)
        return out

    async def segment_exists(self, segment_id: str) -> bool:
        row = (
            await self._exec("SELECT 1 FROM segments WHERE segment_id = :s", {"s": segment_id})
        ).first()
        return row is not None

    async def current_id(self, customer_id: str) -> str | None:
        row = (
            await self._exec(
                "SELECT customer_id, merged_into FROM customers WHERE customer_id = :c",
                {"c": customer_id},
            )
        ).first()
        if row is None:
            return None
        return str(row.merged_into or row.customer_id)


class ActivationStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[ActivationTransaction]:
        async with self.engine.begin() as conn:
            yield ActivationTransaction(conn)
