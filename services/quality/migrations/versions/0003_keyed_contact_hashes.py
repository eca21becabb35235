"""Contact failures are kept under keyed hashes (HMAC with SVOD_HASH_SECRET).

The plain SHA-256 kept before could be reversed by trying every phone number; those rows
cannot be converted (the values are not kept), so the bounce and delivery-failure reports
received before this version are forgotten.

Revision ID: quality_0003
Revises: quality_0002
Create Date: 2027-01-12
"""

from alembic import op

revision = "quality_0003"
down_revision = "quality_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM contact_failures")


def downgrade() -> None:
    op.execute("DELETE FROM contact_failures")
