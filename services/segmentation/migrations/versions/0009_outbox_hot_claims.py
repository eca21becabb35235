"""Outbox claims as heap-only updates (issue #20): no index on lease_token, pages half free.

See OUTBOX_HOT_DDL: renewals and releases find a claim's rows by outbox_pk.

Revision ID: segmentation_0009
Revises: segmentation_0008
Create Date: 2026-12-06
"""

from alembic import op

from svod_runtime.outbox import OUTBOX_HOT_DDL, OUTBOX_HOT_DOWN

revision = "segmentation_0009"
down_revision = "segmentation_0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(OUTBOX_HOT_DDL)


def downgrade() -> None:
    op.execute(OUTBOX_HOT_DOWN)
