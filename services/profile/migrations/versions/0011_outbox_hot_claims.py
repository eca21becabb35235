"""Outbox claims as heap-only updates (issue #20): no index on lease_token, pages half free.

See OUTBOX_HOT_DDL: renewals and releases find a claim's rows by outbox_pk.

Revision ID: profile_0011
Revises: profile_0010
Create Date: 2026-12-06
"""

from alembic import op

from svod_runtime.outbox import OUTBOX_HOT_DDL, OUTBOX_HOT_DOWN

revision = "profile_0011"
down_revision = "profile_0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(OUTBOX_HOT_DDL)


def downgrade() -> None:
    op.execute(OUTBOX_HOT_DOWN)
