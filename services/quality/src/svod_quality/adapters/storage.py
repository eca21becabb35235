"""The only module that touches the ``quality`` schema.

Every method is one transaction. Counters are added with one statement per table whose rows are
locked in key order, so concurrent batches never deadlock; reports from peers are upserts that
only move forward in time, so re-sending one changes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from svod_quality.domain import (
    BatchTally,
    ProfileFacts,
    QualityPoint,
    QualityReport,
    SourceStats,
    ValidationRule,
)
from svod_quality.domain.records import PairKey, RecordCountRow, StoredRule, ViolationRow
from svod_quality.domain.rules import RuleChange
from svod_runtime.errors import AlreadyExists, FailedPrecondition, NotFound

# pg advisory lock key of the report refresh (one at a time per database).
_REFRESH_LOCK = 0x5D0D_0A11_7E5F_0001 & 0x7FFF_FFFF_FFFF_FFFF


def _rule_from_row(row: Any) -> StoredRule:
    rule = ValidationRule(
        row.rule_id,
        row.field,
        row.source or None,
        row.action,
        row.check_name,
        dict(row.parameters),
    )
    return StoredRule(rule, row.created_at, row.updated_at)


_POINT_FIELDS = (
    "valid_phone_share",
    "valid_email_share",
    "duplicate_rate",
    "completeness",
    "stale_share",
    "profiles",
    "undeliverable_share",
)


def report_to_json(report: QualityReport) -> dict[str, Any]:
    """A snapshot as stored: the point and the breakdowns, not the trend."""
    return {
        "now": {name: getattr(report.now, name) for name in _POINT_FIELDS},
        "completeness_by_field": report.completeness_by_field,
        "completeness_by_source": report.completeness_by_source,
        "worst_sources": report.worst_sources,
        "sources": [
            [
                s.source,
                s.profiles,
                s.completeness,
                s.mean_score,
                s.valid_phone_share,
                s.valid_email_share,
            ]
            for s in report.sources
        ],
        "suspected_duplicate_pairs": report.suspected_duplicate_pairs,
        "blocked_identifiers": report.blocked_identifiers,
        "freshness_days": report.freshness_days,
    }


def report_from_json(taken_at: dt.datetime, raw: dict[str, Any]) -> QualityReport:
    point = raw.get("now", {})
    now = QualityPoint(taken_at, **{k: point.get(k, 0) for k in _POINT_FIELDS})
    return QualityReport(
        now=now,
        trend=[now],
        completeness_by_field=dict(raw.get("completeness_by_field", {})),
        completeness_by_source=dict(raw.get("completeness_by_source", {})),
        worst_sources=list(raw.get("worst_sources", [])),
        sources=[SourceStats(*row) for row in raw.get("sources", [])],
        suspected_duplicate_pairs=int(raw.get("suspected_duplicate_pairs", 0)),
        blocked_identifiers=int(raw.get("blocked_identifiers", 0)),
        freshness_days=int(raw.get("freshness_days", 365)),
    )


_RULE_COLUMNS = "rule_id, field, source, action, check_name, parameters, created_at, updated_at"


class QualityStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    # -- validation rules ---------------------------------------------------------------

    async def list_rules(self, source: str | None = None) -> list[StoredRule]:
        """Every rule, or those that apply to ``source`` (its own and the all-sources ones)."""
        query = f"SELECT {_RULE_COLUMNS} FROM validation_rules"
        params: dict[str, Any] = {}
        if source is not None:
            query += " WHERE source = '' OR source = :s"
            params["s"] = source
        async with self.engine.connect() as conn:
            rows = await conn.execute(text(query + " ORDER BY rule_id"), params)
            return [_rule_from_row(r) for r in rows]

    async def create_rule(self, rule: ValidationRule, actor: str = "") -> StoredRule:
        definition = rule.to_dict()
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    text(
                        f"""
                        INSERT INTO validation_rules (rule_id, field, source, action,
                            check_name, parameters)
                        VALUES (:id, :f, :s, :a, :c, CAST(:p AS jsonb))
                        ON CONFLICT (rule_id) DO NOTHING
                        RETURNING {_RULE_COLUMNS}
                        """
                    ),
                    {
                        "id": rule.rule_id,
                        "f": rule.field,
                        "s": rule.source or "",
                        "a": rule.action,
                        "c": rule.check,
                        "p": json.dumps(dict(rule.parameters), ensure_ascii=False),
                    },
                )
            ).first()
            if row is None:
                raise AlreadyExists(f"validation rule {rule.rule_id!r} already exists")
            await self._log_rule_change(conn, rule.rule_id, RuleChange.CREATED, definition, actor)
            return _rule_from_row(row)

    async def delete_rule(self, rule_id: str, actor: str = "") -> None:
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    text(
                        f"DELETE FROM validation_rules WHERE rule_id = :id "
                        f"RETURNING {_RULE_COLUMNS}"
                    ),
                    {"id": rule_id},
                )
            ).first()
            if row is None:
                raise NotFound(f"no validation rule {rule_id!r}")
            await self._log_rule_change(
                conn, rule_id, RuleChange.DELETED, _rule_from_row(row).rule.to_dict(), actor
            )

    @staticmethod
    async def _log_rule_change(
        conn: Any, rule_id: str, change: RuleChange, definition: dict, actor: str
    ) -> None:
        await conn.execute(
            text(
                "INSERT INTO validation_rule_changes (rule_id, change, definition, actor) "
                "VALUES (:id, :c, CAST(:d AS jsonb), :a)"
            ),
            {
                "id": rule_id,
                "c": change,
                "d": json.dumps(definition, ensure_ascii=False),
                "a": actor,
            },
        )

    # -- findings -----------------------------------------------------------------------

    async def add_tally(self, day: dt.date, source: str, tally: BatchTally) -> None:
        """Adds a batch's counts: one statement per table, rows in key order."""
        keys = sorted(tally.findings)
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    """
                    INSERT INTO record_counts (day, source, records, rejected, flagged)
                    VALUES (:d, :s, :n, :r, :f)
                    ON CONFLICT (day, source) DO UPDATE SET
                        records = record_counts.records + excluded.records,
                        rejected = record_counts.rejected + excluded.rejected,
                        flagged = record_counts.flagged + excluded.flagged
                    """
                ),
                {
                    "d": day,
                    "s": source,
                    "n": tally.records,
                    "r": tally.rejected,
                    "f": tally.flagged,
                },
            )
            if keys:
                await conn.execute(
                    text(
                        """
                        INSERT INTO finding_counts (day, source, rule, field, action, count)
                        SELECT :d, :s, t.rule, t.field, t.action, t.n
                        FROM unnest(CAST(:rules AS text[]), CAST(:fields AS text[]),
                                    CAST(:actions AS text[]), CAST(:counts AS bigint[]))
                             WITH ORDINALITY AS t(rule, field, action, n, ord)
                        ORDER BY t.ord
                        ON CONFLICT (day, source, rule, field, action) DO UPDATE SET
                            count = finding_counts.count + excluded.count
                        """
                    ),
                    {
                        "d": day,
                        "s": source,
                        "rules": [k[0] for k in keys],
                        "fields": [k[1] for k in keys],
                        "actions": [k[2] for k in keys],
                        "counts": [tally.findings[k] for k in keys],
                    },
                )

    async def violation_stats(
        self, since: dt.date, source: str | None
    ) -> tuple[list[ViolationRow], list[RecordCountRow]]:
        where = "day >= :since" + (" AND source = :s" if source else "")
        params = {"since": since, "s": source}
        async with self.engine.connect() as conn:
            violations = await conn.execute(
                text(
                    f"SELECT day, source, rule, field, action, count FROM finding_counts "
                    f"WHERE {where} ORDER BY count DESC, day DESC, source, rule, field, action "
                    "LIMIT 10000"
                ),
                params,
            )
            records = await conn.execute(
                text(
                    f"SELECT day, source, records, rejected, flagged FROM record_counts "
                    f"WHERE {where} ORDER BY day, source"
                ),
                params,
            )
            return (
                [ViolationRow(*r) for r in violations],
                [RecordCountRow(*r) for r in records],
            )

    # -- duplicates and contact failures reported by peers ------------------------------

    async def report_duplicates(
        self,
        suspected: dict[PairKey, float],
        resolved: Iterable[PairKey],
        blocked: Iterable[tuple[str, str, str]],
        unblocked: Iterable[tuple[str, str, str]],
        at: dt.datetime,
    ) -> None:
        """Applies one report of identity's; rows only change for a report at least as new."""
        pairs = sorted(
            [(k, score, True) for k, score in suspected.items()]
            + [(k, 0.0, False) for k in resolved]
        )
        idents = sorted([(*i, True) for i in blocked] + [(*i, False) for i in unblocked])
        async with self.engine.begin() as conn:
            if pairs:
                await conn.execute(
                    text(
                        """
                        INSERT INTO duplicate_pairs (first_customer_id, second_customer_id,
                            score, suspected, reported_at)
                        SELECT t.a, t.b, t.score, t.suspected, :at
                        FROM unnest(CAST(:a AS uuid[]), CAST(:b AS uuid[]),
                                    CAST(:score AS float8[]), CAST(:suspected AS boolean[]))
                             WITH ORDINALITY AS t(a, b, score, suspected, ord)
                        ORDER BY t.ord
                        ON CONFLICT (first_customer_id, second_customer_id) DO UPDATE SET
                            score = CASE WHEN excluded.suspected THEN excluded.score
                                         ELSE duplicate_pairs.score END,
                            suspected = excluded.suspected,
                            reported_at = excluded.reported_at
                        WHERE excluded.reported_at >= duplicate_pairs.reported_at
                        """
                    ),
                    {
                        "a": [p[0].first for p in pairs],
                        "b": [p[0].second for p in pairs],
                        "score": [p[1] for p in pairs],
                        "suspected": [p[2] for p in pairs],
                        "at": at,
                    },
                )
            if idents:
                await conn.execute(
                    text(
                        """
                        INSERT INTO blocked_identifiers (id_type, namespace, value, blocked,
                            reported_at)
                        SELECT t.id_type, t.ns, t.value, t.blocked, :at
                        FROM unnest(CAST(:types AS text[]), CAST(:ns AS text[]),
                                    CAST(:vals AS text[]), CAST(:blocked AS boolean[]))
                             WITH ORDINALITY AS t(id_type, ns, value, blocked, ord)
                        ORDER BY t.ord
                        ON CONFLICT (id_type, namespace, value) DO UPDATE SET
                            blocked = excluded.blocked, reported_at = excluded.reported_at
                        WHERE excluded.reported_at >= blocked_identifiers.reported_at
                        """
                    ),
                    {
                        "types": [i[0] for i in idents],
                        "ns": [i[1] for i in idents],
                        "vals": [i[2] for i in idents],
                        "blocked": [i[3] for i in idents],
                        "at": at,
                    },
                )

    async def record_contact_failures(
        self, failures: Sequence[tuple[bytes, str, dt.datetime]]
    ) -> None:
        """(identifier hash, type, failure time); the latest failure of each is kept."""
        rows = sorted(failures)
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    """
                    INSERT INTO contact_failures (identifier_hash, id_type, failed_at)
                    SELECT t.h, t.id_type, t.at
                    FROM unnest(CAST(:h AS bytea[]), CAST(:types AS text[]),
                                CAST(:at AS timestamptz[]))
                         WITH ORDINALITY AS t(h, id_type, at, ord)
                    ORDER BY t.ord
                    ON CONFLICT (identifier_hash) DO UPDATE SET
                        failed_at = greatest(contact_failures.failed_at, excluded.failed_at)
                    """
                ),
                {
                    "h": [r[0] for r in rows],
                    "types": [r[1] for r in rows],
                    "at": [r[2] for r in rows],
                },
            )

    async def erase_customer(self, customer_id: str, hashes: Sequence[bytes]) -> int:
        erased = 0
        async with self.engine.begin() as conn:
            for statement, params in (
                ("DELETE FROM profile_facts WHERE customer_id = :c", {"c": customer_id}),
                (
                    "DELETE FROM duplicate_pairs WHERE first_customer_id = :c "
                    "OR second_customer_id = :c",
                    {"c": customer_id},
                ),
                (
                    "DELETE FROM contact_failures WHERE identifier_hash = ANY(:h)",
                    {"h": list(hashes)},
                ),
            ):
                result = await conn.execute(text(statement), params)
                erased += int(result.rowcount or 0)
        return erased

    async def contact_failures(
        self, hashes: Sequence[bytes] | None = None
    ) -> dict[bytes, dt.datetime]:
        """Identifier hash -> last failure time; all of them, or those among ``hashes``."""
        query = "SELECT identifier_hash, failed_at FROM contact_failures"
        params: dict[str, Any] = {}
        if hashes is not None:
            query += " WHERE identifier_hash = ANY(CAST(:h AS bytea[]))"
            params["h"] = list(hashes)
        async with self.engine.connect() as conn:
            return {bytes(r[0]): r[1] for r in await conn.execute(text(query), params)}

    async def is_suspected_duplicate(self, customer_id: str) -> bool:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT 1 FROM duplicate_pairs WHERE suspected AND "
                        "(first_customer_id = CAST(:c AS uuid) OR "
                        "second_customer_id = CAST(:c AS uuid)) LIMIT 1"
                    ),
                    {"c": customer_id},
                )
            ).first()
            return row is not None

    # -- per-profile facts and report snapshots -----------------------------------------

    @asynccontextmanager
    async def refresh_lock(self) -> AsyncIterator[int]:
        """Holds the database-wide refresh lock; yields a new refresh id.

        FAILED_PRECONDITION when another refresh (on any replica) holds it.
        """
        async with self.engine.connect() as conn:
            got = (
                await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _REFRESH_LOCK})
            ).scalar_one()
            await conn.commit()
            if not got:
                raise FailedPrecondition("a quality report refresh is already running")
            try:
                refresh_id = (
                    await conn.execute(text("SELECT nextval('refresh_ids')"))
                ).scalar_one()
                await conn.commit()
                yield int(refresh_id)
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _REFRESH_LOCK})
                await conn.commit()

    async def save_facts(self, refresh_id: int, facts: Sequence[ProfileFacts]) -> None:
        if not facts:
            return
        rows = [
            {
                "c": f.customer_id,
                "r": refresh_id,
                "src": list(f.sources),
                "phone": f.has_valid_phone,
                "email": f.has_valid_email,
                "present": sorted(f.fields_present),
                "bd": f.birth_date_plausible,
                "addr": f.address_complete,
                "confirmed": f.contact_confirmed_at,
                "flags": f.open_flags,
                "undeliverable": f.undeliverable,
            }
            for f in sorted(facts, key=lambda f: f.customer_id)
        ]
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    """
                    INSERT INTO profile_facts (customer_id, refresh_id, sources, has_valid_phone,
                        has_valid_email, fields_present, birth_date_plausible, address_complete,
                        contact_confirmed_at, open_flags, undeliverable)
                    VALUES (:c, :r, :src, :phone, :email, :present, :bd, :addr, :confirmed,
                        :flags, :undeliverable)
                    ON CONFLICT (customer_id) DO UPDATE SET
                        refresh_id = excluded.refresh_id, sources = excluded.sources,
                        has_valid_phone = excluded.has_valid_phone,
                        has_valid_email = excluded.has_valid_email,
                        fields_present = excluded.fields_present,
                        birth_date_plausible = excluded.birth_date_plausible,
                        address_complete = excluded.address_complete,
                        contact_confirmed_at = excluded.contact_confirmed_at,
                        open_flags = excluded.open_flags,
                        undeliverable = excluded.undeliverable, computed_at = now()
                    """
                ),
                rows,
            )

    async def drop_facts_except(self, refresh_id: int) -> None:
        """Forgets profiles the given refresh did not see (merged away or erased)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                text("DELETE FROM profile_facts WHERE refresh_id <> :r"), {"r": refresh_id}
            )

    async def iter_facts(self) -> AsyncIterator[ProfileFacts]:
        """Every stored profile's facts; a profile is a suspected duplicate when identity
        suspects it with another profile that still exists."""
        async with self.engine.connect() as conn:
            result = await conn.stream(
                text(
                    """
                    SELECT f.customer_id, f.sources, f.has_valid_phone, f.has_valid_email,
                        f.fields_present, f.birth_date_plausible, f.address_complete,
                        f.contact_confirmed_at, f.open_flags, f.undeliverable,
                        EXISTS (
                            SELECT 1 FROM duplicate_pairs d JOIN profile_facts o
                              ON o.customer_id = CASE WHEN d.first_customer_id = f.customer_id
                                  THEN d.second_customer_id ELSE d.first_customer_id END
                            WHERE d.suspected AND (d.first_customer_id = f.customer_id
                                  OR d.second_customer_id = f.customer_id)
                        ) AS duplicate
                    FROM profile_facts f
                    """
                ).execution_options(yield_per=2000)
            )
            async for r in result:
                yield ProfileFacts(
                    customer_id=str(r.customer_id),
                    sources=tuple(r.sources),
                    has_valid_phone=r.has_valid_phone,
                    has_valid_email=r.has_valid_email,
                    fields_present=frozenset(r.fields_present),
                    birth_date_plausible=r.birth_date_plausible,
                    address_complete=r.address_complete,
                    contact_confirmed_at=r.contact_confirmed_at,
                    open_flags=r.open_flags,
                    suspected_duplicate=r.duplicate,
                    undeliverable=r.undeliverable,
                )

    async def duplicate_counts(self) -> tuple[int, int]:
        """(suspected pairs between existing profiles, blocked identifiers)."""
        async with self.engine.connect() as conn:
            pairs = (
                await conn.execute(
                    text(
                        """
                        SELECT count(*) FROM duplicate_pairs d
                        WHERE d.suspected
                          AND EXISTS (SELECT 1 FROM profile_facts a
                                      WHERE a.customer_id = d.first_customer_id)
                          AND EXISTS (SELECT 1 FROM profile_facts b
                                      WHERE b.customer_id = d.second_customer_id)
                        """
                    )
                )
            ).scalar_one()
            blocked = (
                await conn.execute(text("SELECT count(*) FROM blocked_identifiers WHERE blocked"))
            ).scalar_one()
            return int(pairs), int(blocked)

    async def save_snapshot(self, report: QualityReport) -> None:
        """Stores the report as its day's snapshot (a later one of the same day replaces it)."""
        taken_at = report.now.time
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    """
                    INSERT INTO report_snapshots (day, taken_at, report)
                    VALUES (:d, :t, CAST(:r AS jsonb))
                    ON CONFLICT (day) DO UPDATE SET taken_at = excluded.taken_at,
                        report = excluded.report
                    WHERE excluded.taken_at >= report_snapshots.taken_at
                    """
                ),
                {
                    "d": taken_at.date(),
                    "t": taken_at,
                    "r": json.dumps(report_to_json(report), ensure_ascii=False),
                },
            )

    async def snapshots(self, since: dt.date) -> list[QualityReport]:
        """Daily snapshots from ``since`` on, oldest first (each with a one-point trend)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT taken_at, report FROM report_snapshots WHERE day >= :d ORDER BY day"),
                {"d": since},
            )
            return [report_from_json(r.taken_at, dict(r.report)) for r in rows]

    async def latest_snapshot_day(self) -> dt.date | None:
        async with self.engine.connect() as conn:
            return (await conn.execute(text("SELECT max(day) FROM report_snapshots"))).scalar_one()
