"""Held events are found by keyed hashes of their identifiers (HMAC with SVOD_HASH_SECRET).

The plain SHA-256 kept before could be reversed by trying every phone number. Those keys are
dropped; the events they belonged to get a look at once and stay on their periodic schedule
(nothing is lost: an identify no longer wakes them early, the next scheduled look finds it).

Revision ID: ingestion_0003
Revises: ingestion_0002
Create Date: 2027-01-13
"""

from alembic import op

revision = "ingestion_0003"
down_revision = "ingestion_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "DELETE FROM held_event_keys; "
        "UPDATE held_events SET next_check_at = now() WHERE queued_at IS NULL;"
    )


def downgrade() -> None:
    op.execute("DELETE FROM held_event_keys;")
