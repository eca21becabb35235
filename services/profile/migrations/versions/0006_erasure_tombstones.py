"""Erased customers: tombstones that keep late messages from bringing a person back.

Revision ID: profile_0006
Revises: profile_0005
Create Date: 2027-01-12
"""

from alembic import op

revision = "profile_0006"
down_revision = "profile_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        -- Every id of an erased customer (merged-away ids included). An Apply, an event, a
        -- merge or a split naming one of them is dropped; the id answers NOT_FOUND.
        CREATE TABLE erased_customers (
            customer_id uuid PRIMARY KEY,
            receipt_id uuid NOT NULL,
            erased_at timestamptz NOT NULL DEFAULT now()
        );
        ALTER TABLE erasure_receipts ADD COLUMN customer_ids uuid[] NOT NULL DEFAULT '{}';
        CREATE INDEX erasure_receipts_customer ON erasure_receipts (customer_id, erased_at);
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP INDEX erasure_receipts_customer; "
        "ALTER TABLE erasure_receipts DROP COLUMN customer_ids; DROP TABLE erased_customers;"
    )
