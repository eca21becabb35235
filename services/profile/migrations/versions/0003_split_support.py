"""What a split needs to re-attribute data: each event's identifiers, each record's channel.

Revision ID: profile_0003
Revises: profile_0002
Create Date: 2026-11-22
"""

from alembic import op

revision = "profile_0003"
down_revision = "profile_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE events ADD COLUMN identifiers jsonb NOT NULL DEFAULT '[]';
        ALTER TABLE applied_records ADD COLUMN channel text NOT NULL DEFAULT 'unspecified';
        ALTER TABLE applied_records ADD COLUMN observed_at timestamptz;
        CREATE INDEX applied_records_customer ON applied_records (customer_id);
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP INDEX applied_records_customer; ALTER TABLE applied_records DROP COLUMN "
        "observed_at, DROP COLUMN channel; ALTER TABLE events DROP COLUMN identifiers;"
    )
