"""The quality schema's first revision: Alembic's version table, nothing else yet.

Revision ID: quality_0001
Revises:
Create Date: 2026-11-22
"""

revision = "quality_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
