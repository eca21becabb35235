"""Event imports (issue 22): ``customer_imports`` holds event imports' jobs too.

An event import's job shares the customer import's table and lease machinery; ``kind`` tells
them apart (the ids share one namespace), and the event fold's counts get columns of their own.
An event import's records are stored with ``records.import_id`` and no outbox entry; once
staged with profile their customer is noted in ``records.customer_id`` while still pending, so
the job knows which of them profile has (the others are failed at the end, never staged).

Revision ID: ingestion_0007
Revises: ingestion_0006
Create Date: 2026-12-04
"""

from alembic import op

revision = "ingestion_0007"
down_revision = "ingestion_0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE customer_imports
            ADD COLUMN kind text NOT NULL DEFAULT 'customers'
                CHECK (kind IN ('customers', 'events')),
            ADD COLUMN events_handed_over bigint NOT NULL DEFAULT 0,
            ADD COLUMN events_applied bigint NOT NULL DEFAULT 0,
            ADD COLUMN events_duplicate bigint NOT NULL DEFAULT 0,
            ADD COLUMN events_erased bigint NOT NULL DEFAULT 0,
            ADD COLUMN customers_changed bigint NOT NULL DEFAULT 0;
        """
    )


def downgrade() -> None:
    op.execute(
        "ALTER TABLE customer_imports DROP COLUMN kind, DROP COLUMN events_handed_over, "
        "DROP COLUMN events_applied, DROP COLUMN events_duplicate, DROP COLUMN events_erased, "
        "DROP COLUMN customers_changed;"
    )
