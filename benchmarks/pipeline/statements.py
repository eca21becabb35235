"""Which SQL statements a phase's Postgres time went to (``pg_stat_statements``).

The CPU meter names Postgres as the largest consumer of an event (0.18-0.19 ms of 0.56 on a
quiet run, 2026-12-07) but not what it spent it on. With ``--statements`` the benchmark's own
cluster loads ``pg_stat_statements``; each phase starts from a reset and ends with the
statements that took the most execution time (lock waits included: it is not CPU), per
message of the phase. Off by default: the extension adds its own cost to every statement, and
the rates of a run with it are not the rates of one without.
"""

from __future__ import annotations

import psycopg

from svod_runtime.db import libpq_url

PRELOAD = {"shared_preload_libraries": "pg_stat_statements", "pg_stat_statements.track": "all"}
TOP = 15


def _connect(db_url: str) -> psycopg.Connection:
    return psycopg.connect(libpq_url(db_url), autocommit=True, application_name="svod-bench")


def _top(db_url: str, messages: int) -> list[dict]:
    with _connect(db_url) as conn:
        rows = conn.execute(
            """
            SELECT s.query, r.rolname, s.calls, s.rows, s.total_exec_time,
                   s.shared_blks_hit + s.shared_blks_read, s.wal_bytes
              FROM pg_stat_statements s
              JOIN pg_roles r ON r.oid = s.userid
              JOIN pg_database d ON d.oid = s.dbid
             WHERE d.datname = current_database()
             ORDER BY s.total_exec_time DESC
             LIMIT %s
            """,
            (TOP,),
        ).fetchall()
    per = max(messages, 1)
    return [
        {
            "role": role,
            "ms_per_message": round(total_ms / per, 4),
            "calls_per_message": round(calls / per, 3),
            "rows_per_message": round(rows / per, 3),
            "blocks_per_message": round(blocks / per, 2),
            "wal_bytes_per_message": round(float(wal) / per, 1),
            "query": " ".join(query.split())[:240],
        }
        for query, role, calls, rows, total_ms, blocks, wal in rows
    ]


class StatementMeter:
    """A phase's statements: ``reset()`` at its start, ``top(messages)`` at its end; both do
    nothing (``top`` gives no statements) unless ``--statements`` loaded the extension."""

    def __init__(self, db_url: str, enabled: bool) -> None:
        self.db_url, self.enabled = db_url, enabled
        if enabled:
            with _connect(db_url) as conn:
                row = conn.execute("SHOW shared_preload_libraries").fetchone()
                if "pg_stat_statements" not in (row[0] if row else ""):
                    raise SystemExit(
                        "--statements needs pg_stat_statements in shared_preload_libraries "
                        "(the benchmark's own cluster loads it; --shared-cluster's may not)"
                    )
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")

    def reset(self) -> None:
        if self.enabled:
            with _connect(self.db_url) as conn:
                conn.execute("SELECT pg_stat_statements_reset()")

    def top(self, messages: int) -> list[dict]:
        return _top(self.db_url, messages) if self.enabled else []


def print_top(name: str, statements: list[dict]) -> None:
    if not statements:
        return
    print(f"  Postgres execution time per {name}, top statements (pg_stat_statements):")
    for s in statements:
        print(
            f"    {s['ms_per_message']:.4f} ms  {s['calls_per_message']:.2f} calls "
            f"{s['rows_per_message']:.2f} rows {s['wal_bytes_per_message']:.0f} WAL B  "
            f"[{s['role']}] {s['query'][:150]}"
        )
