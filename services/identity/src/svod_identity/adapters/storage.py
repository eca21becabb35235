"""The only module that touches the ``identity`` schema."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from svod_identity.adapters.apply_columns import ApplyColumns
from svod_identity.adapters.encoding import (
    KEYS_TABLE,
    ints,
    key_rows,
    known_record_of,
    to_json,
)
from svod_identity.adapters.state_rows import (
    BatchRows,
    CustomerRows,
    HeldIdentifier,
    decode_batch_rows,
    decode_customer_rows,
    known_customers,
)
from svod_identity.domain.candidates import (
    CONTACT_KEY_PREFIXES,
    LONE_KEY_MAX_BLOCK,
    candidate_search,
    candidates_to_load,
)
from svod_identity.domain.engine import (
    MAX_CHECK_RECORDS,
    Changes,
    GraphState,
    KnownRecord,
)
from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.ledger import (
    APART_KINDS,
    HUMAN_MERGE_KINDS,
    PLACEMENT_KINDS,
    LedgerKind,
    merge_reason,
)
from svod_identity.domain.matching.blocking import MAX_BLOCK_SIZE
from svod_identity.domain.matching.model import MatchModel
from svod_identity.domain.model import (
    CustomerView,
    IncomingRecord,
    Owner,
    RecordRef,
    new_customer_id,
)
from svod_identity.domain.review import ReviewState, SideRecord
from svod_identity.domain.rules import Rules
from svod_runtime.db import (
    array_literal,
    direct_statement,
    fetch_direct,
    fetch_direct_pipelined,
)
from svod_runtime.erasure import scrub_outbox
from svod_runtime.outbox import enqueue
from svod_runtime.transactions import run_in_transaction

SYSTEM_ACTOR = "svod-identity"
# Outbox topic reporting suspected duplicates and blocked identifiers to the quality service.
QUALITY_TOPIC = "quality.duplicates"

T = TypeVar("T")


_LOAD_STATE = direct_statement(
    f"""
WITH refs AS (
    SELECT r.record_pk FROM records r
    JOIN jsonb_to_recordset(CAST(:refs AS jsonb)) AS x(s text, m text)
      ON r.source = x.s AND r.message_id = x.m
), owned AS (
    SELECT DISTINCT y.i FROM unnest(CAST(:ki AS int[]), CAST(:kt AS text[]),
        CAST(:kn AS text[]), CAST(:kv AS text[])) AS y(i, t, n, v)
    JOIN identifiers i ON i.id_type = y.t AND i.namespace = y.n
        AND i.value = y.v
    WHERE NOT EXISTS (
        SELECT 1 FROM blocked_identifiers bl
        WHERE bl.id_type = y.t AND bl.namespace = y.n AND bl.value = y.v
    )
), wanted AS (
    SELECT DISTINCT z.i, z.key
    FROM unnest(CAST(:bi AS int[]), CAST(:bk AS text[])) AS z(i, key)
    WHERE z.i NOT IN (SELECT i FROM owned) OR z.i = ANY(CAST(:force AS int[]))
), wanted_keys AS (
    SELECT DISTINCT key FROM wanted
), b AS (
    SELECT k.key, x.record_pk FROM wanted_keys AS k
    CROSS JOIN LATERAL (
        SELECT record_pk FROM blocking_keys WHERE key = k.key
        ORDER BY record_pk DESC LIMIT :cap
    ) x
), sizes AS (
    SELECT key, count(*) AS n FROM b GROUP BY key
), worth AS (
    -- Meta-blocking (domain/candidates.py): rows only for candidates sharing
    -- two keys, a contact key or a small block with some record of the batch.
    SELECT b.record_pk FROM wanted w JOIN b USING (key) JOIN sizes s USING (key)
    WHERE s.n <= :max
    GROUP BY w.i, b.record_pk
    HAVING count(*) >= 2 OR min(s.n) <= :lone
        OR bool_or(left(w.key, 2) = ANY(CAST(:contact AS text[])))
), loaded AS (
    SELECT record_pk FROM refs UNION SELECT record_pk FROM worth
)
-- One row per fetched key: its stored block's size (up to the cap) and those of its members
-- whose rows come below; the others are never compared, only counted.
SELECT 'b' AS kind, k.key AS t1, NULL AS t2, NULL AS t3, count(b.record_pk) AS pk,
       NULL::uuid AS c,
       coalesce(jsonb_agg(l.record_pk) FILTER (WHERE l.record_pk IS NOT NULL), '[]') AS j1,
       NULL::jsonb AS j2, false AS f
FROM wanted_keys k LEFT JOIN b ON b.key = k.key
LEFT JOIN loaded l ON l.record_pk = b.record_pk
GROUP BY k.key
UNION ALL
SELECT 'r', r.source, r.message_id, NULL, r.record_pk, r.customer_id,
       r.identifiers, r.attributes, r.record_pk IN (SELECT record_pk FROM refs)
FROM records r
WHERE r.record_pk = ANY(ARRAY(SELECT record_pk FROM loaded))
UNION ALL
SELECT 'x', bl.id_type, bl.namespace, bl.value, NULL, NULL, to_jsonb(bl.reason),
       NULL, false
FROM blocked_identifiers bl
JOIN {KEYS_TABLE} ON bl.id_type = x.t AND bl.namespace = x.n AND bl.value = x.v
UNION ALL
SELECT 'p', NULL, NULL, NULL, NULL, NULL,
       (SELECT jsonb_agg(nextval('records_record_pk_seq')) FROM generate_series(1, :n)),
       NULL, false
UNION ALL
SELECT DISTINCT 'o', NULL, NULL, NULL, NULL::bigint, i.customer_id, NULL::jsonb, NULL::jsonb,
       false
FROM identifiers i
JOIN {KEYS_TABLE} ON i.id_type = x.t AND i.namespace = x.n AND i.value = x.v
"""
)


_IDENTIFIER_FACTS = direct_statement(
    f"""
SELECT x.t, x.n, x.v, i.customer_id AS c, i.sharers, bl.reason
FROM {KEYS_TABLE}
LEFT JOIN identifiers i ON i.id_type = x.t AND i.namespace = x.n AND i.value = x.v
LEFT JOIN blocked_identifiers bl ON bl.id_type = x.t AND bl.namespace = x.n AND bl.value = x.v
WHERE i.customer_id IS NOT NULL OR bl.reason IS NOT NULL
"""
)


_LOCK_OWNERS = direct_statement(
    f"""
WITH o AS (
    SELECT i.customer_id FROM identifiers i
    JOIN {KEYS_TABLE} ON i.id_type = x.t AND i.namespace = x.n AND i.value = x.v
    UNION SELECT unnest(CAST(:c AS uuid[]))
)
SELECT customer_id FROM customers
WHERE customer_id = ANY(ARRAY(SELECT * FROM o))
ORDER BY customer_id FOR UPDATE
"""
)


_LOAD_CUSTOMERS = direct_statement(
    f"""
SELECT 'o' AS kind, i.id_type AS t1, i.namespace AS t2, i.value AS t3,
       NULL::bigint AS pk, i.customer_id AS c, NULL::uuid AS c2,
       NULL::timestamptz AS at, i.sharers AS j1, NULL::jsonb AS j2
FROM identifiers i
JOIN {KEYS_TABLE} ON i.id_type = x.t AND i.namespace = x.n AND i.value = x.v
UNION ALL
SELECT 'm', NULL, NULL, NULL, record_pk, customer_id, NULL, NULL, NULL, NULL
FROM records WHERE record_pk = ANY(CAST(:cand AS bigint[]))
UNION ALL
SELECT 'c', NULL, NULL, NULL, NULL, customer_id, NULL, created_at, NULL, NULL
FROM customers WHERE customer_id = ANY(CAST(:ids AS uuid[]))
UNION ALL
SELECT 'r', r.source, r.message_id, NULL, r.record_pk, r.customer_id, NULL, NULL,
       CASE WHEN r.record_pk = ANY(CAST(:known AS bigint[])) THEN NULL
            ELSE r.identifiers END,
       CASE WHEN r.record_pk = ANY(CAST(:known AS bigint[])) THEN NULL
            ELSE r.attributes END
FROM unnest(CAST(:ids AS uuid[])) AS c(id) CROSS JOIN LATERAL (
    SELECT * FROM records WHERE customer_id = c.id
    ORDER BY record_pk DESC LIMIT {MAX_CHECK_RECORDS}
) r
UNION ALL
SELECT 'i', id_type, namespace, value, NULL, customer_id, NULL, NULL, NULL, NULL
FROM identifiers WHERE :limits AND customer_id = ANY(CAST(:ids AS uuid[]))
UNION ALL
SELECT 'k', NULL, NULL, NULL, NULL, customer_a, customer_b, NULL, NULL, NULL
FROM kept_apart
WHERE customer_a = ANY(CAST(:ids AS uuid[]))
   OR customer_b = ANY(CAST(:ids AS uuid[]))
"""
)


_APPLY = direct_statement(
    """
WITH new_customers AS (
    INSERT INTO customers (customer_id, created_at)
    SELECT * FROM unnest(CAST(:cid AS uuid[]), CAST(:cat AS timestamptz[]))
), new_records AS (
    INSERT INTO records (record_pk, source, message_id, customer_id, channel,
                         observed_at, identifiers, attributes, outcome,
                         rule, evidence)
    SELECT p, s, m, c, ch, at, CAST(ids AS jsonb), CAST(attrs AS jsonb), o,
           r, CAST(ev AS jsonb)
    FROM unnest(CAST(:p AS bigint[]), CAST(:s AS text[]),
                CAST(:m AS text[]), CAST(:c AS uuid[]),
                CAST(:ch AS text[]), CAST(:at AS timestamptz[]),
                CAST(:ids AS text[]), CAST(:attrs AS text[]),
                CAST(:o AS text[]), CAST(:r AS text[]),
                CAST(:ev AS text[]))
         AS x(p, s, m, c, ch, at, ids, attrs, o, r, ev)
), new_record_identifiers AS (
    INSERT INTO record_identifiers (id_type, namespace, value, record_pk)
    SELECT * FROM unnest(CAST(:rit AS text[]), CAST(:rin AS text[]),
                         CAST(:riv AS text[]), CAST(:rip AS bigint[]))
    ON CONFLICT DO NOTHING
), new_blocking_keys AS (
    INSERT INTO blocking_keys (key, record_pk)
    SELECT * FROM unnest(CAST(:bk AS text[]), CAST(:bp AS bigint[]))
    ON CONFLICT DO NOTHING
), new_identifiers AS (
    INSERT INTO identifiers (id_type, namespace, value, customer_id,
                             first_source, first_seen, last_seen)
    SELECT t, n, v, c, s, seen, last FROM unnest(
        CAST(:lt AS text[]), CAST(:ln AS text[]), CAST(:lv AS text[]),
        CAST(:lc AS uuid[]), CAST(:ls AS text[]),
        CAST(:lseen AS timestamptz[]), CAST(:llast AS timestamptz[]))
        AS x(t, n, v, c, s, seen, last)
    ON CONFLICT (id_type, namespace, value) DO NOTHING
), touched AS (
    UPDATE identifiers i SET last_seen = greatest(i.last_seen, x.seen)
    FROM unnest(CAST(:tt AS text[]), CAST(:tn AS text[]),
                CAST(:tv AS text[]), CAST(:tseen AS timestamptz[]))
         AS x(t, n, v, seen)
    WHERE i.id_type = x.t AND i.namespace = x.n AND i.value = x.v
), new_ledger AS (
    INSERT INTO ledger (kind, customer_id, source, message_id, detail, actor)
    SELECT k, c, s, m, CAST(d AS jsonb), :a FROM unnest(
        CAST(:gk AS text[]), CAST(:c AS uuid[]), CAST(:s AS text[]),
        CAST(:m AS text[]), CAST(:gd AS text[])) AS x(k, c, s, m, d)
)
SELECT 1
"""
)


_CONTACT_PREFIXES = array_literal(CONTACT_KEY_PREFIXES)
# Resolve statements are long and run with different parameters every time: Postgres planned
# each execution afresh (custom plans), which cost more than running it for one record
# (Postgres CPU per single Resolve at 200k customers 1.82/2.29 -> 1.50/1.55 ms with the plan
# kept; bulk chunks of 500 unchanged). Their plans are index look-ups whatever the values, so
# the plan made once per connection is kept, for the rest of the transaction only.
_GENERIC_PLANS = "SELECT set_config('plan_cache_mode', 'force_generic_plan', true)"
_LOCK = direct_statement(
    "SELECT count(pg_advisory_xact_lock(h)) FROM (SELECT DISTINCT "
    "hashtextextended(k, 0) AS h FROM unnest(CAST(:k AS text[])) AS k ORDER BY 1) s"
)
_LOCK_CUSTOMERS = direct_statement(
    "SELECT 1 FROM customers WHERE customer_id = ANY(CAST(:c AS uuid[])) "
    "ORDER BY customer_id FOR UPDATE"
)


@dataclass(frozen=True)
class Erasure:
    """What erasing a customer removed: its records (as refs), how many identifiers, and the
    ids now erased (the customer and every id merged into it)."""

    refs: list[RecordRef]
    identifier_count: int
    customer_ids: list[str]
    # The identifier values (held only in memory, to scrub them from the outbox).
    values: list[str]


def _fill_batch_state(state: GraphState, rows: BatchRows) -> dict[int, KnownRecord]:
    """Fills ``state`` from the batch statement's rows; returns the candidates fetched."""
    state.fetched_keys = set()
    for block in rows.blocks:
        state.blocks[block.key] = block.loaded
        state.fetched_keys.add(block.key)
        if block.stored_size > len(block.loaded):
            state.unlisted[block.key] = block.stored_size - len(block.loaded)
    candidates: dict[int, KnownRecord] = {}
    for fetched in rows.records:
        known = fetched.record
        if fetched.of_batch:
            state.records[known.pk] = known
            state.resolved[known.ref] = known.pk
        else:
            candidates[known.pk] = known
    for blocked in rows.blocked:
        state.blocked[blocked.key] = blocked.reason
    state.free_pks.extend(rows.free_pks)
    return candidates


def _read_customers(
    state: GraphState,
    customer_ids: set[str],
    candidates: dict[int, KnownRecord],
    rows: CustomerRows,
) -> tuple[set[str], list[HeldIdentifier]]:
    """Fills ``state`` from the customers statement's rows when every customer they name is in
    ``customer_ids`` (locked); returns the customers that must be locked and the identifiers'
    holders. ``candidates`` are brought up to date either way: moved to their customer now,
    dropped when gone (erased meanwhile)."""
    loaded: dict[int, KnownRecord] = {}
    for row in rows.records:
        if row.record is not None:
            loaded[row.pk] = row.record
            continue
        known = candidates.get(row.pk) or state.records.get(row.pk)
        if known is not None:
            loaded[row.pk] = replace(known, customer_id=row.customer_id)
    now_of = rows.candidates_now
    for pk in list(candidates):
        if pk in now_of:
            if candidates[pk].customer_id != now_of[pk]:
                candidates[pk] = replace(candidates[pk], customer_id=now_of[pk])
        else:
            candidates.pop(pk)
    wanted = {held.customer_id for held in rows.held} | set(now_of.values())
    if not wanted <= customer_ids:
        return wanted, rows.held
    state.customers = known_customers(rows)
    state.records.update(candidates)
    state.records.update(loaded)
    for pk in sorted(state.records):
        customer = state.customers.get(state.records[pk].customer_id)
        if customer is not None:
            customer.records.append(pk)
    for owned in rows.identifiers:
        state.customers[owned.customer_id].keys.add(owned.key)
    state.kept_apart = rows.kept_apart
    return wanted, rows.held


class IdentityTransaction:
    """Repository operations inside one database transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    @staticmethod
    def _lock(lock_keys: Iterable[str]) -> list[tuple[str, dict[str, Any]]]:
        """The statement serialising work on the same identifiers and records (none for no
        keys), to run before the reads it guards.

        Locks are taken in the order of their hashes, the same order in every transaction, so
        two transactions cannot deadlock on them. This is what keeps parallel resolves carrying
        one new identifier from creating two customers: the second waits, then sees the first
        one's customer.
        """
        keys = sorted(set(lock_keys))
        return [(_LOCK, {"k": array_literal(keys)})] if keys else []

    async def lock_customers(self, customer_ids: Iterable[str]) -> None:
        """Row locks on customers about to gain identifiers or be merged (sorted: no deadlock)."""
        ids = sorted(set(customer_ids))
        if ids:
            await fetch_direct(self.conn, _LOCK_CUSTOMERS, {"c": array_literal(ids)})

    async def announce(self, topic: str, key: str, payload: bytes) -> None:
        await enqueue(self.conn, topic, key, payload)

    # -- rules and models ----------------------------------------------------------------

    async def current_rules(self) -> tuple[int, dict[str, Any], dt.datetime, str] | None:
        row = (
            await self.conn.execute(
                text(
                    "SELECT version, body, created_at, actor FROM rules ORDER BY version DESC "
                    "LIMIT 1"
                )
            )
        ).first()
        return None if row is None else (int(row[0]), dict(row[1]), row[2], row[3])

    async def store_rules(self, version: int, body: dict[str, Any], actor: str) -> dt.datetime:
        row = await self.conn.execute(
            text(
                "INSERT INTO rules (version, body, actor) VALUES (:v, CAST(:b AS jsonb), :a) "
                "RETURNING created_at"
            ),
            {"v": version, "b": to_json(body), "a": actor},
        )
        return row.scalar_one()

    async def lock_rules(self) -> None:
        await self.conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended('rules', 0))"))

    async def current_model(self) -> tuple[int, dict[str, Any], int, dt.datetime, str] | None:
        row = (
            await self.conn.execute(
                text(
                    "SELECT version, body, trained_pairs, created_at, actor FROM match_models "
                    "ORDER BY version DESC LIMIT 1"
                )
            )
        ).first()
        return None if row is None else (int(row[0]), dict(row[1]), int(row[2]), row[3], row[4])

    async def store_model(
        self, body: dict[str, Any], pairs: int, actor: str
    ) -> tuple[int, dt.datetime]:
        row = (
            await self.conn.execute(
                text(
                    "INSERT INTO match_models (body, trained_pairs, actor) "
                    "VALUES (CAST(:b AS jsonb), :p, :a) RETURNING version, created_at"
                ),
                {"b": to_json(body), "p": pairs, "a": actor},
            )
        ).one()
        return int(row[0]), row[1]

    async def sample_candidate_pairs(self, max_pairs: int) -> list[tuple[KnownRecord, KnownRecord]]:
        """Record pairs sharing a blocking key (blocks up to MAX_BLOCK_SIZE), sampled."""
        rows = await self.conn.execute(
            text(
                """
                WITH blocks AS (
                    SELECT key, array_agg(record_pk) AS members FROM blocking_keys
                    GROUP BY key HAVING count(*) BETWEEN 2 AND :cap
                ), pairs AS (
                    SELECT DISTINCT a.pk AS a, b.pk AS b
                    FROM blocks, unnest(members) AS a(pk), unnest(members) AS b(pk)
                    WHERE a.pk < b.pk
                )
                SELECT a, b FROM pairs ORDER BY md5(a::text || '/' || b::text) LIMIT :n
                """
            ),
            {"cap": MAX_BLOCK_SIZE, "n": max_pairs},
        )
        pairs = [(int(r[0]), int(r[1])) for r in rows]
        records = await self.records_by_pk({pk for pair in pairs for pk in pair})
        return [(records[a], records[b]) for a, b in pairs if a in records and b in records]

    # -- resolution ------------------------------------------------------------------------

    async def _owners_rows(self, keys: Sequence[IdentifierKey]) -> list[Any]:
        if not keys:
            return []
        result = await self.conn.execute(
            text(
                f"""
                SELECT i.id_type, i.namespace, i.value, i.customer_id, i.sharers
                FROM identifiers i JOIN {KEYS_TABLE}
                  ON i.id_type = x.t AND i.namespace = x.n AND i.value = x.v
                """
            ),
            {"keys": key_rows(keys)},
        )
        return list(result)

    async def records_by_pk(self, pks: Iterable[int]) -> dict[int, KnownRecord]:
        pks = sorted(set(pks))
        if not pks:
            return {}
        rows = await self.conn.execute(
            text(
                "SELECT record_pk, source, message_id, customer_id, identifiers, attributes "
                "FROM records WHERE record_pk = ANY(CAST(:p AS bigint[]))"
            ),
            {"p": pks},
        )
        return {r.record_pk: known_record_of(r) for r in rows}

    async def load_state(
        self,
        records: Sequence[IncomingRecord],
        rules: Rules,
        *,
        fuzzy: bool = True,
        candidates_for: Iterable[RecordRef] | None = None,
        model: MatchModel | None = None,
        lock_keys: Iterable[str] = (),
    ) -> GraphState:
        """The part of the graph a batch of records can touch, with its customers row-locked.

        ``lock_keys`` are locked first (see ``_lock``), in the same round trip as the first
        read: the statements still run one after the other, so the read sees what the lock's
        previous holder committed.

        Three statements in two round trips in the usual case, whatever the batch size: (1) the
        records already resolved, the blocking-key candidates with their rows, blocked
        identifiers, the identifiers' owners and record pks for the new rows; then, together,
        (2) row locks on the customers owning the identifiers or the candidates, and (3) after
        the locks, the owners and the candidates' customers again (a merge or split may have
        committed while waiting) with everything the engine needs about the customers (1)
        named. Should (2) lock other customers than (1) named, or (3) find one not yet locked,
        it is locked and (3) re-run.

        Candidates are fetched only for records none of whose linkable identifiers has an owner
        (the others link exactly) and for the records in ``candidates_for``;
        ``state.fetched_keys`` says which blocking keys were fetched, so the engine can tell
        when it lacks some (see ``Resolver.incomplete``). Rows come only for candidates worth
        comparing (``domain/candidates.py``). With ``model``, candidates that score as someone
        new against every record they share a key with are dropped before their customers are
        locked and loaded (``worth_loading``).
        """
        state = GraphState()
        refs = sorted({r.ref for r in records}, key=lambda r: (r.source, r.message_id))
        keys = sorted({k for r in records for k in r.identifiers})
        search = candidate_search(records, rules, fuzzy=fuzzy, candidates_for=candidates_for or ())
        linkable = [key for _, key in search.linkable]
        *_, rows = await fetch_direct_pipelined(
            self.conn,
            [
                (_GENERIC_PLANS, None),
                *self._lock(lock_keys),
                (
                    _LOAD_STATE,
                    {
                        "refs": to_json([{"s": r.source, "m": r.message_id} for r in refs]),
                        "ki": ints(index for index, _ in search.linkable),
                        "kt": array_literal(k.type for k in linkable),
                        "kn": array_literal(k.namespace for k in linkable),
                        "kv": array_literal(k.value for k in linkable),
                        "bi": ints(index for index, _ in search.blocking),
                        "bk": array_literal(key for _, key in search.blocking),
                        "force": ints(search.forced),
                        "cap": MAX_BLOCK_SIZE + 1,
                        "max": MAX_BLOCK_SIZE,
                        "lone": LONE_KEY_MAX_BLOCK,
                        "contact": _CONTACT_PREFIXES,
                        "keys": key_rows(keys),
                        "n": len(records),
                    },
                ),
            ],
        )
        batch = decode_batch_rows(rows)
        fetched = _fill_batch_state(state, batch)
        candidates = candidates_to_load(records, state, fetched, rules, model)
        owners = batch.holders
        also = {c.customer_id for c in candidates.values()}
        if keys or also:
            # The customers to lock are known from the read above unless a merge or split
            # commits meanwhile: their data is read in the same round trip as the locks, and
            # read again only when the locks ended up on other customers.
            expected = owners | also
            lock_rows, customer_rows = await fetch_direct_pipelined(
                self.conn,
                [
                    (_LOCK_OWNERS, {"keys": key_rows(keys), "c": array_literal(sorted(also))}),
                    self._customers_statement(state, keys, expected, candidates, rules),
                ],
            )
            locked = {str(r.customer_id) for r in lock_rows}
        else:
            locked, expected, customer_rows = set(), set(), []
        rows_for = expected  # the customers whose data ``customer_rows`` hold
        while True:
            if rows_for == locked:
                wanted, held_rows = _read_customers(
                    state, locked, candidates, decode_customer_rows(customer_rows)
                )
                if wanted <= locked:
                    break
                await self.lock_customers(wanted - locked)
                locked |= wanted
            statement, params = self._customers_statement(state, keys, locked, candidates, rules)
            customer_rows = await fetch_direct(self.conn, statement, params)
            rows_for = set(locked)
        for held in held_rows:
            state.owners[held.key] = held.customer_id
            if held.sharers:
                state.sharers[held.key] = set(held.sharers)
        return state

    @staticmethod
    def _customers_statement(
        state: GraphState,
        keys: Sequence[IdentifierKey],
        customer_ids: set[str],
        candidates: dict[int, KnownRecord],
        rules: Rules,
    ) -> tuple[str, dict[str, Any]]:
        """One statement reading the owners of ``keys``, the candidates' customers and the
        data of ``customer_ids`` (locked by then) the engine needs."""
        limits = any(r.max_values_per_customer > 0 for r in rules.identifier_rules)
        known = sorted(set(candidates) | set(state.records))
        return _LOAD_CUSTOMERS, {
            "keys": key_rows(keys),
            "cand": array_literal(map(str, sorted(candidates))),
            "ids": array_literal(sorted(customer_ids)),
            "known": array_literal(map(str, known)),
            "limits": limits,
        }

    async def apply(self, changes: Changes, free_pks: Sequence[int] = ()) -> dict[int, int]:
        """Writes what the engine decided; returns engine record pk -> stored record pk.

        New customers, records, their identifiers and blocking keys, newly owned identifiers,
        last-seen times and the ledger entries go in one statement; merges, review items and
        blocklist entries (rare) follow. ``free_pks`` are record pks allocated beforehand.
        """
        conn = self.conn
        pks: dict[int, int] = {}
        recs = changes.records
        pool = list(free_pks)
        if len(pool) < len(recs):
            allocated = await fetch_direct(
                conn,
                "SELECT nextval('records_record_pk_seq') FROM generate_series(1, %(n)s)",
                {"n": len(recs) - len(pool)},
            )
            pool += [int(pk) for (pk,) in allocated]
        for n, pk in zip(recs, pool, strict=False):
            pks[n.pk] = pk
        for n in recs:
            if n.evidence.get("record_pk", 0) < 0:
                n.evidence["record_pk"] = pks[n.evidence["record_pk"]]
        columns = ApplyColumns.of(changes, pks)
        if not columns.is_empty():
            await fetch_direct(conn, _APPLY, columns.params(SYSTEM_ACTOR))
        for key, sharers in changes.sharers.items():
            await conn.execute(
                text(
                    "UPDATE identifiers SET sharers = sharers || CAST(:s AS jsonb) "
                    "WHERE id_type = :t AND namespace = :n AND value = :v"
                ),
                {"s": to_json(sorted(sharers)), "t": key.type, "n": key.namespace, "v": key.value},
            )
        for key, reason, people in changes.blocked:
            inserted = await conn.execute(
                text(
                    "INSERT INTO blocked_identifiers (id_type, namespace, value, reason, "
                    "people_count) VALUES (:t, :n, :v, :r, :p) ON CONFLICT DO NOTHING"
                ),
                {"t": key.type, "n": key.namespace, "v": key.value, "r": reason, "p": people},
            )
            if inserted.rowcount:
                await self.report_quality(blocked=[key])
        # Merges after the records' ledger entries, in the order made.
        for merge in changes.merges:
            await self.merge_customers(merge.survivor, merge.merged)
            record_pk = pks.get(merge.record_pk or 0)
            await self.record_merge(
                merge.survivor,
                merge.merged,
                kind=LedgerKind.CUSTOMERS_MERGED,
                ref=merge.ref,
                detail={"rule": merge.rule, "record_pk": record_pk},
                reason=merge_reason(merge.ref),
            )
        if changes.reviews:
            reviews = changes.reviews
            await conn.execute(
                text(
                    """
                    INSERT INTO review_items (review_item_id, record_pk, candidate_record_pk,
                        candidate_customer_id, score, probability, explanation)
                    SELECT i, p, cp, c, s, pr, CAST(e AS jsonb) FROM unnest(
                        CAST(:i AS uuid[]), CAST(:p AS bigint[]), CAST(:cp AS bigint[]),
                        CAST(:c AS uuid[]), CAST(:s AS float8[]), CAST(:pr AS float8[]),
                        CAST(:e AS text[])) AS x(i, p, cp, c, s, pr, e)
                    """
                ),
                {
                    "i": [r.review_item_id for r in reviews],
                    "p": [pks.get(r.record_pk, r.record_pk) for r in reviews],
                    "cp": [pks.get(r.candidate_record_pk, r.candidate_record_pk) for r in reviews],
                    "c": [r.candidate_customer_id for r in reviews],
                    "s": [r.score for r in reviews],
                    "pr": [r.probability for r in reviews],
                    "e": [to_json(r.explanation) for r in reviews],
                },
            )
            customer_of = {n.pk: n.customer_id for n in changes.records}
            await self.report_quality(
                pairs=[
                    (customer_of.get(r.record_pk, ""), r.candidate_customer_id, r.probability)
                    for r in reviews
                ]
            )
        return pks

    async def report_quality(
        self,
        *,
        pairs: Sequence[tuple[str, str, float]] = (),
        resolved: Sequence[tuple[str, str]] = (),
        blocked: Sequence[IdentifierKey] = (),
    ) -> None:
        payload = {
            "at": dt.datetime.now(dt.UTC).isoformat(),
            "pairs": [list(p) for p in pairs if p[0] and p[1]],
            "resolved": [list(p) for p in resolved],
            "blocked": [[k.type, k.namespace, k.value] for k in blocked],
        }
        if payload["pairs"] or payload["resolved"] or payload["blocked"]:
            await enqueue(self.conn, QUALITY_TOPIC, str(uuid.uuid4()), to_json(payload).encode())

    # -- merges, splits ----------------------------------------------------------------------

    async def merge_customers(self, survivor: str, merged: Sequence[str]) -> None:
        """Moves everything of the merged customers to the survivor; their ids become aliases."""
        params = {"s": survivor, "m": list(merged)}
        for statement in (
            "UPDATE customers SET merged_into = :s WHERE customer_id = ANY(CAST(:m AS uuid[])) "
            "OR merged_into = ANY(CAST(:m AS uuid[]))",
            "UPDATE identifiers SET customer_id = :s WHERE customer_id = ANY(CAST(:m AS uuid[]))",
            "UPDATE records SET customer_id = :s WHERE customer_id = ANY(CAST(:m AS uuid[]))",
        ):
            await self.conn.execute(text(statement), params)

    async def record_merge(
        self,
        survivor: str,
        merged: Sequence[str],
        *,
        kind: LedgerKind,
        ref: RecordRef | None = None,
        detail: dict[str, Any] | None = None,
        actor: str = SYSTEM_ACTOR,
        reason: str = "",
    ) -> int:
        """Ledger entry and the announcement to profile (outbox) of one merge."""
        change_id = await self.append_ledger(
            kind,
            survivor,
            ref=ref,
            other_customer_id=merged[0],
            detail={"merged": list(merged), **(detail or {})},
            actor=actor,
            reason=reason,
        )
        await self.announce(
            MERGED_TOPIC,
            survivor,
            to_json(
                {"change_id": str(change_id), "survivor": survivor, "merged": list(merged)}
            ).encode(),
        )
        await self.report_quality(resolved=[(survivor, m) for m in merged])
        await self.announce_changed([survivor, *merged])
        return change_id

    async def announce_changed(self, customer_ids: Sequence[str], everything: bool = False) -> None:
        """Ingestion takes another look at events it holds for these customers (or all)."""
        payload = {"all": True} if everything else {"customer_ids": sorted(set(customer_ids))}
        await enqueue(self.conn, ATTRIBUTION_TOPIC, "changed", to_json(payload).encode())

    async def customer_records(self, customer_id: str) -> list[tuple[int, RecordRef]]:
        rows = await self.conn.execute(
            text(
                "SELECT record_pk, source, message_id FROM records WHERE customer_id = :c "
                "ORDER BY record_pk"
            ),
            {"c": customer_id},
        )
        return [(int(r[0]), RecordRef(r[1], r[2])) for r in rows]

    async def records_by_ref(self, refs: Sequence[RecordRef]) -> dict[RecordRef, tuple[int, str]]:
        if not refs:
            return {}
        rows = await self.conn.execute(
            text(
                """
                SELECT r.record_pk, r.source, r.message_id, r.customer_id FROM records r
                JOIN jsonb_to_recordset(CAST(:refs AS jsonb)) AS x(s text, m text)
                  ON r.source = x.s AND r.message_id = x.m
                """
            ),
            {"refs": to_json([{"s": r.source, "m": r.message_id} for r in refs])},
        )
        return {RecordRef(r[1], r[2]): (int(r[0]), str(r[3])) for r in rows}

    async def move_records(
        self, source: str, target: str, pks: Sequence[int]
    ) -> list[IdentifierKey]:
        """Moves records, and the identifiers only they carry, from ``source`` to ``target``."""
        await self.conn.execute(
            text("UPDATE records SET customer_id = :t WHERE record_pk = ANY(CAST(:p AS bigint[]))"),
            {"t": target, "p": list(pks)},
        )
        rows = await self.conn.execute(
            text(
                """
                UPDATE identifiers i SET customer_id = :t
                WHERE i.customer_id = :s
                  AND EXISTS (SELECT 1 FROM record_identifiers ri
                              WHERE ri.id_type = i.id_type AND ri.namespace = i.namespace
                                AND ri.value = i.value AND ri.record_pk = ANY(CAST(:p AS bigint[])))
                  AND NOT EXISTS (SELECT 1 FROM record_identifiers ri JOIN records r
                                    USING (record_pk)
                                  WHERE ri.id_type = i.id_type AND ri.namespace = i.namespace
                                    AND ri.value = i.value AND r.customer_id = :s)
                RETURNING i.id_type, i.namespace, i.value
                """
            ),
            {"t": target, "s": source, "p": list(pks)},
        )
        return sorted(IdentifierKey(r[0], r[2], r[1]) for r in rows)

    async def alias_tree(self, customer_id: str) -> dict[str, str]:
        """Every id merged (directly or not) into ``customer_id`` -> the id it was merged into."""
        rows = await self.conn.execute(
            text(
                """
                WITH RECURSIVE a(id, parent, depth) AS (
                    SELECT customer_id, merged_into, 0 FROM customers WHERE merged_into = :c
                    UNION ALL
                    SELECT c.customer_id, c.merged_into, a.depth + 1
                    FROM customers c JOIN a ON c.merged_into = a.id WHERE a.depth < 64
                )
                SELECT id, parent FROM a
                """
            ),
            {"c": customer_id},
        )
        return {str(r[0]): str(r[1]) for r in rows}

    async def first_placed_holdings(self, customer_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """For each id: where the records first placed under it (the ledger's record entries)
        are now, as current customer -> how many."""
        if not customer_ids:
            return {}
        rows = await self.conn.execute(
            text(
                """
                SELECT l.customer_id, r.customer_id AS now, count(*) AS n
                FROM ledger l JOIN records r ON r.source = l.source AND r.message_id = l.message_id
                WHERE l.customer_id = ANY(CAST(:c AS uuid[]))
                  AND l.kind = ANY(CAST(:k AS text[]))
                GROUP BY 1, 2
                """
            ),
            {"c": list(customer_ids), "k": [k.value for k in PLACEMENT_KINDS]},
        )
        holdings: dict[str, dict[str, int]] = defaultdict(dict)
        for row in rows:
            holdings[str(row[0])][str(row[1])] = int(row[2])
        return dict(holdings)

    async def point_aliases(self, sides: Mapping[str, str]) -> None:
        """Sets each merged-away id to answer for the given customer."""
        if not sides:
            return
        await self.conn.execute(
            text(
                "UPDATE customers c SET merged_into = x.t FROM unnest(CAST(:a AS uuid[]), "
                "CAST(:t AS uuid[])) AS x(a, t) WHERE c.customer_id = x.a"
            ),
            {"a": list(sides), "t": list(sides.values())},
        )

    async def share_left_identifiers(self, source: str, target: str, pks: Sequence[int]) -> int:
        """After a split: the identifiers ``source`` keeps that moved records carry too are
        shared with ``target`` (both sides' records carry them); returns how many."""
        result = await self.conn.execute(
            text(
                """
                UPDATE identifiers i SET sharers = i.sharers || to_jsonb(CAST(:t AS text))
                WHERE i.customer_id = :s AND NOT i.sharers ? CAST(:t AS text)
                  AND EXISTS (SELECT 1 FROM record_identifiers ri
                              WHERE ri.id_type = i.id_type AND ri.namespace = i.namespace
                                AND ri.value = i.value AND ri.record_pk = ANY(CAST(:p AS bigint[])))
                """
            ),
            {"t": target, "s": source, "p": list(pks)},
        )
        return int(result.rowcount or 0)

    async def keep_apart(self, a: str, b: str) -> None:
        first, second = sorted((a, b))
        await self.conn.execute(
            text(
                "INSERT INTO kept_apart (customer_a, customer_b) VALUES (:a, :b) "
                "ON CONFLICT DO NOTHING"
            ),
            {"a": first, "b": second},
        )

    async def customers_created(self, ids: Sequence[str]) -> dict[str, dt.datetime]:
        rows = await self.conn.execute(
            text(
                "SELECT customer_id, created_at FROM customers "
                "WHERE customer_id = ANY(CAST(:c AS uuid[]))"
            ),
            {"c": sorted(set(ids))},
        )
        return {str(r[0]): r[1] for r in rows}

    # -- review queue ----------------------------------------------------------------------

    async def review_items(
        self,
        limit: int,
        after: tuple[dt.datetime, str] | None,
        include_decided: bool,
        customer_ids: Sequence[str] = (),
    ) -> list[Any]:
        """A page of review items; with ``customer_ids``, only those about these customers."""
        where = [] if include_decided else ["v.state = :open"]
        params: dict[str, Any] = {"n": limit, "open": ReviewState.OPEN.value}
        if customer_ids:
            where.append(
                "(r.customer_id = ANY(CAST(:ids AS uuid[])) "
                "OR v.candidate_customer_id = ANY(CAST(:ids AS uuid[])))"
            )
            params["ids"] = list(customer_ids)
        if after is not None:
            where.append("(v.created_at, v.review_item_id) > (:at, CAST(:id AS uuid))")
            params |= {"at": after[0], "id": after[1]}
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        rows = await self.conn.execute(
            text(
                f"""
                SELECT v.review_item_id, v.candidate_customer_id, v.score, v.probability,
                       v.explanation, v.state, v.created_at, r.source, r.message_id,
                       r.customer_id AS record_customer_id, cr.source AS candidate_source,
                       cr.message_id AS candidate_message_id
                FROM review_items v JOIN records r USING (record_pk)
                LEFT JOIN records cr ON cr.record_pk = v.candidate_record_pk
                {clause}
                ORDER BY v.created_at, v.review_item_id LIMIT :n
                """
            ),
            params,
        )
        return list(rows)

    async def side_records(
        self, customer_ids: Sequence[str], limit: int
    ) -> tuple[dict[str, list[SideRecord]], dict[str, int]]:
        """Each customer's ``limit`` most recent records (newest first), and its record count."""
        ids = sorted(set(customer_ids))
        if not ids:
            return {}, {}
        rows = await self.conn.execute(
            text(
                """
                SELECT r.record_pk, r.source, r.message_id, r.customer_id, r.identifiers,
                       r.attributes
                FROM unnest(CAST(:c AS uuid[])) AS c(id) CROSS JOIN LATERAL (
                    SELECT * FROM records WHERE customer_id = c.id
                    ORDER BY record_pk DESC LIMIT :n
                ) r
                ORDER BY r.customer_id, r.record_pk DESC
                """
            ),
            {"c": ids, "n": limit},
        )
        records: dict[str, list[SideRecord]] = defaultdict(list)
        for row in rows:
            known = known_record_of(row)
            records[str(row.customer_id)].append(
                SideRecord(known.ref, dict(row.attributes or {}), known.identifiers, known.person)
            )
        counts = await self.conn.execute(
            text(
                "SELECT customer_id, count(*) FROM records "
                "WHERE customer_id = ANY(CAST(:c AS uuid[])) GROUP BY customer_id"
            ),
            {"c": ids},
        )
        return dict(records), {str(r[0]): int(r[1]) for r in counts}

    async def review_item(self, review_item_id: str) -> Any:
        return (
            await self.conn.execute(
                text(
                    """
                    SELECT v.review_item_id, v.state, v.candidate_customer_id, v.probability,
                           r.customer_id AS record_customer_id, r.source, r.message_id,
                           r.record_pk, v.candidate_record_pk
                    FROM review_items v JOIN records r USING (record_pk)
                    WHERE v.review_item_id = :i FOR UPDATE OF v
                    """
                ),
                {"i": review_item_id},
            )
        ).first()

    async def decide_review(
        self, review_item_id: str, state: ReviewState, actor: str, reason: str
    ) -> None:
        await self.conn.execute(
            text(
                "UPDATE review_items SET state = :s, decided_by = :a, decision_reason = :r, "
                "decided_at = now() WHERE review_item_id = :i"
            ),
            {"s": state.value, "a": actor, "r": reason, "i": review_item_id},
        )

    # -- blocklist, export ---------------------------------------------------------------

    async def blocked_identifiers(
        self, limit: int, after: tuple[dt.datetime, str, str, str] | None
    ) -> list[Any]:
        params: dict[str, Any] = {"n": limit}
        clause = ""
        if after is not None:
            clause = "WHERE (blocked_at, id_type, namespace, value) > (:at, :t, :ns, :v)"
            params |= {"at": after[0], "t": after[1], "ns": after[2], "v": after[3]}
        rows = await self.conn.execute(
            text(
                "SELECT id_type, namespace, value, reason, people_count, blocked_at "
                f"FROM blocked_identifiers {clause} "
                "ORDER BY blocked_at, id_type, namespace, value LIMIT :n"
            ),
            params,
        )
        return list(rows)

    async def mapping_page(self, after_pk: int, limit: int) -> list[Any]:
        rows = await self.conn.execute(
            text(
                "SELECT record_pk, source, message_id, customer_id, resolved_at, rule "
                "FROM records r WHERE record_pk > :a AND NOT EXISTS (SELECT 1 FROM customers c "
                "WHERE c.customer_id = r.customer_id AND c.erased_at IS NOT NULL) "
                "ORDER BY record_pk LIMIT :n"
            ),
            {"a": after_pk, "n": limit},
        )
        return list(rows)

    async def all_records(self, limit: int) -> list[tuple[KnownRecord, dt.datetime, str]]:
        """Every record (oldest first) with its customer's creation time and its rule."""
        rows = await self.conn.execute(
            text(
                """
                SELECT r.record_pk, r.source, r.message_id, r.customer_id, r.identifiers,
                       r.attributes, r.observed_at, r.channel
                FROM records r ORDER BY r.record_pk LIMIT :n
                """
            ),
            {"n": limit},
        )
        return [(known_record_of(r), r.observed_at, r.channel) for r in rows]

    async def raw_records(self, limit: int) -> list[Any]:
        rows = await self.conn.execute(
            text(
                "SELECT record_pk, source, message_id, customer_id, identifiers, attributes, "
                "observed_at, channel FROM records ORDER BY record_pk LIMIT :n"
            ),
            {"n": limit},
        )
        return list(rows)

    async def all_identifier_owners(self) -> dict[IdentifierKey, str]:
        """Every held identifier -> its holder (for PreviewRules, bounded by its record cap)."""
        rows = await self.conn.execute(
            text("SELECT id_type, namespace, value, customer_id FROM identifiers")
        )
        return {IdentifierKey(r[0], r[2], r[1]): str(r[3]) for r in rows}

    async def human_decisions(self) -> tuple[list[list[int]], list[frozenset[str]]]:
        """A person's decisions: the merges they made (manual merges, accepted reviews), each
        as one record of each side, and the customer pairs they kept apart."""
        merges: list[list[int]] = []
        rows = await self.conn.execute(
            text(
                "SELECT kind, detail FROM ledger WHERE kind = ANY(CAST(:k AS text[])) "
                "ORDER BY entry_id"
            ),
            {"k": [k.value for k in HUMAN_MERGE_KINDS]},
        )
        for kind, detail in rows:
            detail = detail or {}
            if kind == LedgerKind.MANUAL_MERGE:
                anchors = [pks[0] for pks in (detail.get("anchors") or {}).values() if pks]
            else:
                anchors = [p for p in detail.get("anchors_pair") or () if p]
            merges.append([int(pk) for pk in anchors])
        apart = await self.conn.execute(text("SELECT customer_a, customer_b FROM kept_apart"))
        return merges, [frozenset((str(a), str(b))) for a, b in apart]

    async def count_records(self) -> int:
        return int((await self.conn.execute(text("SELECT count(*) FROM records"))).scalar_one())

    # -- ledger ----------------------------------------------------------------------------

    async def ledger_page(
        self, customer_ids: Sequence[str] | None, kinds: Sequence[str], after: int, limit: int
    ) -> list[Any]:
        """Ledger entries after ``after``, oldest first: about these customers (as either side)
        when given, of these kinds when given."""
        where = ["entry_id > :a"]
        params: dict[str, Any] = {"a": after, "n": limit}
        if kinds:
            where.append("kind = ANY(:k)")
            params["k"] = list(kinds)
        if customer_ids is None:
            clause = " AND ".join(where)
            statement = f"SELECT * FROM ledger WHERE {clause} ORDER BY entry_id LIMIT :n"
        else:
            params["c"] = list(customer_ids)
            clause = " AND ".join(where)
            # Two index scans (customer, other side) merged: an OR would read the whole ledger.
            statement = f"""
                SELECT * FROM (
                    (SELECT * FROM ledger WHERE customer_id = ANY(CAST(:c AS uuid[]))
                         AND {clause} ORDER BY entry_id LIMIT :n)
                    UNION
                    (SELECT * FROM ledger WHERE other_customer_id = ANY(CAST(:c AS uuid[]))
                         AND {clause} ORDER BY entry_id LIMIT :n)
                ) e ORDER BY entry_id LIMIT :n
            """
        return list(await self.conn.execute(text(statement), params))

    async def alias_ids(self, customer_id: str) -> list[str]:
        """The customer and every id merged into it."""
        return [customer_id, *(await self.alias_tree(customer_id))]

    # -- explain ---------------------------------------------------------------------------

    async def explain_material(self, customer_id: str) -> dict[str, Any]:
        """A customer's records (with evidence), the identifiers each carries, and its ledger."""
        records = await self.conn.execute(
            text(
                "SELECT record_pk, source, message_id, evidence, rule, resolved_at "
                "FROM records WHERE customer_id = :c ORDER BY record_pk LIMIT 5000"
            ),
            {"c": customer_id},
        )
        carried = await self.conn.execute(
            text(
                """
                SELECT ri.record_pk, ri.id_type, ri.namespace, ri.value,
                       (i.customer_id = :c AND b.value IS NULL) AS linking
                FROM records r JOIN record_identifiers ri USING (record_pk)
                LEFT JOIN identifiers i USING (id_type, namespace, value)
                LEFT JOIN blocked_identifiers b USING (id_type, namespace, value)
                WHERE r.customer_id = :c
                """
            ),
            {"c": customer_id},
        )
        aliases = await self.conn.execute(
            text(
                "WITH RECURSIVE a(id) AS (SELECT CAST(:c AS uuid) UNION "
                "SELECT c.customer_id FROM customers c JOIN a ON c.merged_into = a.id) "
                "SELECT id FROM a"
            ),
            {"c": customer_id},
        )
        ids = [str(r[0]) for r in aliases]
        ledger = await self.conn.execute(
            text(
                "SELECT entry_id, at, kind, customer_id, other_customer_id, source, message_id, "
                "detail, actor, reason FROM ledger WHERE customer_id = ANY(CAST(:c AS uuid[])) "
                "AND kind <> ALL(CAST(:k AS text[])) ORDER BY entry_id"
            ),
            {"c": ids, "k": [k.value for k in PLACEMENT_KINDS]},
        )
        return {
            "records": list(records),
            "carried": list(carried),
            "ledger": list(ledger),
        }

    async def recent_records(self, customer_id: str, limit: int) -> list[KnownRecord]:
        """A customer's most recent records, newest first."""
        rows = await self.conn.execute(
            text(
                "SELECT record_pk, source, message_id, customer_id, identifiers, attributes "
                "FROM records WHERE customer_id = :c ORDER BY record_pk DESC LIMIT :n"
            ),
            {"c": customer_id, "n": limit},
        )
        return [known_record_of(r) for r in rows]

    async def decisions_between(self, side_a: Sequence[str], side_b: Sequence[str]) -> list[Any]:
        """A person's decisions keeping the two sides (each: a customer and its merged-away
        ids) apart: rejected reviews and splits, oldest first."""
        rows = await self.conn.execute(
            text(
                """
                SELECT kind, actor, reason, at FROM ledger
                WHERE kind = ANY(CAST(:k AS text[])) AND (
                    (customer_id = ANY(CAST(:a AS uuid[]))
                     AND other_customer_id = ANY(CAST(:b AS uuid[])))
                    OR (customer_id = ANY(CAST(:b AS uuid[]))
                        AND other_customer_id = ANY(CAST(:a AS uuid[]))))
                ORDER BY entry_id
                """
            ),
            {"a": list(side_a), "b": list(side_b), "k": [k.value for k in APART_KINDS]},
        )
        return list(rows)

    async def open_reviews_between(self, side_a: Sequence[str], side_b: Sequence[str]) -> list[Any]:
        """Open review items between the two sides (either way round)."""
        rows = await self.conn.execute(
            text(
                """
                SELECT v.probability, v.created_at, v.explanation FROM review_items v
                JOIN records r USING (record_pk)
                WHERE v.state = :open AND (
                    (r.customer_id = ANY(CAST(:a AS uuid[]))
                     AND v.candidate_customer_id = ANY(CAST(:b AS uuid[])))
                    OR (r.customer_id = ANY(CAST(:b AS uuid[]))
                        AND v.candidate_customer_id = ANY(CAST(:a AS uuid[]))))
                ORDER BY v.created_at
                """
            ),
            {"a": list(side_a), "b": list(side_b), "open": ReviewState.OPEN.value},
        )
        return list(rows)

    async def record_refs_by_pk(self, pks: Iterable[int]) -> dict[int, RecordRef]:
        pks = sorted(set(pks))
        if not pks:
            return {}
        rows = await self.conn.execute(
            text(
                "SELECT record_pk, source, message_id FROM records "
                "WHERE record_pk = ANY(CAST(:p AS bigint[]))"
            ),
            {"p": pks},
        )
        return {int(r[0]): RecordRef(r[1], r[2]) for r in rows}

    # -- the original operations -------------------------------------------------------------

    async def record_customer(self, ref: RecordRef) -> str | None:
        row = (
            await self.conn.execute(
                text("SELECT customer_id FROM records WHERE source = :s AND message_id = :m"),
                {"s": ref.source, "m": ref.message_id},
            )
        ).first()
        return None if row is None else await self.canonical_id(str(row[0]))

    async def identifier_facts(
        self, keys: Sequence[IdentifierKey]
    ) -> dict[IdentifierKey, tuple[str | None, list[str], str | None]]:
        """(holder, customers recorded as sharing it, stored block reason) of each key that is
        held or on the stored blocklist, in one statement; the others are left out."""
        if not keys:
            return {}
        rows = await fetch_direct(
            self.conn,
            _IDENTIFIER_FACTS,
            {"keys": key_rows(keys)},
        )
        return {
            IdentifierKey(r.t, r.v, r.n): (
                None if r.c is None else str(r.c),
                [str(s) for s in r.sharers or ()],
                r.reason,
            )
            for r in rows
        }

    async def current_ids(self, customer_ids: Iterable[str]) -> dict[str, str]:
        """Each known id -> its current id (following merges); unknown ids are left out."""
        ids = sorted(set(customer_ids))
        if not ids:
            return {}
        rows = await self.conn.execute(
            text(
                """
                WITH RECURSIVE chain(start, id, next, depth) AS (
                    SELECT customer_id, customer_id, merged_into, 0 FROM customers
                    WHERE customer_id = ANY(CAST(:c AS uuid[]))
                    UNION ALL
                    SELECT chain.start, c.customer_id, c.merged_into, chain.depth + 1
                    FROM customers c JOIN chain ON c.customer_id = chain.next
                    WHERE chain.depth < 64
                )
                SELECT start, id FROM chain WHERE next IS NULL
                """
            ),
            {"c": ids},
        )
        return {str(r[0]): str(r[1]) for r in rows}

    async def owners(self, keys: Sequence[IdentifierKey]) -> dict[IdentifierKey, Owner]:
        if not keys:
            return {}
        rows = await self.conn.execute(
            text(
                f"""
                SELECT i.id_type, i.namespace, i.value, i.customer_id, c.created_at
                FROM identifiers i JOIN customers c USING (customer_id)
                JOIN {KEYS_TABLE} ON i.id_type = x.t AND i.namespace = x.n AND i.value = x.v
                """
            ),
            {"keys": key_rows(keys)},
        )
        return {
            IdentifierKey(r.id_type, r.value, r.namespace): Owner(str(r.customer_id), r.created_at)
            for r in rows
        }

    async def create_customer(self) -> str:
        customer_id = new_customer_id()
        await self.conn.execute(
            text("INSERT INTO customers (customer_id) VALUES (:c)"), {"c": customer_id}
        )
        return customer_id

    async def append_ledger(
        self,
        kind: LedgerKind,
        customer_id: str,
        *,
        ref: RecordRef | None = None,
        other_customer_id: str | None = None,
        detail: dict[str, Any] | None = None,
        actor: str = SYSTEM_ACTOR,
        reason: str = "",
    ) -> int:
        entry = await self.conn.execute(
            text(
                """
                INSERT INTO ledger (kind, customer_id, other_customer_id, source, message_id,
                                    detail, actor, reason)
                VALUES (:k, :c, :o, :s, :m, CAST(:d AS jsonb), :a, :r)
                RETURNING entry_id
                """
            ),
            {
                "k": kind.value,
                "c": customer_id,
                "o": other_customer_id,
                "s": ref.source if ref else None,
                "m": ref.message_id if ref else None,
                "d": to_json(detail or {}),
                "a": actor,
                "r": reason,
            },
        )
        return int(entry.scalar_one())

    async def erase(self, customer_id: str) -> Erasure:
        """Forgets the person: identifiers deleted, records kept only as (source, message id),
        the customer and every id merged into it marked erased (NOT_FOUND from now on)."""
        ids = [
            str(r[0])
            for r in await self.conn.execute(
                text(
                    """
                    WITH RECURSIVE gone(id) AS (
                        SELECT CAST(:c AS uuid)
                        UNION SELECT c.customer_id FROM customers c
                        JOIN gone ON c.merged_into = gone.id
                    ) SELECT id FROM gone ORDER BY id
                    """
                ),
                {"c": customer_id},
            )
        ]
        params = {"c": customer_id, "ids": ids}
        mine = "SELECT record_pk FROM records WHERE customer_id = ANY(CAST(:ids AS uuid[]))"
        refs = [
            RecordRef(r.source, r.message_id)
            for r in await self.conn.execute(
                text(
                    "SELECT source, message_id FROM records "
                    "WHERE customer_id = ANY(CAST(:ids AS uuid[]))"
                ),
                params,
            )
        ]
        values = [
            str(r[0])
            for r in await self.conn.execute(
                text("SELECT value FROM identifiers WHERE customer_id = ANY(CAST(:ids AS uuid[]))"),
                params,
            )
        ]
        for statement in (
            f"DELETE FROM blocking_keys WHERE record_pk IN ({mine})",
            f"DELETE FROM record_identifiers WHERE record_pk IN ({mine})",
            # Review items show both sides' names and values: the person's go entirely.
            f"DELETE FROM review_items WHERE record_pk IN ({mine}) "
            f"OR candidate_record_pk IN ({mine}) "
            "OR candidate_customer_id = ANY(CAST(:ids AS uuid[]))",
            "UPDATE records SET identifiers = '[]', attributes = '{}', evidence = '{}' "
            "WHERE customer_id = ANY(CAST(:ids AS uuid[]))",
            "UPDATE customers SET erased_at = now() "
            "WHERE customer_id = ANY(CAST(:ids AS uuid[])) AND erased_at IS NULL",
        ):
            await self.conn.execute(text(statement), params)
        deleted = await self.conn.execute(
            text("DELETE FROM identifiers WHERE customer_id = ANY(CAST(:ids AS uuid[]))"), params
        )
        # The person is no candidate for anyone's identifiers any more (nor are the ids merged
        # into them).
        await self.conn.execute(
            text(
                """
                UPDATE identifiers SET sharers = sharers - CAST(:ids AS text[])
                WHERE sharers <> CAST('[]' AS jsonb) AND sharers ?| CAST(:ids AS text[])
                """
            ),
            params,
        )
        # Announcements and reports about the person not delivered yet (or refused for good).
        await scrub_outbox(self.conn, ids, values)
        return Erasure(refs, int(deleted.rowcount or 0), ids, values)

    async def merged_ids(self, customer_id: str) -> list[str]:
        """Every id merged into this customer, directly or through others."""
        rows = await self.conn.execute(
            text(
                """
                WITH RECURSIVE merged(id) AS (
                    SELECT customer_id FROM customers WHERE merged_into = CAST(:c AS uuid)
                    UNION SELECT c.customer_id FROM customers c
                    JOIN merged ON c.merged_into = merged.id
                ) SELECT id FROM merged ORDER BY id
                """
            ),
            {"c": customer_id},
        )
        return [str(r[0]) for r in rows]

    async def canonical_id(self, customer_id: str, *, include_erased: bool = False) -> str | None:
        """The current id of a customer, following merges; None when unknown (or erased)."""
        row = (
            await self.conn.execute(
                text(
                    """
                    WITH RECURSIVE chain(id, next, depth) AS (
                        SELECT customer_id, merged_into, 0 FROM customers WHERE customer_id = :c
                        UNION ALL
                        SELECT c.customer_id, c.merged_into, chain.depth + 1
                        FROM customers c JOIN chain ON c.customer_id = chain.next
                        WHERE chain.depth < 64
                    )
                    SELECT chain.id, c.erased_at IS NOT NULL AS erased FROM chain
                    JOIN customers c ON c.customer_id = chain.id WHERE chain.next IS NULL
                    """
                ),
                {"c": customer_id},
            )
        ).first()
        if row is None or (row.erased and not include_erased):
            return None
        return str(row[0])

    async def customer_view(self, customer_id: str) -> CustomerView | None:
        row = (
            await self.conn.execute(
                text(
                    "SELECT created_at, (SELECT count(*) FROM records r WHERE r.customer_id = "
                    ":c) AS n FROM customers WHERE customer_id = :c AND merged_into IS NULL "
                    "AND erased_at IS NULL"
                ),
                {"c": customer_id},
            )
        ).first()
        if row is None:
            return None
        merged = await self.conn.execute(
            text("SELECT customer_id FROM customers WHERE merged_into = :c ORDER BY created_at"),
            {"c": customer_id},
        )
        idents = await self.conn.execute(
            text(
                "SELECT id_type, namespace, value, first_source, first_seen, last_seen "
                "FROM identifiers WHERE customer_id = :c ORDER BY id_type, value"
            ),
            {"c": customer_id},
        )
        return CustomerView(
            customer_id=customer_id,
            merged_ids=tuple(str(r[0]) for r in merged),
            identifiers=tuple(
                (
                    IdentifierKey(r.id_type, r.value, r.namespace),
                    r.first_source,
                    r.first_seen,
                    r.last_seen,
                )
                for r in idents
            ),
            created_at=row.created_at,
            record_count=int(row.n),
        )


# Outbox topics announcing merges and splits to the profile service.
MERGED_TOPIC = "customer.merged"
SPLIT_TOPIC = "customer.split"
# Outbox topic telling ingestion which customers changed (events it holds may now be theirs).
ATTRIBUTION_TOPIC = "attribution.changed"


class IdentityStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[IdentityTransaction]:
        async with self.engine.begin() as conn:
            yield IdentityTransaction(conn)

    async def run(self, work: Callable[[IdentityTransaction], Awaitable[T]]) -> T:
        """Runs ``work`` in one transaction, retried from the start after a deadlock or a
        serialisation failure (the runtime's shared runner)."""
        return await run_in_transaction(self.transaction, work)


def group_by_customer(rows: Iterable[tuple[str, Any]]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = defaultdict(list)
    for customer, item in rows:
        out[customer].append(item)
    return out
