"""Reading the ledger by customer: entries naming a customer as the other side of a merge,
split or review decision.

Revision ID: identity_0004
Revises: identity_0003
Create Date: 2027-01-11
"""

from alembic import op

revision = "identity_0004"
down_revision = "identity_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE INDEX ledger_other_customer ON ledger (other_customer_id, entry_id)
            WHERE other_customer_id IS NOT NULL;
        """
    )


def downgrade() -> None:
    op.execute("DROP INDEX ledger_other_customer;")
