"""Erased customers stay as tombstones: ids that answer NOT_FOUND and that nothing links to.

Revision ID: identity_0005
Revises: identity_0004
Create Date: 2027-01-12
"""

from alembic import op

revision = "identity_0005"
down_revision = "identity_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        -- Set when the customer (or the customer it was merged into) is erased: the id and
        -- its records stay (without any personal data), to answer NOT_FOUND and keep replays
        -- of its records recognised.
        ALTER TABLE customers ADD COLUMN erased_at timestamptz;
        """
    )


def downgrade() -> None:
    op.execute("ALTER TABLE customers DROP COLUMN erased_at;")
