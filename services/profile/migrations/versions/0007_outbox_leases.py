"""The outbox's fencing token, counted attempts and redrives (issue #15): short leases renewed
by a heartbeat, completions only by the claim holding the row, an attempt limit after which a
message is a dead letter, and dead letters sent again (svod deadletters redrive).

Revision ID: profile_0007
Revises: profile_0006
Create Date: 2026-12-03
"""

from alembic import op

from svod_runtime.outbox import OUTBOX_LEASES_DDL, OUTBOX_LEASES_DOWN

revision = "profile_0007"
down_revision = "profile_0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(OUTBOX_LEASES_DDL)


def downgrade() -> None:
    op.execute(OUTBOX_LEASES_DOWN)
