"""The part of the identity graph a batch of records can touch, read for the engine
(``GraphState``) in two round trips, its customers row-locked."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from svod_identity.adapters.encoding import KEYS_TABLE, ints, key_rows, to_json
from svod_identity.adapters.locks import lock_customers, lock_statement
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
    NAME_KEY_PREFIX,
    GraphState,
    KnownRecord,
)
from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.matching.blocking import MAX_BLOCK_SIZE
from svod_identity.domain.matching.model import MatchModel
from svod_identity.domain.model import IncomingRecord, RecordRef
from svod_identity.domain.rules import Rules
from svod_runtime.db import array_literal, direct_statement, fetch_direct, fetch_direct_pipelined
from svod_runtime.priority import step_aside

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
-- whose rows come below; the others are never compared, only counted. Only the loaded members
-- are aggregated: at 1M customers most fetched entries are those of blocks over the cap (each
-- surname + birth year key, ~76 people), and grouping all of them by key (36,000 rows for 500
-- records) spilled to disk.
SELECT 'b' AS kind, k.key AS t1, NULL AS t2, NULL AS t3, coalesce(s.n, 0) AS pk,
       NULL::uuid AS c, coalesce(m.members, '[]') AS j1, NULL::jsonb AS j2, false AS f
FROM wanted_keys k LEFT JOIN sizes s USING (key)
LEFT JOIN (
    SELECT b.key, jsonb_agg(b.record_pk) AS members
    FROM b JOIN loaded l USING (record_pk) GROUP BY b.key
) m USING (key)
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


_CONTACT_PREFIXES = array_literal(CONTACT_KEY_PREFIXES)

# Resolve statements are long and run with different parameters every time: Postgres planned
# each execution afresh (custom plans), which cost more than running it for one record
# (Postgres CPU per single Resolve at 200k customers 1.82/2.29 -> 1.50/1.55 ms with the plan
# kept; bulk chunks of 500 unchanged). Their plans are index look-ups whatever the values, so
# the plan made once per connection is kept, for the rest of the transaction only.
# Rows of a chunk's state decoded between two looks at the event loop (a row is a few to
# tens of microseconds).
_DECODE_SLICE = 200
_GENERIC_PLANS = "SELECT set_config('plan_cache_mode', 'force_generic_plan', true)"


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


def _full_name_holders(
    state: GraphState, fetched: dict[int, KnownRecord], kept: dict[int, KnownRecord]
) -> dict[int, KnownRecord]:
    """The fetched members of the batch's full-name blocks (``fs:``) that ``worth_loading``
    dropped for scoring "new" against the batch, for their customers to be loaded too.

    With a fitted model the rare-name and login-year rules (``Resolver._name_holder_test``,
    ``_sole_year_holder``) link a full name only where every other holder of it is known to be
    someone else, and a holder whose records were not loaded is unknown: a namesake scoring
    "new" (another city, another birth date) is just the one they must see. Without these the
    service linked fewer than the engine with every record in memory (benchmarks/identity
    offline.py): households seed 7171, 3000 persons, EM, one model for both, F1 0.9548 through
    the API against 0.9561 in memory, 6 of the 24 login-year links missing
    (benchmarks/results/identity_accuracy_issue21.md, session 35, worktree apiacc). Only
    complete blocks within the size limit: over it, or with members unfetched, the rules ask
    nothing of the holders."""
    extra: dict[int, KnownRecord] = {}
    for key, members in state.blocks.items():
        if (
            not key.startswith(NAME_KEY_PREFIX)
            or state.unlisted.get(key)
            or len(members) > MAX_BLOCK_SIZE
        ):
            continue
        for pk in members:
            known = fetched.get(pk)
            if known is not None and pk not in kept and pk not in state.records:
                extra[pk] = known
    return extra


class StateLoader:
    """Reads ``GraphState`` for the engine, inside one transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

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

        ``lock_keys`` are locked first (see ``locks.lock_statement``), in the same round trip as
        the first read: the statements still run one after the other, so the read sees what the
        lock's previous holder committed.

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
                *lock_statement(lock_keys),
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
        # Decoding a chunk's rows and choosing its candidates are the longest stretches of
        # Python in a bulk chunk: let other calls (a single Resolve) run between them. The
        # decoding alone ran up to 50 ms at once under an import (docs/performance.md, "Long
        # stretches"): a slice of rows at a time.
        batch = BatchRows()
        for start in range(0, len(rows), _DECODE_SLICE):
            decode_batch_rows(rows[start : start + _DECODE_SLICE], into=batch)
            await step_aside()
        fetched = _fill_batch_state(state, batch)
        candidates = candidates_to_load(records, state, fetched, rules, model)
        if model is not None and model.trained_pairs > 0:
            candidates |= _full_name_holders(state, fetched, candidates)
        await step_aside()
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
                decoded = decode_customer_rows(customer_rows)
                await step_aside()
                wanted, held_rows = _read_customers(state, locked, candidates, decoded)
                if wanted <= locked:
                    break
                await lock_customers(self.conn, wanted - locked)
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
