"""Who changed a validation rule: every change names the principal.

Revision ID: quality_0004
Revises: quality_0003
Create Date: 2027-01-13
"""

from alembic import op

revision = "quality_0004"
down_revision = "quality_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        -- The authenticated principal that made the change, with the name it gave beside it;
        -- empty for changes made before, or with authentication off.
        ALTER TABLE validation_rule_changes ADD COLUMN actor text NOT NULL DEFAULT '';
        """
    )


def downgrade() -> None:
    op.execute("ALTER TABLE validation_rule_changes DROP COLUMN actor;")
