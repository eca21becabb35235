"""Who changed a segment: every version (and a deletion) names the principal.

Revision ID: segmentation_0005
Revises: segmentation_0004
Create Date: 2027-01-13
"""

from alembic import op

revision = "segmentation_0005"
down_revision = "segmentation_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        -- The authenticated principal that saved (or deleted) this version, with the name it
        -- gave beside it; empty for versions saved before, or with authentication off.
        ALTER TABLE segment_versions ADD COLUMN actor text NOT NULL DEFAULT '';
        ALTER TABLE segment_versions ADD COLUMN deleted boolean NOT NULL DEFAULT false;
        """
    )


def downgrade() -> None:
    op.execute("ALTER TABLE segment_versions DROP COLUMN deleted, DROP COLUMN actor;")
