"""The outbox's lanes (issue #20): a relay may serve one lane, so single calls are not queued
behind a bulk import's backlog.

Revision ID: segmentation_0007
Revises: segmentation_0006
Create Date: 2026-12-04
"""

from alembic import op

from svod_runtime.outbox import OUTBOX_LANES_DDL, OUTBOX_LANES_DOWN

revision = "segmentation_0007"
down_revision = "segmentation_0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(OUTBOX_LANES_DDL)


def downgrade() -> None:
    op.execute(OUTBOX_LANES_DOWN)
