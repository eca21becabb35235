"""A record's delivery as a heap-only (HOT) update (issue #20).

Delivery sets ``state`` (and ``customer_id``, ``attempts``, ``delivered_at``, ``last_error``);
``records_import``'s predicate named ``state``, so no update of it could be HOT: each wrote a
new entry into ``records_pkey``, the two unique indexes (with their uniqueness checks) and
the heap elsewhere. Now no index names a column delivery changes, and records' pages are
written half full, so every row's delivered version fits beside it (a delivery updates all of
a page's rows in one statement, an import's or a relay pass's). Measured on a copy of
``records`` (100,000 rows of 440-byte payloads inserted 1,000 a statement, delivered in one
statement as an import does or 500 a statement as the relay does; backend CPU from /proc,
load 34-53): 19.1-25.0 us a row before (0 HOT), 4.5-7.4 us at fillfactor 50 (all HOT);
fillfactor 70 or 80 made 43% / 24% of them HOT (14.5 / 19.1 us).

The cost is room: records' pages keep half of themselves free for those versions, about
twice the heap a non-HOT table settles at once vacuum has reused the space of the old versions
(a non-HOT delivery also doubles the heap until then). ``purge_payloads`` shrinks rows later.

Queries of an import's pending records (``import_id = :i AND state = 'pending'``, the last
statements of an import's delivery and of its leftovers, once an import) now read every
record of the import through the index and filter by state: one pass over the import's
rows, against a HOT update for every row.

The index is built again while writes to ``records`` wait (a scan of the table); the
fillfactor is a catalogue change for pages written from now on (existing pages stay full).

Revision ID: ingestion_0011
Revises: ingestion_0010
Create Date: 2026-12-06
"""

from alembic import op

revision = "ingestion_0011"
down_revision = "ingestion_0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        DROP INDEX records_import;
        CREATE INDEX records_import ON records (import_id) WHERE import_id IS NOT NULL;
        ALTER TABLE records SET (fillfactor = 50);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        ALTER TABLE records RESET (fillfactor);
        DROP INDEX records_import;
        CREATE INDEX records_import ON records (import_id)
            WHERE import_id IS NOT NULL AND state = 'pending';
        """
    )
