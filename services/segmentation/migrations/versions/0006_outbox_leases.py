"""The outbox's fencing token, counted attempts and redrives (issue #15): short leases renewed
by a heartbeat, completions only by the claim holding the row, an attempt limit after which a
message is a dead letter, and dead letters sent again (svod deadletters redrive).

Revision ID: segmentation_0006
Revises: segmentation_0005
Create Date: 2026-12-03
"""

from alembic import op

from svod_runtime.outbox import OUTBOX_LEASES_DDL

revision = "segmentation_0006"
down_revision = "segmentation_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(OUTBOX_LEASES_DDL)


def downgrade() -> None:
    # segmentation_0004 created the columns already; only the lease index is new here.
    op.execute("DROP INDEX IF EXISTS outbox_leased;")
