"""Set-based reads and writes of the ``identity`` schema for the batch engine (a worker process).

Reads: everything an import can touch in the graph, in a handful of joins against the staged
records' identifiers, references and blocking keys (``COPY``'d into scratch tables) - owners,
the stored blocklist, blocking-key block members and sizes, the customers involved with their
most recent records, "kept apart" pairs. Writes: what the engine decided, in bulk (``COPY``)
and in one transaction, with the ledger entries and the outbox announcements ``Resolve``
writes.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from psycopg.errors import DeadlockDetected
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from svod_identity.adapters.announcements import MERGED_TOPIC, SPLIT_TOPIC
from svod_identity.adapters.encoding import stored_keys
from svod_identity.adapters.graph_writes import insert_blocked
from svod_identity.adapters.ledger import SYSTEM_ACTOR
from svod_identity.adapters.storage import IdentityTransaction
from svod_identity.domain.batch import EarlierWindows, ImportState, ReresolvePlan
from svod_identity.domain.engine import (
    MAX_CHECK_RECORDS,
    Changes,
    GraphState,
    KnownCustomer,
    KnownRecord,
    Placement,
    Refusal,
    _recency,
    person_from,
)
from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.ledger import LedgerKind, merge_reason, placement_detail
from svod_identity.domain.matching.blocking import MAX_BLOCK_SIZE
from svod_identity.domain.model import IncomingRecord, RecordRef, ResolutionOutcome
from svod_identity.domain.rules import Rules

# The batch write keeps the graph's writers out: every write of the graph locks customers
# (FOR UPDATE) or writes the ledger first. Reads go on.
_LOCK_GRAPH = "LOCK TABLE customers, ledger IN EXCLUSIVE MODE"


# orjson, as json.dumps(..., default=str) writes them: datetimes and dataclasses by str(),
# keys that are not strings as strings (the values land in jsonb, where spacing and key order
# do not exist). 60k identifier lists, attributes and evidence of 20,000 records: 0.29 s
# with json, 0.07 s with orjson, the same values read back.
_ORJSON_OPTIONS = (
    orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)


def dumps(value: Any) -> str:
    try:
        return orjson.dumps(value, default=str, option=_ORJSON_OPTIONS).decode()
    except TypeError:  # integers beyond 64 bits
        return json.dumps(value, ensure_ascii=False, default=str)


async def _driver(conn: AsyncConnection) -> Any:
    raw = await conn.get_raw_connection()
    return raw.driver_connection


async def copy_rows(
    conn: AsyncConnection, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    driver = await _driver(conn)
    cursor = driver.cursor()
    async with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            await copy.write_row(row)


async def copy_in_order(
    conn: AsyncConnection,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    order: Sequence[str],
) -> None:
    """COPYs ``rows`` into ``table`` through a scratch table, inserted from it in ``order``
    (the table's primary key): sorted by PostgreSQL, a window's rows land next to each other
    in the key's b-tree instead of one random leaf each. 800,000 blocking keys into a table
    of 2.4M (probe, shared_buffers 128 MB, load 7-10): 1,266,874 buffers read, 936,289
    dirtied and 1.19 GB of WAL in record order against 338,526, 247,380 and 0.54 GB sorted;
    backend CPU 15.5-16.8 s against 13.0-14.3 s, wall 47.6-49.3 s against 24.1-26.5 s.
    The COPY into the scratch table (no index, no WAL) was 0.7 s of it."""
    scratch = f"bulk_in_{table}"
    listed = ", ".join(columns)
    await conn.execute(text(f"DROP TABLE IF EXISTS {scratch}"))
    await conn.execute(text(f"CREATE TEMP TABLE {scratch} AS SELECT {listed} FROM {table} LIMIT 0"))
    await copy_rows(conn, scratch, columns, rows)
    await conn.execute(
        text(
            f"INSERT INTO {table} ({listed}) SELECT {listed} FROM {scratch} "
            f"ORDER BY {', '.join(order)}"
        )
    )
    await conn.execute(text(f"DROP TABLE {scratch}"))


async def bulk_session(conn: AsyncConnection) -> None:
    """Memory for the job's sorts (``copy_in_order``: a window's 400,000 blocking keys are
    some 40 MB to sort; the server's default 4 MB sorts them on disk), for the rest of its
    transaction."""
    await conn.execute(text("SET LOCAL work_mem = '128MB'"))


async def graph_marker(conn: AsyncConnection) -> int:
    """The last ledger entry, read while no writer of the graph is half-way: every change of
    the graph writes the ledger, so a later entry means the graph changed after this."""
    await conn.execute(text(_LOCK_GRAPH))
    return int(
        (await conn.execute(text("SELECT coalesce(max(entry_id), 0) FROM ledger"))).scalar_one()
    )


async def written_since(conn: AsyncConnection, marker: int) -> int:
    """Ledger entries after ``marker`` (``graph_marker``) that this transaction can see."""
    return int(
        (
            await conn.execute(
                text("SELECT count(*) FROM ledger WHERE entry_id > :m"), {"m": marker}
            )
        ).scalar_one()
    )


async def lock_graph(conn: AsyncConnection) -> int:
    """Locks the graph's writers out for the rest of ``conn``'s transaction; the marker now."""
    return await graph_marker(conn)


async def lock_graph_after_writes(conn: AsyncConnection) -> bool:
    """Locks the graph's writers out in a transaction that has written rows already: False
    when that is a deadlock (a writer waits for one of those rows; Postgres stops this lock,
    and the transaction can only be rolled back)."""
    try:
        await conn.execute(text(_LOCK_GRAPH))
    except DBAPIError as error:
        if isinstance(error.orig, DeadlockDetected):
            return False
        raise
    return True


@dataclass
class Loaded:
    """What the batch engine starts from: the part of the graph an import can touch."""

    state: ImportState
    existing_records: int
    graph_records: int


async def count_records(conn: AsyncConnection) -> int:
    return int((await conn.execute(text("SELECT count(*) FROM records"))).scalar_one())


async def load_touched(  # noqa: C901, PLR0912
    conn: AsyncConnection,
    records: Sequence[IncomingRecord],
    keys: Iterable[str],
    rules: Rules,
    earlier: EarlierWindows | None = None,
) -> Loaded:
    """The graph state the import's records can meet (``GraphState`` for ``Resolver``):
    owners and sharers of their identifiers, the stored blocklist, the stored members of their
    blocking keys' blocks (up to ``MAX_BLOCK_SIZE``; bigger blocks only counted), the records
    already resolved under their references, and every customer involved with its most recent
    ``MAX_CHECK_RECORDS`` records, creation time, kept-apart pairs and (with value limits) its
    identifiers.

    ``earlier``: what the import's earlier windows (written in this transaction, so read back
    here like any stored row) left that the rows do not say (``EarlierWindows``)."""
    state = ImportState()
    state.fetched_keys = None
    if earlier is not None:
        state.alias = dict(earlier.alias)
    engine_pk = earlier.pks.engine if earlier is not None else int
    graph_records = await count_records(conn)
    if graph_records == 0:
        return Loaded(state, 0, 0)
    driver = await _driver(conn)
    cursor = driver.cursor()
    await cursor.execute(
        # A window after the first finds its predecessor's scratch tables (same transaction).
        "DROP TABLE IF EXISTS bulk_keys, bulk_ids, bulk_refs;"
        "CREATE TEMP TABLE bulk_keys (key text PRIMARY KEY) ON COMMIT DROP;"
        "CREATE TEMP TABLE bulk_ids (t text, n text, v text, PRIMARY KEY (t, n, v)) "
        "ON COMMIT DROP;"
        "CREATE TEMP TABLE bulk_refs (s text, m text, PRIMARY KEY (s, m)) ON COMMIT DROP"
    )
    await copy_rows(conn, "bulk_keys", ("key",), ((k,) for k in sorted(set(keys))))
    # Sorted as tuples: sorting the IdentifierKey dataclasses (their generated __lt__) was
    # 1.4% of the worker's samples at 200k records.
    identifiers = sorted({(k.type, k.namespace, k.value) for r in records for k in r.identifiers})
    await copy_rows(conn, "bulk_ids", ("t", "n", "v"), identifiers)
    await copy_rows(
        conn,
        "bulk_refs",
        ("s", "m"),
        sorted({(r.ref.source, r.ref.message_id) for r in records}),
    )
    await cursor.execute("ANALYZE bulk_keys; ANALYZE bulk_ids; ANALYZE bulk_refs")
    # Blocks: every stored member of a block small enough to compare, the size of the others
    # - one row a block, the members of the big ones counted in PostgreSQL: a row per member
    # sent every member of the blocks too big to compare to the worker to be counted there.
    rows = await conn.execute(
        text(
            f"""
            SELECT b.key, count(*) AS n,
                   CASE WHEN count(*) <= {MAX_BLOCK_SIZE} THEN array_agg(b.record_pk) END
            FROM blocking_keys b JOIN bulk_keys k ON k.key = b.key GROUP BY b.key
            """
        )
    )
    wanted: set[int] = set()
    for key, n, pks in rows:
        if pks is None:
            state.unlisted[key] = int(n)
        else:
            wanted.update(pks)
            state.blocks[key] = sorted(map(engine_pk, pks), key=_recency)
    owners: dict[IdentifierKey, str] = {}
    for t, n, v, customer, sharers in await conn.execute(
        text(
            "SELECT i.id_type, i.namespace, i.value, i.customer_id, i.sharers "
            "FROM identifiers i JOIN bulk_ids x ON i.id_type = x.t AND i.namespace = x.n "
            "AND i.value = x.v"
        )
    ):
        key = IdentifierKey(t, v, n)
        owners[key] = str(customer)
        if sharers:
            state.sharers[key] = {str(c) for c in sharers}
    state.owners = owners
    for t, n, v, reason in await conn.execute(
        text(
            "SELECT b.id_type, b.namespace, b.value, b.reason FROM blocked_identifiers b "
            "JOIN bulk_ids x ON b.id_type = x.t AND b.namespace = x.n AND b.value = x.v"
        )
    ):
        state.blocked[IdentifierKey(t, v, n)] = str(reason)
    resolved = {
        engine_pk(int(pk))
        for (pk,) in await conn.execute(
            text(
                "SELECT r.record_pk FROM records r JOIN bulk_refs x "
                "ON r.source = x.s AND r.message_id = x.m"
            )
        )
    }
    wanted |= {earlier.pks.stored(pk) for pk in resolved} if earlier is not None else resolved
    # The customers involved, and their most recent records (the conflict check's).
    excluded = earlier.excluded if earlier is not None else {}
    loaded = await _records(conn, wanted, excluded, engine_pk)
    customers = set(owners.values()) | {r.customer_id for r in loaded.values()}
    for customer_id, created_at in await conn.execute(
        text(
            "SELECT customer_id, created_at FROM customers "
            "WHERE customer_id = ANY(CAST(:c AS uuid[]))"
        ),
        {"c": sorted(customers)},
    ):
        state.customers[str(customer_id)] = KnownCustomer(str(customer_id), created_at)
    recent = await conn.execute(
        text(
            f"""
            SELECT r.record_pk FROM unnest(CAST(:c AS uuid[])) AS c(id) CROSS JOIN LATERAL (
                SELECT record_pk FROM records WHERE customer_id = c.id
                ORDER BY record_pk DESC LIMIT {MAX_CHECK_RECORDS}
            ) r
            """
        ),
        {"c": sorted(customers)},
    )
    more = {int(pk) for (pk,) in recent if engine_pk(int(pk)) not in loaded}
    loaded.update(await _records(conn, more, excluded, engine_pk))
    for pk in sorted(loaded, key=_recency):
        known = loaded[pk]
        state.records[pk] = known
        customer = state.customers.get(known.customer_id)
        if customer is not None:
            customer.records.append(pk)
        if pk in resolved:
            state.resolved[known.ref] = pk
    for customer in state.customers.values():
        # The conflict check reads a customer's most recent records.
        customer.records = customer.records[-MAX_CHECK_RECORDS:]
    if any(r.max_values_per_customer > 0 for r in rules.identifier_rules):
        for t, n, v, customer in await conn.execute(
            text(
                "SELECT id_type, namespace, value, customer_id FROM identifiers "
                "WHERE customer_id = ANY(CAST(:c AS uuid[]))"
            ),
            {"c": sorted(customers)},
        ):
            state.customers[str(customer)].keys.add(IdentifierKey(t, v, n))
    for a, b in await conn.execute(
        text(
            "SELECT customer_a, customer_b FROM kept_apart "
            "WHERE customer_a = ANY(CAST(:c AS uuid[])) OR customer_b = ANY(CAST(:c AS uuid[]))"
        ),
        {"c": sorted(customers)},
    ):
        state.kept_apart.add(frozenset((str(a), str(b))))
    if state.alias:
        # As ``Resolver._merge`` does for a merge: the survivor is kept apart too.
        state.kept_apart |= {frozenset(map(state.find, pair)) for pair in state.kept_apart}
    return Loaded(state, len(loaded), graph_records)


async def _records(
    conn: AsyncConnection,
    pks: Iterable[int],
    excluded: Mapping[int, frozenset[IdentifierKey]] | None = None,
    engine_pk: Callable[[int], int] = int,
) -> dict[int, KnownRecord]:
    """Stored records by pk - by engine pk for the import's own (``ImportPks``)."""
    wanted = sorted(set(pks))
    out: dict[int, KnownRecord] = {}
    for start in range(0, len(wanted), 50_000):
        rows = await conn.execute(
            text(
                "SELECT record_pk, source, message_id, customer_id, identifiers, attributes "
                "FROM records WHERE record_pk = ANY(CAST(:p AS bigint[]))"
            ),
            {"p": wanted[start : start + 50_000]},
        )
        for stored, source, message_id, customer, identifiers, attributes in rows:
            pk = engine_pk(int(stored))
            keys = stored_keys(identifiers)
            # A record of an earlier window is compared as it was placed: without the
            # identifiers blocked then (``Resolver.resolve``).
            gone = excluded.get(pk) if excluded else None
            linkable = [k for k in keys if k not in gone] if gone else keys
            out[pk] = KnownRecord(
                pk,
                RecordRef(source, message_id),
                str(customer),
                person_from(str(pk), attributes or {}, linkable, source),
                keys,
            )
    return out


@dataclass(frozen=True)
class Written:
    """What the write of one window did (the job's outcome sums them)."""

    customers_created: int
    records_written: int
    already_resolved: int
    customers_merged: int
    review_items: int
    written_pks: tuple[int, int] | None
    # Customers created by an earlier window and merged away by this one (folded).
    customers_folded: int = 0
    # Ledger entries written (one per record, one per merge of existing customers).
    ledger_entries: int = 0


@dataclass
class Announced:
    """What an import tells quality once it is written: suspected pairs (record's customer,
    candidate's customer, probability) and identifiers it blocked."""

    pairs: list[tuple[str, str, float]] = field(default_factory=list)
    blocked: list[Any] = field(default_factory=list)


async def write_changes(
    conn: AsyncConnection,
    state: GraphState,
    changes: Changes,
    placements: Sequence[Placement],
    existing: set[str],
    earlier: EarlierWindows,
    announced: Announced,
    *,
    more: bool = True,
) -> Written:
    """Writes what ``Resolver`` decided for a window of an import, in bulk, in ``conn``'s
    transaction; ``earlier`` is brought up to date for the next window (``more``: one
    follows), and what quality hears of is added to ``announced`` (``announce_import`` sends
    it once the import is written).

    Customers the import created and merged away again never existed outside it: their
    records go straight to the survivor, and neither they nor their merges are written (one
    an earlier window wrote is folded into its survivor: ``_fold``). Merges of customers that
    existed before are written and announced as ``Resolve`` does.
    """
    final = state.find
    recs = changes.records
    pks: dict[int, int] = {}
    if recs:
        allocated = await conn.execute(
            text("SELECT nextval('records_record_pk_seq') FROM generate_series(1, :n)"),
            {"n": len(recs)},
        )
        for record, (pk,) in zip(recs, allocated, strict=True):
            pks[record.pk] = int(pk)
        earlier.pks.add(pks.items())
    # Evidence and review items may name a record of an earlier window (by engine pk).
    stored = earlier.pks.stored
    new_customers = [(c, at) for c, at in changes.customers if final(c) == c]
    await copy_rows(conn, "customers", ("customer_id", "created_at"), new_customers)
    for record in recs:
        if record.evidence.get("record_pk", 0) < 0:
            record.evidence["record_pk"] = stored(record.evidence["record_pk"])
    await copy_rows(
        conn,
        "records",
        (
            "record_pk",
            "source",
            "message_id",
            "customer_id",
            "channel",
            "observed_at",
            "identifiers",
            "attributes",
            "outcome",
            "rule",
            "evidence",
        ),
        (
            (
                pks[n.pk],
                n.record.ref.source,
                n.record.ref.message_id,
                final(n.customer_id),
                n.record.channel,
                n.record.observed_at,
                dumps([[k.type, k.namespace, k.value] for k in n.record.identifiers]),
                dumps(n.record.attributes),
                n.outcome,
                n.rule,
                dumps(n.evidence),
            )
            for n in recs
        ),
    )
    columns = ("id_type", "namespace", "value", "record_pk")
    await copy_in_order(
        conn,
        "record_identifiers",
        columns,
        (
            (k.type, k.namespace, k.value, pks[n.pk])
            for n in recs
            for k in set(n.record.identifiers)
        ),
        columns,
    )
    await copy_in_order(
        conn,
        "blocking_keys",
        ("key", "record_pk"),
        ((key, pks[n.pk]) for n in recs for key in set(n.blocking_keys)),
        ("key", "record_pk"),
    )
    await _write_identifiers(conn, changes, final)
    tx = IdentityTransaction(conn)
    await _write_sharers(conn, changes, final)
    announced.blocked.extend(await insert_blocked(conn, changes.blocked))
    merged_away = merge_entries = 0
    folded: dict[str, str] = {}
    for merge in changes.merges:
        folded.update((c, merge.survivor) for c in merge.merged if c in earlier.created)
        gone = [c for c in merge.merged if c in existing]
        if not gone:
            continue
        survivor = merge.survivor
        await tx.writes.merge_customers(survivor, gone)
        merged_away += len(gone)
        merge_entries += 1
        await tx.writes.record_merge(
            survivor,
            gone,
            kind=LedgerKind.CUSTOMERS_MERGED,
            ref=merge.ref,
            detail={"rule": merge.rule, "record_pk": pks.get(merge.record_pk or 0)},
            reason=merge_reason(merge.ref),
        )
    if folded:
        await _fold(conn, {gone: final(gone) for gone in folded})
    reviews = changes.reviews
    if reviews:
        await copy_rows(
            conn,
            "review_items",
            (
                "review_item_id",
                "record_pk",
                "candidate_record_pk",
                "candidate_customer_id",
                "score",
                "probability",
                "explanation",
            ),
            (
                (
                    r.review_item_id,
                    stored(r.record_pk),
                    stored(r.candidate_record_pk),
                    final(r.candidate_customer_id),
                    r.score,
                    r.probability,
                    dumps(r.explanation),
                )
                for r in reviews
            ),
        )
    customer_of = {n.pk: final(n.customer_id) for n in recs}
    announced.pairs.extend(
        (mine, final(r.candidate_customer_id), r.probability)
        for r in reviews
        if (mine := customer_of.get(r.record_pk, ""))
    )
    created_records = {
        n.pk
        for n in recs
        if n.outcome == ResolutionOutcome.CREATED and final(n.customer_id) == n.customer_id
    }
    # The ledger is append-only: the records' entries wait in a scratch table until the last
    # window, so that a customer a later window folds away is never written (``write_ledger``).
    await _ledger_table(conn)
    await copy_rows(
        conn,
        "bulk_ledger",
        ("kind", "customer_id", "source", "message_id", "detail", "actor"),
        (
            (
                (
                    LedgerKind.CUSTOMER_CREATED
                    if n.pk in created_records
                    else LedgerKind.RECORD_LINKED
                ).value,
                final(n.customer_id),
                n.record.ref.source,
                n.record.ref.message_id,
                dumps(placement_detail(n.rule, n.evidence)),
                SYSTEM_ACTOR,
            )
            for n in recs
        ),
    )
    _carry(state, changes, placements, earlier, new_customers, folded)
    # The next window reads these tables back in this transaction, and the planner knows
    # them as they were before the import: at 1M records the second window's read of its
    # customers' recent records (a lateral look-up per customer) ran for minutes on a plan
    # made for an empty table. ANALYZE counts this transaction's own rows. After the last
    # window (``more`` False) nothing reads them in this transaction any more.
    if more:
        await conn.execute(text("ANALYZE records, blocking_keys, identifiers"))
    already = sum(1 for p in placements if p.outcome == ResolutionOutcome.ALREADY_RESOLVED)
    return Written(
        customers_created=len(new_customers),
        records_written=len(recs),
        already_resolved=already,
        customers_merged=merged_away,
        review_items=len(reviews),
        written_pks=(min(pks.values()), max(pks.values())) if pks else None,
        customers_folded=len(folded),
        ledger_entries=len(recs) + merge_entries,
    )


def _carry(
    state: GraphState,
    changes: Changes,
    placements: Sequence[Placement],
    earlier: EarlierWindows,
    new_customers: Sequence[tuple[str, dt.datetime]],
    folded: Mapping[str, str],
) -> None:
    """What the next window needs of this one beyond its rows (``EarlierWindows``)."""
    earlier.alias.update(state.alias)
    earlier.created |= {c for c, _ in new_customers}
    earlier.created -= set(folded)
    refusals = {str(r) for r in Refusal}
    for placement in placements:
        if placement.record_pk >= 0:
            continue
        blocked = frozenset(k for k, why in placement.unlinked if why not in refusals)
        if blocked:
            earlier.excluded[placement.record_pk] = blocked
    earlier.placed += len(changes.records)


async def _ledger_table(conn: AsyncConnection) -> None:
    await conn.execute(
        text(
            "CREATE TEMP TABLE IF NOT EXISTS bulk_ledger (n bigserial, kind text, "
            "customer_id uuid, source text, message_id text, detail jsonb, actor text) "
            "ON COMMIT DROP"
        )
    )


# The identifiers some folded customer shares: those with sharers at all (the partial GIN
# index ``identifiers_sharers`` lists them), their sharers joined with the folded ones. The
# statement before (``sharers ?| <the folded ids>`` over every identifier) compared each
# identifier with each folded customer: on 600,000 identifiers (6,000 with sharers) and
# 5,050 folded customers (probe) 51.6 s, growing with the graph times the window; this
# way 0.34 s.
_FOLD_SHARERS = """
    UPDATE identifiers i SET sharers = (
        SELECT jsonb_agg(DISTINCT coalesce(f.survivor::text, s.v))
        FROM jsonb_array_elements_text(i.sharers) AS s(v)
        LEFT JOIN bulk_fold f ON f.gone::text = s.v
    )
    FROM (
        SELECT DISTINCT x.id_type, x.namespace, x.value
        FROM identifiers x CROSS JOIN LATERAL jsonb_array_elements_text(x.sharers) AS s(v)
        JOIN bulk_fold f ON f.gone::text = s.v
        WHERE x.sharers <> '[]'::jsonb
    ) hit
    WHERE i.id_type = hit.id_type AND i.namespace = hit.namespace AND i.value = hit.value
"""


async def _fold(conn: AsyncConnection, survivor_of: Mapping[str, str]) -> None:
    """Customers an earlier window of the import created and this one merged away: their rows
    go to the survivor as if they had never existed (the whole import is one transaction, so
    nobody else saw them) - records, identifiers and sharers, review items and the ledger
    (their "created" entry becomes "linked", as a record joining the survivor)."""
    await conn.execute(text("DROP TABLE IF EXISTS bulk_fold"))
    await conn.execute(
        text("CREATE TEMP TABLE bulk_fold (gone uuid PRIMARY KEY, survivor uuid) ON COMMIT DROP")
    )
    await copy_rows(conn, "bulk_fold", ("gone", "survivor"), sorted(survivor_of.items()))
    await conn.execute(text("ANALYZE bulk_fold"))
    for statement in (
        "UPDATE records r SET customer_id = f.survivor FROM bulk_fold f "
        "WHERE r.customer_id = f.gone",
        "UPDATE identifiers i SET customer_id = f.survivor FROM bulk_fold f "
        "WHERE i.customer_id = f.gone",
        "UPDATE review_items v SET candidate_customer_id = f.survivor FROM bulk_fold f "
        "WHERE v.candidate_customer_id = f.gone",
        f"UPDATE bulk_ledger l SET customer_id = f.survivor, "
        f"kind = '{LedgerKind.RECORD_LINKED.value}' FROM bulk_fold f WHERE l.customer_id = f.gone",
        _FOLD_SHARERS,
        "DELETE FROM customers c USING bulk_fold f WHERE c.customer_id = f.gone",
    ):
        await conn.execute(text(statement))


async def announce_import(
    conn: AsyncConnection, announced: Announced, final: Callable[[str], str]
) -> None:
    """The records' ledger entries (waiting in ``bulk_ledger``), then what the whole import
    tells quality and ingestion, once it is written."""
    await _ledger_table(conn)
    await conn.execute(
        text(
            "INSERT INTO ledger (kind, customer_id, source, message_id, detail, actor) "
            "SELECT kind, customer_id, source, message_id, detail, actor FROM bulk_ledger "
            "ORDER BY n"
        )
    )
    tx = IdentityTransaction(conn)
    # A pair a later record of the import joined into one customer is settled, not suspected
    # (online would report it and then its merge): quality refuses a customer paired with
    # itself, and with it the whole report. At 20,000 generated records 266 of 1,783 pairs.
    pairs = [
        (mine, theirs, p)
        for a, b, p in announced.pairs
        if (mine := final(a)) != (theirs := final(b))
    ]
    blocked = announced.blocked
    for start in range(0, max(len(pairs), len(blocked)), 1000):
        await tx.announcements.report_quality(
            pairs=pairs[start : start + 1000], blocked=blocked[start : start + 1000]
        )
    # Events held for somebody may be the import's customers' now: one look at all of them.
    await tx.announcements.announce_changed((), everything=True)


async def _write_identifiers(conn: AsyncConnection, changes: Changes, final: Any) -> None:
    """Newly held identifiers (one row each, last seen the latest time the import saw it) and
    the last-seen times of identifiers held before."""
    link_seen: dict[IdentifierKey, dt.datetime] = {}
    for key, _, _, seen in changes.links:
        link_seen[key] = seen
    latest: dict[IdentifierKey, dt.datetime] = {}
    for key, seen in changes.touches:
        if key in link_seen:
            link_seen[key] = max(seen, link_seen[key])
        else:
            latest[key] = max(seen, latest.get(key, seen))
    await copy_in_order(
        conn,
        "identifiers",
        ("id_type", "namespace", "value", "customer_id", "first_source", "first_seen", "last_seen"),
        (
            (k.type, k.namespace, k.value, final(c), s, seen, link_seen[k])
            for k, c, s, seen in changes.links
        ),
        ("id_type", "namespace", "value"),
    )
    if latest:
        await conn.execute(text("DROP TABLE IF EXISTS bulk_touch"))
        await conn.execute(
            text(
                "CREATE TEMP TABLE bulk_touch (t text, n text, v text, seen timestamptz) "
                "ON COMMIT DROP"
            )
        )
        await copy_rows(
            conn,
            "bulk_touch",
            ("t", "n", "v", "seen"),
            ((k.type, k.namespace, k.value, seen) for k, seen in latest.items()),
        )
        await conn.execute(
            text(
                "UPDATE identifiers i SET last_seen = x.seen FROM bulk_touch x "
                "WHERE i.id_type = x.t AND i.namespace = x.n AND i.value = x.v "
                "AND x.seen > i.last_seen"
            )
        )


async def _write_sharers(conn: AsyncConnection, changes: Changes, final: Any) -> None:
    """The customers newly sharing held identifiers, appended to each identifier's sharers in
    one statement: an UPDATE per identifier was 3,821 round trips (2.3 s) in a 200k-record
    import."""
    if not changes.sharers:
        return
    await conn.execute(text("DROP TABLE IF EXISTS bulk_sharers"))
    await conn.execute(
        text(
            "CREATE TEMP TABLE bulk_sharers (t text, n text, v text, s jsonb, "
            "PRIMARY KEY (t, n, v)) ON COMMIT DROP"
        )
    )
    await copy_rows(
        conn,
        "bulk_sharers",
        ("t", "n", "v", "s"),
        (
            (key.type, key.namespace, key.value, dumps(sorted({final(s) for s in sharers})))
            for key, sharers in changes.sharers.items()
        ),
    )
    await conn.execute(
        text(
            "UPDATE identifiers i SET sharers = i.sharers || x.s FROM bulk_sharers x "
            "WHERE i.id_type = x.t AND i.namespace = x.n AND i.value = x.v"
        )
    )


# -- re-resolution ------------------------------------------------------------------------


@dataclass
class Graph:
    """The whole graph as re-resolution starts from it."""

    records: list[IncomingRecord]
    pks: list[int]
    current: dict[int, str]
    created: dict[str, tuple[dt.datetime, str]]
    owners: dict[IdentifierKey, str]
    merges: list[list[int]]
    kept_apart: set[frozenset[str]]


async def load_graph(conn: AsyncConnection) -> Graph:
    """Every record in the order it first came, where it is now, and a person's decisions."""
    tx = IdentityTransaction(conn)
    records: list[IncomingRecord] = []
    pks: list[int] = []
    current: dict[int, str] = {}
    after = 0
    while True:
        rows = list(
            await conn.execute(
                text(
                    "SELECT record_pk, source, message_id, customer_id, identifiers, "
                    "attributes, observed_at, channel FROM records WHERE record_pk > :a "
                    "ORDER BY record_pk LIMIT 50000"
                ),
                {"a": after},
            )
        )
        for row in rows:
            pk = int(row.record_pk)
            pks.append(pk)
            current[pk] = str(row.customer_id)
            records.append(
                IncomingRecord(
                    ref=RecordRef(row.source, row.message_id),
                    channel=row.channel,
                    observed_at=row.observed_at,
                    identifiers=stored_keys(row.identifiers),
                    attributes=dict(row.attributes or {}),
                )
            )
        if len(rows) < 50_000:
            break
        after = int(rows[-1].record_pk)
    created = {
        str(c): (at, str(c))
        for c, at in await conn.execute(
            text("SELECT customer_id, created_at FROM customers WHERE merged_into IS NULL")
        )
    }
    merges, apart = await tx.ledger.human_decisions()
    canonical = await tx.graph.current_ids({c for pair in apart for c in pair})
    kept_apart = {frozenset(canonical.get(c, c) for c in pair) for pair in apart}
    owners = await tx.export.all_identifier_owners()
    return Graph(records, pks, current, created, owners, merges, kept_apart)


@dataclass(frozen=True)
class Rewritten:
    """What a re-resolution wrote: its split sources (their announcements go first) and the
    merges to announce once those are delivered."""

    split_sources: list[str]
    pending_merges: list[dict[str, Any]]


async def write_plan(
    conn: AsyncConnection,
    plan: ReresolvePlan,
    refs: Mapping[int, RecordRef],
    owners: Mapping[IdentifierKey, str],
    actor: str,
    reason: str,
) -> Rewritten:
    """Makes the graph the plan's: new customers, splits (records and the identifiers only
    they carry move; ledger ``customer_split``; announced to profile at once), merges (ledger
    ``customers_merged``; announced once every split is delivered, see docs/bulk-import.md),
    then each identifier held as the re-resolution decided (``owners``: key -> customer)."""
    tx = IdentityTransaction(conn)
    why = reason or "re-resolution"
    now = dt.datetime.now(dt.UTC)
    await copy_rows(
        conn, "customers", ("customer_id", "created_at"), ((c, now) for c in plan.new_customers)
    )
    for source, target, pks in plan.splits:
        await tx.writes.move_records(source, target, pks)
        moved = sorted([refs[pk].source, refs[pk].message_id] for pk in pks)
        change_id = await tx.ledger.append(
            LedgerKind.CUSTOMER_SPLIT,
            source,
            other_customer_id=target,
            detail={"moved_records": len(pks), "reresolution": True},
            actor=actor,
            reason=why,
        )
        await tx.announcements.announce(
            SPLIT_TOPIC,
            source,
            dumps(
                {
                    "change_id": str(change_id),
                    "source_customer_id": source,
                    "target_customer_id": target,
                    "moved_records": moved,
                    "redirected_customer_ids": [],
                }
            ).encode(),
        )
    pending: list[dict[str, Any]] = []
    for survivor, gone in plan.merges:
        await tx.writes.merge_customers(survivor, [gone])
        change_id = await tx.ledger.append(
            LedgerKind.CUSTOMERS_MERGED,
            survivor,
            other_customer_id=gone,
            detail={"merged": [gone], "reresolution": True},
            actor=actor,
            reason=why,
        )
        pending.append({"change_id": str(change_id), "survivor": survivor, "merged": [gone]})
    if owners:
        await conn.execute(
            text("CREATE TEMP TABLE bulk_owners (t text, n text, v text, c uuid) ON COMMIT DROP")
        )
        await copy_rows(
            conn,
            "bulk_owners",
            ("t", "n", "v", "c"),
            ((k.type, k.namespace, k.value, c) for k, c in owners.items()),
        )
        await conn.execute(
            text(
                "UPDATE identifiers i SET customer_id = x.c FROM bulk_owners x "
                "WHERE i.id_type = x.t AND i.namespace = x.n AND i.value = x.v "
                "AND i.customer_id <> x.c"
            )
        )
    await tx.announcements.announce_changed((), everything=True)
    return Rewritten(sorted({s for s, _, _ in plan.splits}), pending)


async def release_merges(conn: AsyncConnection) -> int:
    """Announces the merges of re-resolutions whose splits have all been delivered (or given
    up on): a customer split and merged away reaches profile in that order."""
    released = 0
    rows = await conn.execute(
        text(
            "SELECT job_pk, outcome FROM resolution_jobs WHERE state = 'succeeded' "
            "AND outcome ? 'pending_merges' FOR UPDATE SKIP LOCKED"
        )
    )
    for job_pk, outcome in list(rows):
        sources = list(outcome.get("split_sources") or [])
        waiting = (
            await conn.execute(
                text(
                    "SELECT 1 FROM outbox WHERE topic = :t AND failed_at IS NULL "
                    "AND key = ANY(CAST(:k AS text[])) LIMIT 1"
                ),
                {"t": SPLIT_TOPIC, "k": sources},
            )
        ).first()
        if waiting is not None:
            continue
        tx = IdentityTransaction(conn)
        for merge in outcome["pending_merges"]:
            await tx.announcements.announce(MERGED_TOPIC, merge["survivor"], dumps(merge).encode())
            released += 1
        await conn.execute(
            text(
                "UPDATE resolution_jobs SET outcome = outcome - 'pending_merges' "
                "- 'split_sources' WHERE job_pk = :p"
            ),
            {"p": job_pk},
        )
    return released
