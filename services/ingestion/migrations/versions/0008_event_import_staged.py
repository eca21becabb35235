"""Event imports note which of their events profile has staged in a table of their own.

Before, each message's staged events had their customer noted on their ``records`` row (an
UPDATE of every row, while still pending): a second write of the row through its four
indexes, and a statement whose plan scanned every row of the import so far through
``records_import`` (a bitmap scan of ``import_id = :i``, then a hash join with the message's
2,000 keys) - quadratic in the import's size: at 200,000 events 38 us of Postgres CPU per
event for that UPDATE alone, against 1.8 us for one row per message here (the same 200,000
rows, 2,000 a message, on a copy of ``records`` and its indexes). One row per staged message
instead: its record keys and customers as two arrays; the job's delivery reads them back
(the first noted customer of a record wins, as profile keeps the first staged copy) and
writes each record once more, delivered with its customer; the rows go with the delivery.

Revision ID: ingestion_0008
Revises: ingestion_0007
Create Date: 2026-12-06
"""

from alembic import op

revision = "ingestion_0008"
down_revision = "ingestion_0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE event_import_staged (
            seq bigserial PRIMARY KEY,
            import_id text NOT NULL,
            record_pks bigint[] NOT NULL,
            customer_ids uuid[] NOT NULL,
            CHECK (cardinality(record_pks) = cardinality(customer_ids))
        );
        CREATE INDEX event_import_staged_import ON event_import_staged (import_id, seq);
        -- Events noted the old way (an import staging across the upgrade) keep their note.
        """
    )


def downgrade() -> None:
    op.execute(
        """
        UPDATE records r SET customer_id = s.c
        FROM (SELECT DISTINCT ON (x.p) x.p, x.c FROM event_import_staged m,
                     unnest(m.record_pks, m.customer_ids) AS x(p, c)
              ORDER BY x.p, m.seq) s
        WHERE r.record_pk = s.p AND r.state = 'pending';
        DROP TABLE event_import_staged;
        """
    )
