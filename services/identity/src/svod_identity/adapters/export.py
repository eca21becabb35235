"""Whole-graph reads: the record-to-customer mapping export, the blocklist, every record (for
PreviewRules and re-resolution) and record pairs to fit the match model on."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from svod_identity.adapters.encoding import known_record_of
from svod_identity.adapters.graph_reads import GraphReads
from svod_identity.domain.engine import KnownRecord
from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.matching.blocking import MAX_BLOCK_SIZE

# Candidate pairs a record brings on average: 210,000 pairs at 32,000 records (households,
# domain/matching/autofit.py), 6.6 a record.
PAIRS_PER_RECORD = 6.6


def key_sampling(records: int, max_pairs: int) -> int:
    """One block in how many a sample of ``max_pairs`` pairs reads, for a graph of ``records``
    records: about twice the pairs needed (a graph with fewer pairs a record than
    PAIRS_PER_RECORD still gives about ``max_pairs``). Reading every block of a million
    records paired them all - millions of pairs sorted for the sample - before the limit."""
    if records <= 0 or max_pairs <= 0:
        return 1
    return max(1, int(records * PAIRS_PER_RECORD / (2 * max_pairs)))


class Export:
    """Reads over the whole graph, inside one transaction."""

    def __init__(self, conn: AsyncConnection, graph: GraphReads) -> None:
        self.conn = conn
        self.graph = graph

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

    async def count_records(self) -> int:
        return int((await self.conn.execute(text("SELECT count(*) FROM records"))).scalar_one())

    async def value_counts(self) -> dict[str, list[tuple[str, int]]]:
        """How many records hold each surname, given name, city and birth date as written, per
        feature (the attributes ``frequencies.written_values`` reads), each given name with
        its birth date (the JSON array of the two, as ``frequencies.written_pair`` writes it),
        and each e-mail address ("login": ``frequencies.fold_logins`` counts the distinct
        mailboxes per login), for the model's term frequencies."""
        rows = await self.conn.execute(
            text(
                """
                WITH written AS (
                    SELECT attributes->>'last_name' AS last_name,
                           attributes->>'first_name' AS first_name,
                           CASE WHEN jsonb_typeof(attributes->'addresses') = 'array'
                                THEN attributes->'addresses'->0->>'city' END AS city,
                           attributes->>'birth_date' AS birth_date
                    FROM records
                )
                SELECT 'last_name', last_name, count(*) FROM written
                WHERE last_name <> '' GROUP BY last_name
                UNION ALL
                SELECT 'first_name', first_name, count(*) FROM written
                WHERE first_name <> '' GROUP BY first_name
                UNION ALL
                SELECT 'city', city, count(*) FROM written WHERE city <> '' GROUP BY city
                UNION ALL
                SELECT 'birth_date', birth_date, count(*) FROM written
                WHERE birth_date <> '' GROUP BY birth_date
                UNION ALL
                SELECT 'first_name_birth_date', jsonb_build_array(first_name, birth_date)::text,
                       count(*)
                FROM written WHERE first_name <> '' AND birth_date <> ''
                GROUP BY first_name, birth_date
                UNION ALL
                SELECT 'login', key->>2, count(DISTINCT record_pk)
                FROM records, jsonb_array_elements(identifiers) AS key
                WHERE key->>0 = 'email'
                GROUP BY key->>2
                """
            )
        )
        counts: dict[str, list[tuple[str, int]]] = {}
        for feature, value, count in rows:
            counts.setdefault(str(feature), []).append((str(value), int(count)))
        return counts

    async def sample_candidate_pairs(
        self, max_pairs: int, records: int = 0
    ) -> list[tuple[KnownRecord, KnownRecord]]:
        """Record pairs sharing a blocking key (blocks up to MAX_BLOCK_SIZE), sampled: of a
        graph of ``records`` records (0: not known, every key is read), the keys of one block
        in ``key_sampling(records, max_pairs)`` are paired, the block chosen by the key's hash
        (so a block is in or out as a whole, whatever its size)."""
        rows = await self.conn.execute(
            text(
                """
                WITH blocks AS (
                    SELECT key, array_agg(record_pk) AS members FROM blocking_keys
                    WHERE :every = 1 OR hashtext(key) % :every = 0
                    GROUP BY key HAVING count(*) BETWEEN 2 AND :cap
                ), pairs AS (
                    SELECT DISTINCT a.pk AS a, b.pk AS b
                    FROM blocks, unnest(members) AS a(pk), unnest(members) AS b(pk)
                    WHERE a.pk < b.pk
                )
                SELECT a, b FROM pairs ORDER BY md5(a::text || '/' || b::text) LIMIT :n
                """
            ),
            {"cap": MAX_BLOCK_SIZE, "n": max_pairs, "every": key_sampling(records, max_pairs)},
        )
        pairs = [(int(r[0]), int(r[1])) for r in rows]
        known = await self.graph.records_by_pk({pk for pair in pairs for pk in pair})
        return [(known[a], known[b]) for a, b in pairs if a in known and b in known]
