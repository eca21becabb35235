"""The only module that touches the ``profile`` schema."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from svod_profile.adapters.customer_imports import CustomerImportRows, json_time
from svod_profile.adapters.erasure_locks import (
    erased_among,
    erased_and_absent,
    lock_for_erasure,
)
from svod_profile.adapters.event_imports import EventImportRows
from svod_profile.adapters.event_storage import EventRepository, metrics_from_json
from svod_profile.domain.announcements import (
    CHANGED_TOPIC,
    CONTACT_FAILED_TOPIC,
    ProfileChanged,
    contact_failure_payload,
)
from svod_profile.domain.consents import Consent
from svod_profile.domain.events import EventFact
from svod_profile.domain.model import (
    AnnouncedProfile,
    IdentifierObservation,
    NameVariant,
    ProfileView,
    Provenance,
    RecordApplication,
    SourceSummary,
    TraitObservation,
)
from svod_profile.domain.names import NAME_FIELDS, NameIndex, ShownUpdate, query_key
from svod_runtime.db import array_literal, dump_json, fetch_direct, fetch_direct_pipelined
from svod_runtime.erasure import scrub_outbox
from svod_runtime.outbox import enqueue, enqueue_many
from svod_runtime.priority import sliced

_NAME_ORDER = {name: i for i, name in enumerate(NAME_FIELDS)}
# Name filters of SearchProfiles.
NAME_SEARCH = ("first_name", "last_name")


def _shown_rows(shown: Mapping[str, TraitObservation]) -> dict[str, dict[str, Any]]:
    """Shown values as stored in ``shown``, for ``dump_json``."""
    return {name: _obs_json(obs) for name, obs in shown.items()}


def _shown_json(shown: Mapping[str, TraitObservation]) -> str:
    return dump_json(_shown_rows(shown))


def _obs_json(obs: TraitObservation) -> dict[str, Any]:
    """An observation as stored in ``shown``, for ``dump_json`` (its time as ``json_time``
    leaves it: the isoformat() calls were 4% of a customer import's fold in process, cProfile,
    probe)."""
    p = obs.provenance
    return {
        "value": obs.value,
        "source": p.source,
        "channel": p.channel,
        "observed_at": json_time(p.observed_at),
    }


def _obs_from_json(name: str, raw: dict[str, str]) -> TraitObservation:
    return TraitObservation(
        name,
        raw["value"],
        Provenance(raw["source"], raw["channel"], dt.datetime.fromisoformat(raw["observed_at"])),
    )


class ProfileQueries:
    """Read-only queries over many profiles."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def search(self, filters: dict[str, str], after: str | None, limit: int) -> list[str]:
        conditions = ["(CAST(:after AS uuid) IS NULL OR p.customer_id > CAST(:after AS uuid))"]
        params: dict[str, object] = {"after": after, "n": limit}
        keys = [k for k in (query_key(n, filters.get(n, "")) for n in NAME_SEARCH) if k]
        if keys:
            # Any spelling ever observed, in any script (GIN index on name_keys).
            conditions.append("p.name_keys @> CAST(:keys AS text[])")
            params["keys"] = keys
        if filters.get("city"):
            conditions.append("strpos(lower(p.shown->'addresses'->>'value'), lower(:city)) > 0")
            params["city"] = json.dumps(filters["city"], ensure_ascii=False)[1:-1]
        if filters.get("source"):
            conditions.append(
                "EXISTS (SELECT 1 FROM profile_sources s WHERE s.customer_id = p.customer_id "
                "AND s.source = :source)"
            )
            params["source"] = filters["source"]
        rows = await self.conn.execute(
            text(
                f"SELECT p.customer_id FROM profiles p WHERE {' AND '.join(conditions)} "
                "ORDER BY p.customer_id LIMIT :n"
            ),
            params,
        )
        return [str(r[0]) for r in rows]

    async def changed_since(
        self, since: dt.datetime | None, after: str | None, limit: int
    ) -> list[str]:
        rows = await self.conn.execute(
            text(
                """
                SELECT customer_id FROM profiles
                WHERE (CAST(:since AS timestamptz) IS NULL OR updated_at > :since)
                  AND (CAST(:after AS uuid) IS NULL OR customer_id > CAST(:after AS uuid))
                ORDER BY customer_id LIMIT :n
                """
            ),
            {"since": since, "after": after, "n": limit},
        )
        return [str(r[0]) for r in rows]


def _provenance_row(provenance: Provenance) -> dict[str, str]:
    """A value's provenance as the JSON rows of _CLAIM_AND_OBSERVE carry it."""
    return {
        "s": provenance.source,
        "ch": provenance.channel,
        "at": provenance.observed_at.isoformat(),
    }


# A record's Apply writes, after the profile's lock (see ProfileTransaction.claim_and_observe):
# nothing but the claim when the record was applied before.
_CLAIM_AND_OBSERVE = """
WITH claim AS (
    INSERT INTO applied_records (source, message_id, customer_id, channel, observed_at)
    VALUES (%(s)s, %(m)s, %(c)s, %(ch)s, %(at)s) ON CONFLICT DO NOTHING RETURNING 1
), traits AS (
    INSERT INTO trait_values (customer_id, field, value, source, channel, observed_at,
        record_source, record_message_id)
    SELECT CAST(%(c)s AS uuid), x.f, x.v, x.s, x.ch, x.at, %(s)s, %(m)s
    FROM jsonb_to_recordset(CAST(%(traits)s AS jsonb))
        AS x(f text, v text, s text, ch text, at timestamptz)
    WHERE EXISTS (SELECT 1 FROM claim)
), identifiers AS (
    INSERT INTO profile_identifiers (customer_id, id_type, namespace, value, source, channel,
        observed_at)
    SELECT CAST(%(c)s AS uuid), x.t, x.n, x.v, x.s, x.ch, x.at
    FROM jsonb_to_recordset(CAST(%(ids)s AS jsonb))
        AS x(t text, n text, v text, s text, ch text, at timestamptz)
    WHERE EXISTS (SELECT 1 FROM claim)
    ON CONFLICT (customer_id, id_type, namespace, value) DO UPDATE
    SET observed_at = greatest(profile_identifiers.observed_at, excluded.observed_at)
), sources AS (
    INSERT INTO profile_sources (customer_id, source, channel, first_seen, last_seen,
        record_count)
    SELECT CAST(%(c)s AS uuid), %(ps)s, %(ch)s, %(at)s, %(at)s, 1
    WHERE EXISTS (SELECT 1 FROM claim)
    ON CONFLICT (customer_id, source) DO UPDATE SET
        first_seen = least(profile_sources.first_seen, excluded.first_seen),
        last_seen = greatest(profile_sources.last_seen, excluded.last_seen),
        record_count = profile_sources.record_count + 1
)
SELECT EXISTS (SELECT 1 FROM claim) AS claimed
"""


_OBSERVATIONS = (
    "SELECT field, value, source, channel, observed_at FROM trait_values "
    "WHERE customer_id = %(c)s AND field = ANY(CAST(%(f)s AS text[]))"
)


# observations_many: each (i, customer, fields) wanted, in the order the values were stored.
_OBSERVATIONS_MANY = """
SELECT x.i, t.field, t.value, t.source, t.channel, t.observed_at
FROM jsonb_to_recordset(CAST(%(w)s AS jsonb)) AS x(i int, c uuid, f text[])
JOIN trait_values t ON t.customer_id = x.c AND t.field = ANY(x.f)
ORDER BY x.i, t.value_pk
"""


def _values_carry_record_provenance(app: RecordApplication) -> bool:
    """Whether every value of the record carries the record's provenance, and its source is
    the record's (what the set-based claim stores for each)."""
    p = app.provenance
    return (
        p.source == app.source
        and all(t.provenance == p for t in app.traits)
        and all(i.provenance == p for i in app.identifiers)
    )


def _observation(row: Any) -> TraitObservation:
    return TraitObservation(
        row.field, row.value, Provenance(row.source, row.channel, row.observed_at)
    )


def _claim_params(app: RecordApplication) -> dict[str, Any]:
    p = app.provenance
    return {
        "c": app.customer_id,
        "s": app.source,
        "m": app.message_id,
        "ch": p.channel,
        "at": p.observed_at,
        "ps": p.source,
        "traits": json.dumps(
            [{"f": t.field, "v": t.value, **_provenance_row(t.provenance)} for t in app.traits],
            ensure_ascii=False,
        ),
        "ids": json.dumps(
            [
                {"t": i.type, "n": i.namespace, "v": i.value, **_provenance_row(i.provenance)}
                for i in app.identifiers
            ],
            ensure_ascii=False,
        ),
    }


def _update_shown(
    customer_id: str, shown: dict[str, TraitObservation], names: NameIndex | None
) -> tuple[str, dict[str, Any]]:
    """The statement (and its parameters) writing a profile's shown values; returns its
    version."""
    params: dict[str, Any] = {
        "c": customer_id,
        "shown": _shown_json(shown),
    }
    names_sql = ""
    if names is not None:
        names_sql = _REPLACE_NAMES
        params.update(
            fields=array_literal(names.fields),
            prefixes=array_literal(sorted(names.prefixes)),
            variants=_variants_json(names.variants),
            keys=array_literal(sorted(names.keys)),
        )
    return (
        f"UPDATE profiles SET shown = shown || CAST(%(shown)s AS jsonb), {names_sql}"
        "updated_at = now(), version = version + 1 "
        "WHERE customer_id = %(c)s RETURNING version",
        params,
    )


class ProfileTransaction:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.events = EventRepository(conn)
        self.queries = ProfileQueries(conn)
        self.imports = EventImportRows(conn)
        self.customer_imports = CustomerImportRows(conn)

    async def lock_current_profile(self, customer_id: str) -> str:
        """Locks (creating if new) the profile ``customer_id`` names now; returns its id (see
        ``EventRepository.lock_current_profiles``: a merge committing meanwhile is followed)."""
        current, _ = await self.events.lock_current_profiles([customer_id])
        return current[customer_id]

    async def lock_profile(self, customer_id: str) -> None:
        """Creates the profile if new and locks it for the rest of the transaction."""
        await fetch_direct(
            self.conn,
            "INSERT INTO profiles (customer_id) VALUES (%(c)s) "
            "ON CONFLICT (customer_id) DO UPDATE SET customer_id = excluded.customer_id",
            {"c": customer_id},
        )

    async def claim_and_observe(self, app: RecordApplication) -> bool:
        """Marks the record applied and stores its traits, identifiers and source, in one
        statement; False (and nothing written) when it had been applied before."""
        rows = await fetch_direct(self.conn, _CLAIM_AND_OBSERVE, _claim_params(app))
        return bool(rows[0].claimed)

    async def claim_and_observe_many(self, apps: list[RecordApplication]) -> list[bool]:
        """``claim_and_observe`` of each record in turn. Records whose every value carries the
        record's own provenance (all that ``ApplyBatch`` builds) go in one set-based statement,
        the customer import fold's (``CustomerImportRows.claim_and_observe``: same rows, same
        answers); others one statement each, all sent in one round trip. (ApplyBatch's
        100-record chunks as 100 pipelined statements: see docs/performance.md, "Profile and
        segmentation CPU per message".)"""
        if not apps:
            return []
        if all(map(_values_carry_record_provenance, apps)):
            return await self.customer_imports.claim_and_observe(apps)
        answers = await fetch_direct_pipelined(
            self.conn, [(_CLAIM_AND_OBSERVE, _claim_params(app)) for app in apps]
        )
        return [bool(rows[0].claimed) for rows in answers]

    async def observations(self, customer_id: str, fields: Iterable[str]) -> list[TraitObservation]:
        rows = await fetch_direct(
            self.conn, _OBSERVATIONS, {"c": customer_id, "f": array_literal(fields)}
        )
        return [_observation(r) for r in rows]

    async def observations_many(
        self, wanted: list[tuple[str, Iterable[str]]]
    ) -> list[list[TraitObservation]]:
        """``observations`` of each (customer, fields), in the order stored, as one statement."""
        if not wanted:
            return []
        found: list[list[TraitObservation]] = [[] for _ in wanted]
        rows = await fetch_direct(
            self.conn,
            _OBSERVATIONS_MANY,
            {
                "w": dump_json(
                    [{"i": i, "c": c, "f": list(fields)} for i, (c, fields) in enumerate(wanted)]
                )
            },
        )
        for r in rows:
            found[r.i].append(_observation(r))
        return found

    async def current_id(self, customer_id: str) -> str:
        """The survivor when identity merged this customer away, else the id itself."""
        rows = await fetch_direct(
            self.conn,
            "SELECT survivor_id FROM merged_customers WHERE customer_id = %(c)s",
            {"c": customer_id},
        )
        return str(rows[0].survivor_id) if rows else customer_id

    async def merged_away_into(self, customer_ids: list[str]) -> list[str]:
        """The ids merged into these customers (they answer for them), and any of these ids
        that were merged away themselves."""
        rows = await fetch_direct(
            self.conn,
            "SELECT customer_id FROM merged_customers "
            "WHERE survivor_id = ANY(CAST(%(c)s AS uuid[])) "
            "OR customer_id = ANY(CAST(%(c)s AS uuid[])) ORDER BY customer_id",
            {"c": array_literal(customer_ids)},
        )
        return [str(r.customer_id) for r in rows]

    async def redirect(self, customer_ids: list[str], to: str) -> None:
        """These merged-away ids answer for ``to`` now; ``to`` itself is nobody's any more."""
        await fetch_direct(
            self.conn,
            "DELETE FROM merged_customers WHERE customer_id = %(t)s",
            {"t": to},
        )
        if customer_ids:
            await fetch_direct(
                self.conn,
                "UPDATE merged_customers SET survivor_id = %(t)s "
                "WHERE customer_id = ANY(CAST(%(c)s AS uuid[]))",
                {"t": to, "c": array_literal(customer_ids)},
            )

    async def change_applied(self, change_id: str) -> bool:
        row = (
            await self.conn.execute(
                text("SELECT 1 FROM applied_changes WHERE change_id = :c"), {"c": change_id}
            )
        ).first()
        return row is not None

    async def claim_change(self, change_id: str) -> bool:
        row = (
            await self.conn.execute(
                text(
                    "INSERT INTO applied_changes (change_id) VALUES (:c) "
                    "ON CONFLICT DO NOTHING RETURNING 1"
                ),
                {"c": change_id},
            )
        ).first()
        return row is not None

    async def move_records(self, target: str, refs: list[tuple[str, str]]) -> None:
        """Moves the records' traits and their applied marks to another customer."""
        params = {"t": target, "refs": json.dumps([{"s": s, "m": m} for s, m in refs])}
        moved = "SELECT s, m FROM jsonb_to_recordset(CAST(:refs AS jsonb)) AS x(s text, m text)"
        await self.conn.execute(
            text(
                f"UPDATE trait_values SET customer_id = :t "
                f"WHERE (record_source, record_message_id) IN ({moved})"
            ),
            params,
        )
        await self.conn.execute(
            text(
                f"UPDATE applied_records SET customer_id = :t WHERE (source, message_id) IN "
                f"({moved})"
            ),
            params,
        )

    async def rebuild_sources(self, customer_id: str) -> None:
        await self.conn.execute(
            text("DELETE FROM profile_sources WHERE customer_id = :c"), {"c": customer_id}
        )
        await self.conn.execute(
            text(
                """
                INSERT INTO profile_sources (customer_id, source, channel, first_seen, last_seen,
                                             record_count)
                SELECT :c, source, max(channel), min(coalesce(observed_at, applied_at)),
                       max(coalesce(observed_at, applied_at)), count(*)
                FROM applied_records WHERE customer_id = :c GROUP BY source
                """
            ),
            {"c": customer_id},
        )

    async def replace_identifiers(
        self, customer_id: str, identifiers: list[IdentifierObservation]
    ) -> None:
        await self.conn.execute(
            text("DELETE FROM profile_identifiers WHERE customer_id = :c"), {"c": customer_id}
        )
        if identifiers:
            await self.conn.execute(
                text(
                    "INSERT INTO profile_identifiers (customer_id, id_type, namespace, value, "
                    "source, channel, observed_at) VALUES (:c, :t, :n, :v, :s, :ch, :at)"
                ),
                [
                    {
                        "c": customer_id,
                        "t": i.type,
                        "n": i.namespace,
                        "v": i.value,
                        "s": i.provenance.source,
                        "ch": i.provenance.channel,
                        "at": i.provenance.observed_at,
                    }
                    for i in identifiers
                ],
            )

    async def record_refs(self, customer_id: str) -> list[tuple[str, str]]:
        """Every message applied to this customer: identify records and events."""
        rows = await self.conn.execute(
            text(
                "SELECT source, message_id FROM applied_records WHERE customer_id = :c "
                "UNION SELECT source, message_id FROM events WHERE customer_id = :c"
            ),
            {"c": customer_id},
        )
        return sorted((r.source, r.message_id) for r in rows)

    async def erase(
        self, customer_ids: list[str], receipt_id: str, values: list[str]
    ) -> dict[str, int]:
        """Deletes everything personal this schema holds about the customer and the ids merged
        into it, tombstones every id (late messages about them are dropped) and forgets the
        outbox messages about them. Takes the ids' erasure locks first (see erased_among)."""
        params = {"c": customer_ids}
        # Events staged by imports not committed yet (a commit drops an erased customer's,
        # but an import may never be committed). Before the erasure locks: an import's commit
        # takes its import's row and then erasure locks, so this takes them in that order too.
        staged = await self.imports.erase_staged(customer_ids)
        await lock_for_erasure(self.conn, customer_ids, shared=False)
        counts = {"staged_events": staged}
        for table in (
            "trait_values",
            "profile_identifiers",
            "profile_sources",
            "events",
            "consents",
            "consent_history",
            "profiles",
        ):
            result = await self.conn.execute(
                text(f"DELETE FROM {table} WHERE customer_id = ANY(CAST(:c AS uuid[]))"), params
            )
            counts[table] = int(result.rowcount or 0)
        await self.conn.execute(
            text(
                "INSERT INTO erased_customers (customer_id, receipt_id) "
                "SELECT unnest(CAST(:c AS uuid[])), :r ON CONFLICT DO NOTHING"
            ),
            {"c": customer_ids, "r": receipt_id},
        )
        # Announcements to segmentation and delivery failures for quality, pending or dead:
        # they would re-announce a deleted profile or carry the person's contacts.
        counts["outbox"] = await scrub_outbox(self.conn, customer_ids, values)
        return counts

    async def erased_among(self, customer_ids: Iterable[str]) -> set[str]:
        """Which of these ids were erased. Takes their erasure locks shared first, so an erasure
        running now finishes before (and sees what this transaction wrote), or starts after
        this transaction (and deletes it)."""
        return await erased_among(self.conn, customer_ids)

    async def erased_and_absent(self, customer_ids: Iterable[str]) -> tuple[set[str], set[str]]:
        """``erased_among``, and which of the ids have no profile (as read just after)."""
        return await erased_and_absent(self.conn, customer_ids)

    async def erased_ids_of(self, customer_id: str) -> list[str]:
        """Every id erased together with this one (empty when it was not erased)."""
        rows = await self.conn.execute(
            text(
                "SELECT e2.customer_id FROM erased_customers e1 "
                "JOIN erased_customers e2 ON e2.receipt_id = e1.receipt_id "
                "WHERE e1.customer_id = :c ORDER BY e2.customer_id"
            ),
            {"c": customer_id},
        )
        return [str(r[0]) for r in rows]

    async def merged_into(self, customer_id: str) -> list[str]:
        rows = await self.conn.execute(
            text("SELECT customer_id FROM merged_customers WHERE survivor_id = :c"),
            {"c": customer_id},
        )
        return [str(r[0]) for r in rows]

    async def save_receipt(
        self,
        receipt_id: str,
        customer_id: str,
        customer_ids: list[str],
        actor: str,
        reason: str,
        counts: dict[str, int],
    ) -> dt.datetime:
        row = (
            await self.conn.execute(
                text(
                    "INSERT INTO erasure_receipts (receipt_id, customer_id, customer_ids, actor, "
                    "reason, counts) VALUES (:r, :c, CAST(:ids AS uuid[]), :a, :why, "
                    "CAST(:n AS jsonb)) RETURNING erased_at"
                ),
                {
                    "r": receipt_id,
                    "c": customer_id,
                    "ids": customer_ids,
                    "a": actor,
                    "why": reason,
                    "n": json.dumps(counts),
                },
            )
        ).one()
        return row[0]

    async def receipt(self, receipt_id: str | None, customer_id: str | None) -> Any:
        """A receipt by its id, or the latest one naming the customer id."""
        key: str | None
        if receipt_id:
            query = "SELECT * FROM erasure_receipts WHERE receipt_id = :k"
            key = receipt_id
        else:
            query = (
                "SELECT * FROM erasure_receipts WHERE customer_id = :k "
                "OR CAST(:k AS uuid) = ANY(customer_ids) ORDER BY erased_at DESC LIMIT 1"
            )
            key = customer_id
        return (await self.conn.execute(text(query), {"k": key})).first()

    async def report_contact_failure(self, customer_id: str, event: EventFact) -> None:
        payload = contact_failure_payload(event)
        if payload is not None:
            await enqueue(self.conn, CONTACT_FAILED_TOPIC, customer_id, payload)

    async def enqueue_many(
        self, topic: str, messages: list[tuple[str, bytes, dict[str, str]]]
    ) -> None:
        """Adds (key, payload, trace carrier) messages to the outbox, in this transaction."""
        await enqueue_many(self.conn, topic, messages)

    async def announce(self, customer_id: str, change: ProfileChanged) -> None:
        """Tells segmentation (through the outbox) that this profile changed."""
        await enqueue(self.conn, CHANGED_TOPIC, customer_id, change.payload())

    async def merge_into(self, survivor: str, merged: list[str]) -> None:
        """Moves the merged customers' data to the survivor; their profiles disappear."""
        params = {"s": survivor, "m": merged}
        # Lock every profile involved first, in a fixed order, and with an upsert rather than
        # FOR UPDATE: a record's Apply may be creating a merged profile right now, its row not
        # yet visible to a SELECT; the upsert waits for it, and the merge then moves its data
        # (and an Apply that comes second follows the merge: lock_current_profile).
        await self.conn.execute(
            text(
                "INSERT INTO profiles (customer_id) "
                "SELECT c FROM unnest(CAST(:m AS uuid[]) || CAST(:s AS uuid)) AS c ORDER BY c "
                "ON CONFLICT (customer_id) DO UPDATE SET customer_id = excluded.customer_id"
            ),
            params,
        )
        await self.events.move_events(survivor, merged)
        for statement in (
            "UPDATE trait_values SET customer_id = :s WHERE customer_id = ANY(CAST(:m AS uuid[]))",
            """
            INSERT INTO profile_identifiers (customer_id, id_type, namespace, value, source,
                channel, observed_at)
            SELECT DISTINCT ON (id_type, namespace, value) :s, id_type, namespace, value,
                source, channel, observed_at
            FROM profile_identifiers WHERE customer_id = ANY(CAST(:m AS uuid[]))
            ORDER BY id_type, namespace, value, observed_at
            ON CONFLICT (customer_id, id_type, namespace, value) DO UPDATE SET
                observed_at = greatest(profile_identifiers.observed_at, excluded.observed_at)
            """,
            "DELETE FROM profile_identifiers WHERE customer_id = ANY(CAST(:m AS uuid[]))",
            """
            INSERT INTO profile_sources (customer_id, source, channel, first_seen, last_seen,
                record_count)
            SELECT :s, source, max(channel), min(first_seen), max(last_seen), sum(record_count)
            FROM profile_sources WHERE customer_id = ANY(CAST(:m AS uuid[]))
            GROUP BY source
            ON CONFLICT (customer_id, source) DO UPDATE SET
                first_seen = least(profile_sources.first_seen, excluded.first_seen),
                last_seen = greatest(profile_sources.last_seen, excluded.last_seen),
                record_count = profile_sources.record_count + excluded.record_count
            """,
            "DELETE FROM profile_sources WHERE customer_id = ANY(CAST(:m AS uuid[]))",
            "UPDATE applied_records SET customer_id = :s "
            "WHERE customer_id = ANY(CAST(:m AS uuid[]))",
            """
            INSERT INTO profiles (customer_id, created_at)
            SELECT :s, coalesce(min(created_at), now()) FROM profiles
            WHERE customer_id = ANY(CAST(:m AS uuid[]))
            ON CONFLICT (customer_id) DO UPDATE SET
                created_at = least(profiles.created_at, excluded.created_at)
            """,
            "DELETE FROM profiles WHERE customer_id = ANY(CAST(:m AS uuid[]))",
            "UPDATE merged_customers SET survivor_id = :s "
            "WHERE survivor_id = ANY(CAST(:m AS uuid[]))",
            """
            INSERT INTO merged_customers (customer_id, survivor_id)
            SELECT unnest(CAST(:m AS uuid[])), :s
            ON CONFLICT (customer_id) DO UPDATE SET survivor_id = excluded.survivor_id
            """,
        ):
            await self.conn.execute(text(statement), params)

    async def observations_with_records(
        self, customer_id: str
    ) -> list[tuple[TraitObservation, tuple[str, str]]]:
        """Every value observed for the customer, with the record it came with, oldest first."""
        rows = await self.conn.execute(
            text(
                "SELECT field, value, source, channel, observed_at, record_source, "
                "record_message_id FROM trait_values WHERE customer_id = :c "
                "ORDER BY observed_at, value_pk"
            ),
            {"c": customer_id},
        )
        return [
            (
                TraitObservation(r.field, r.value, Provenance(r.source, r.channel, r.observed_at)),
                (r.record_source, r.record_message_id),
            )
            for r in rows
        ]

    async def all_observations(self, customer_id: str) -> list[TraitObservation]:
        rows = await self.conn.execute(
            text(
                "SELECT field, value, source, channel, observed_at FROM trait_values "
                "WHERE customer_id = :c"
            ),
            {"c": customer_id},
        )
        return [
            TraitObservation(r.field, r.value, Provenance(r.source, r.channel, r.observed_at))
            for r in rows
        ]

    async def replace_shown(
        self, customer_id: str, shown: dict[str, TraitObservation], names: NameIndex
    ) -> int:
        """Every shown value, name variant and name key anew (after a merge or split)."""
        row = (
            await self.conn.execute(
                text(
                    "UPDATE profiles SET shown = CAST(:shown AS jsonb), "
                    "name_variants = CAST(:variants AS jsonb), "
                    "name_keys = CAST(:keys AS text[]), updated_at = now(), "
                    "version = version + 1 WHERE customer_id = :c RETURNING version"
                ),
                {
                    "c": customer_id,
                    "shown": _shown_json(shown),
                    "variants": _variants_json(names.variants),
                    "keys": sorted(names.keys),
                },
            )
        ).one()
        return int(row[0])

    async def update_shown(
        self, customer_id: str, shown: dict[str, TraitObservation], names: NameIndex | None
    ) -> int:
        """The shown values of some fields; ``names``: the variants and keys of the name fields
        it covers, which replace theirs (the other name fields' stay)."""
        (row,) = await fetch_direct(self.conn, *_update_shown(customer_id, shown, names))
        return int(row.version)

    async def update_shown_many(self, updates: list[ShownUpdate]) -> list[int]:
        """``update_shown`` of each (customer, shown, names): distinct customers as one
        statement (``update_shown_set``), else one statement each in one round trip."""
        if not updates:
            return []
        customers = [u[0] for u in updates]
        if len(set(customers)) == len(customers):
            versions = await self.update_shown_set(updates)
            return [versions[c] for c in customers]
        answers = await fetch_direct_pipelined(self.conn, [_update_shown(*u) for u in updates])
        return [int(rows[0].version) for rows in answers]

    async def update_shown_set(self, updates: list[ShownUpdate]) -> dict[str, int]:
        """``update_shown`` of each (customer, shown, names) - distinct customers - as one
        statement; each one's new version. (A customer import's fold: 2,000 records' customers
        through ``update_shown_many`` were 41% of profile's samples in the fold, py-spy.)"""
        if not updates:
            return {}
        rows = shown_set_rows(updates)
        found = await fetch_direct(self.conn, _UPDATE_SHOWN_SET, {"rows": dump_json(rows)})
        return {str(r.customer_id): int(r.version) for r in found}

    def shown_json(self, shown: list[ShownUpdate]) -> str:
        """(customer, shown, names) rows as ``update_shown_set`` sends them: the JSON that
        ``ProfileEvents.lock_current_profiles`` makes new profiles with (``filled``)."""
        return dump_json(shown_set_rows(shown))

    async def versions(self, customer_ids: Iterable[str]) -> dict[str, int]:
        """The versions of several profiles in one query (a missing one: 0)."""
        ids = sorted(set(customer_ids))
        if not ids:
            return {}
        rows = await fetch_direct(
            self.conn,
            "SELECT customer_id, version FROM profiles "
            "WHERE customer_id = ANY(CAST(%(c)s AS uuid[]))",
            {"c": array_literal(ids)},
        )
        found = {str(r.customer_id): int(r.version) for r in rows}
        return {c: found.get(c, 0) for c in ids}

    async def version(self, customer_id: str) -> int:
        row = (
            await self.conn.execute(
                text("SELECT version FROM profiles WHERE customer_id = :c"), {"c": customer_id}
            )
        ).first()
        return 0 if row is None else int(row[0])

    async def load(self, customer_id: str) -> ProfileView | None:
        """The whole profile in one round trip (the read path of GetProfile)."""
        rows = await fetch_direct(self.conn, LOAD_PROFILE, {"c": customer_id})
        return _view_from_row(customer_id, rows[0]) if rows else None

    async def announced_many(self, customer_ids: list[str]) -> dict[str, AnnouncedProfile]:
        """What change announcements carry of several profiles, in one round trip; ids with no
        profile are left out."""
        if not customer_ids:
            return {}
        rows = await fetch_direct(self.conn, _ANNOUNCED_PROFILES, {"ids": customer_ids})
        return {
            str(r.customer_id): AnnouncedProfile(
                customer_id=str(r.customer_id),
                shown={name: raw["value"] for name, raw in r.shown.items()},
                identifier_types=tuple(r.id_types),
                sources=tuple(r.sources),
                created_at=r.created_at,
                updated_at=r.updated_at,
                version=int(r.version),
                metrics=metrics_from_json(r.metrics),
                consents=tuple(
                    Consent(ch, st, src, _time(at), basis) for ch, st, src, at, basis in r.consents
                ),
            )
            async for r in sliced(rows)
        }

    async def load_many(self, customer_ids: list[str]) -> dict[str, ProfileView]:
        """Several whole profiles in one round trip; ids with no profile are left out."""
        if not customer_ids:
            return {}
        rows = await fetch_direct(self.conn, LOAD_PROFILES, {"ids": customer_ids})
        return {str(r.customer_id): _view_from_row(str(r.customer_id), r) for r in rows}


# The name variants and keys of some name fields replaced (update_shown).
_REPLACE_NAMES = """
name_variants = coalesce((SELECT jsonb_agg(e) FROM jsonb_array_elements(name_variants) AS e
                          WHERE NOT (e ->> 'f') = ANY(CAST(%(fields)s AS text[]))), '[]')
    || CAST(%(variants)s AS jsonb),
name_keys = ARRAY(SELECT k FROM unnest(name_keys) AS k
                  WHERE NOT left(k, 2) = ANY(CAST(%(prefixes)s AS text[])))
    || CAST(%(keys)s AS text[]),
"""


# update_shown_set: _update_shown's statement for many customers (x.f is NULL for one whose
# name fields were not touched: its variants and keys stay).
_UPDATE_SHOWN_SET = """
UPDATE profiles p SET
    shown = p.shown || x.s,
    name_variants = CASE WHEN x.f IS NULL THEN p.name_variants ELSE
        coalesce((SELECT jsonb_agg(e) FROM jsonb_array_elements(p.name_variants) AS e
                  WHERE NOT (e ->> 'f') = ANY(x.f)), '[]') || x.v END,
    name_keys = CASE WHEN x.f IS NULL THEN p.name_keys ELSE
        ARRAY(SELECT k FROM unnest(p.name_keys) AS k WHERE NOT left(k, 2) = ANY(x.p)) || x.k END,
    updated_at = now(), version = p.version + 1
FROM jsonb_to_recordset(CAST(%(rows)s AS jsonb))
    AS x(c uuid, s jsonb, f text[], p text[], v jsonb, k text[])
WHERE p.customer_id = x.c
RETURNING CAST(p.customer_id AS text) AS customer_id, p.version
"""


def shown_set_rows(
    updates: list[ShownUpdate],
) -> list[dict[str, Any]]:
    """``_UPDATE_SHOWN_SET``'s rows, for ``dump_json``."""
    return [
        {
            "c": customer_id,
            "s": _shown_rows(shown),
            **(
                {}
                if names is None
                else {
                    "f": list(names.fields),
                    "p": sorted(names.prefixes),
                    "v": _variants_rows(names.variants),
                    "k": sorted(names.keys),
                }
            ),
        }
        for customer_id, shown, names in updates
    ]


def _variants_rows(variants: Iterable[NameVariant]) -> list[dict[str, Any]]:
    """The variants' JSON rows, for ``dump_json`` (times as ``json_time`` leaves them)."""
    return [
        {
            "f": v.field,
            "v": v.value,
            "s": v.latest.provenance.source,
            "ch": v.latest.provenance.channel,
            "at": json_time(v.latest.provenance.observed_at),
            "first": json_time(v.first_seen),
            "n": v.count,
        }
        for v in variants
    ]


def _variants_json(variants: Iterable[NameVariant]) -> str:
    return dump_json(_variants_rows(variants))


def _variant_from_json(raw: dict[str, Any]) -> NameVariant:
    latest = TraitObservation(raw["f"], raw["v"], Provenance(raw["s"], raw["ch"], _time(raw["at"])))
    return NameVariant(raw["f"], raw["v"], latest, _time(raw["first"]), int(raw["n"]))


def _view_from_row(customer_id: str, row: Any) -> ProfileView:
    shown = {name: _obs_from_json(name, raw) for name, raw in row.shown.items()}
    return ProfileView(
        customer_id=customer_id,
        shown=shown,
        identifiers=tuple(
            IdentifierObservation(t, v, n, Provenance(s, ch, _time(at)))
            for t, n, v, s, ch, at in row.identifiers
        ),
        sources=tuple(
            SourceSummary(src, ch, _time(first), _time(last), count)
            for src, ch, first, last, count in row.sources
        ),
        created_at=row.created_at,
        updated_at=row.updated_at,
        version=int(row.version),
        metrics=metrics_from_json(row.metrics),
        consents=tuple(
            Consent(ch, st, src, _time(at), basis) for ch, st, src, at, basis in row.consents
        ),
        # By field in NAME_FIELDS' order, as the proto documents (the stored array is in the
        # order the fields were last written, which depends on how records were batched).
        name_variants=tuple(
            sorted(
                (_variant_from_json(v) for v in row.name_variants),
                key=lambda v: _NAME_ORDER.get(v.field, len(_NAME_ORDER)),
            )
        ),
    )


# Run past SQLAlchemy (fetch_direct): the read path of GetProfile, psycopg parameters.
LOAD_PROFILE = """
SELECT p.shown, p.metrics, p.created_at, p.updated_at, p.version, p.name_variants,
  (SELECT coalesce(jsonb_agg(jsonb_build_array(i.id_type, i.namespace, i.value, i.source,
                                               i.channel, i.observed_at)
                             ORDER BY i.id_type, i.value), '[]')
     FROM profile_identifiers i WHERE i.customer_id = p.customer_id) AS identifiers,
  (SELECT coalesce(jsonb_agg(jsonb_build_array(s.source, s.channel, s.first_seen, s.last_seen,
                                               s.record_count)
                             ORDER BY s.first_seen, s.source), '[]')
     FROM profile_sources s WHERE s.customer_id = p.customer_id) AS sources,
  (SELECT coalesce(jsonb_agg(jsonb_build_array(c.channel, c.status, c.source, c.at,
                                               c.legal_basis) ORDER BY c.channel), '[]')
     FROM consents c WHERE c.customer_id = p.customer_id) AS consents
FROM profiles p WHERE p.customer_id = %(c)s
"""
LOAD_PROFILES = LOAD_PROFILE.replace(
    "SELECT p.shown,", "SELECT p.customer_id, p.shown,", 1
).replace("WHERE p.customer_id = %(c)s", "WHERE p.customer_id = ANY(CAST(%(ids)s AS uuid[]))")

# announced_many: LOAD_PROFILES but for identifier values, provenance, source times and name
# variants (the identifier types by the (customer_id, id_type, ...) key's index).
_ANNOUNCED_PROFILES = """
SELECT p.customer_id, p.shown, p.metrics, p.created_at, p.updated_at, p.version,
  ARRAY(SELECT DISTINCT i.id_type FROM profile_identifiers i
        WHERE i.customer_id = p.customer_id ORDER BY 1) AS id_types,
  ARRAY(SELECT s.source FROM profile_sources s
        WHERE s.customer_id = p.customer_id ORDER BY 1) AS sources,
  (SELECT coalesce(jsonb_agg(jsonb_build_array(c.channel, c.status, c.source, c.at,
                                               c.legal_basis) ORDER BY c.channel), '[]')
     FROM consents c WHERE c.customer_id = p.customer_id) AS consents
FROM profiles p WHERE p.customer_id = ANY(CAST(%(ids)s AS uuid[]))
"""


def _time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


class ProfileStore:
    def __init__(self, engine: AsyncEngine, read_engine: AsyncEngine | None = None) -> None:
        self.engine = engine
        self.read_engine = read_engine or engine

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[ProfileTransaction]:
        async with self.engine.begin() as conn:
            yield ProfileTransaction(conn)

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[ProfileTransaction]:
        """For single-statement reads: autocommit, no BEGIN/COMMIT round trips."""
        async with self.read_engine.connect() as conn:
            yield ProfileTransaction(conn)
