"""Metrics versioned apart from the rest of a profile in the read model (issue #20): the
profile service announces a change that only applied events with the metrics alone, not the
whole profile, and an older whole profile arriving after it must not take the metrics back.

Revision ID: segmentation_0008
Revises: segmentation_0007
Create Date: 2026-12-04
"""

from alembic import op

revision = "segmentation_0008"
down_revision = "segmentation_0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every stored row's metrics came with its whole profile: same version.
    op.execute(
        """
        ALTER TABLE customers ADD COLUMN metrics_version bigint NOT NULL DEFAULT 0;
        UPDATE customers SET metrics_version = profile_version WHERE profile_version > 0;
        """
    )


def downgrade() -> None:
    op.execute("ALTER TABLE customers DROP COLUMN metrics_version")
