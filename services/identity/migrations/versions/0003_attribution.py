"""Look-ups that never guess: shared identifiers found fast when a person is erased.

Revision ID: identity_0003
Revises: identity_0002
Create Date: 2027-01-10
"""

from alembic import op

revision = "identity_0003"
down_revision = "identity_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        -- Identifiers other customers share (domain/lookup.py): erasing a person removes them
        -- from every list. Partial: most identifiers share nothing and cost no index entry.
        CREATE INDEX identifiers_sharers ON identifiers USING gin (sharers)
            WHERE sharers <> '[]'::jsonb;
        """
    )


def downgrade() -> None:
    op.execute("DROP INDEX identifiers_sharers;")
