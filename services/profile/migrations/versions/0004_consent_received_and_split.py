"""When each standing consent was received, so an opt-out received after an opt-in that is not
in effect yet (dated ahead) can win over it; which customer id each consent statement was made
for and which event it came from, so a split takes it along with the records and events.

Revision ID: profile_0004
Revises: profile_0003
Create Date: 2026-12-01
"""

from alembic import op

revision = "profile_0004"
down_revision = "profile_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Consents stored before were received at their time at the latest, or now for those dated
    # ahead (an opt-in dated 2030 counts as received now: a later opt-out wins over it).
    op.execute(
        """
        ALTER TABLE consents ADD COLUMN received_at timestamptz;
        UPDATE consents SET received_at = least(at, now());
        ALTER TABLE consents ALTER COLUMN received_at SET NOT NULL,
            ALTER COLUMN received_at SET DEFAULT now();

        ALTER TABLE consent_history ADD COLUMN stated_for uuid,
            ADD COLUMN record_source text, ADD COLUMN record_message_id text;
        UPDATE consent_history SET stated_for = customer_id;
        """
    )


def downgrade() -> None:
    op.execute(
        "ALTER TABLE consent_history DROP COLUMN stated_for, DROP COLUMN record_source, "
        "DROP COLUMN record_message_id; ALTER TABLE consents DROP COLUMN received_at"
    )
