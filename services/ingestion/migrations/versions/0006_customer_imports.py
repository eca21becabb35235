"""Customer imports through identity's batch engine (issue 22): the import jobs, and which
import a stored record came in with.

A record of an import gets no outbox entry: the import's job resolves its records together
(identity's StageImportRecords / CommitImport / ListImportResults) and folds them into the
profiles, then marks them delivered. ``records.import_id`` is NULL for every other path, so the
column costs nothing there (a nullable column without default is added without a rewrite).

Revision ID: ingestion_0006
Revises: ingestion_0005
Create Date: 2026-12-04
"""

from alembic import op

revision = "ingestion_0006"
down_revision = "ingestion_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE customer_imports (
            import_id text PRIMARY KEY,
            state text NOT NULL DEFAULT 'staging'
                CHECK (state IN ('staging', 'running', 'succeeded', 'failed')),
            phase text NOT NULL DEFAULT 'staging'
                CHECK (phase IN ('staging', 'resolving', 'folding', 'segments', 'done')),
            records_staged bigint NOT NULL DEFAULT 0,
            resolution_phase text NOT NULL DEFAULT '',
            records_total bigint NOT NULL DEFAULT 0,
            records_resolved bigint NOT NULL DEFAULT 0,
            -- ListImportResults' resume point: results up to it are folded and delivered.
            results_after bigint NOT NULL DEFAULT 0,
            records_delivered bigint NOT NULL DEFAULT 0,
            records_failed bigint NOT NULL DEFAULT 0,
            customers_created bigint NOT NULL DEFAULT 0,
            records_linked bigint NOT NULL DEFAULT 0,
            records_already_resolved bigint NOT NULL DEFAULT 0,
            customers_merged bigint NOT NULL DEFAULT 0,
            review_items_opened bigint NOT NULL DEFAULT 0,
            error text NOT NULL DEFAULT '',
            -- The job's lease: one worker at a time; an expired lease (a crash) is taken over.
            lease_owner uuid,
            lease_until timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            committed_at timestamptz,
            finished_at timestamptz
        );
        CREATE INDEX customer_imports_running ON customer_imports (committed_at)
            WHERE state = 'running';
        ALTER TABLE records ADD COLUMN import_id text;
        CREATE INDEX records_import ON records (import_id, state) WHERE import_id IS NOT NULL;
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP INDEX records_import; ALTER TABLE records DROP COLUMN import_id; "
        "DROP TABLE customer_imports;"
    )
