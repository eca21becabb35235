"""Customer imports (issue 22): the customers an import's folds changed, until announced.

FoldCustomerImport notes each customer it changed here instead of announcing it;
FinishCustomerImport announces each once and deletes its row. So a customer whose records
reach profile in several calls of one import is announced to segmentation once.

Revision ID: profile_0010
Revises: profile_0009
Create Date: 2026-12-04
"""

from alembic import op

revision = "profile_0010"
down_revision = "profile_0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE customer_import_changes (
            import_id text NOT NULL,
            customer_id uuid NOT NULL,
            PRIMARY KEY (import_id, customer_id)
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE customer_import_changes")
