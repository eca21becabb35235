"""Event imports (issue 22): history staged with COPY and folded into metrics set-based.

Each import's staged events live in a table of their own (``event_import_rows_<pk>``, made by
the first StageEventImport of the import, dropped when its commit is done): dropping a table is
free where deleting ten million rows is not, and the unique index that makes staging
idempotent stays as small as one import.

Revision ID: profile_0009
Revises: profile_0008
Create Date: 2026-12-04
"""

from alembic import op

revision = "profile_0009"
down_revision = "profile_0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE event_imports (
            import_pk bigserial PRIMARY KEY,
            import_id text NOT NULL UNIQUE,
            -- 1 staging, 2 committing, 3 committed (EventImport.State).
            state smallint NOT NULL DEFAULT 1,
            staged_count bigint NOT NULL DEFAULT 0,
            applied_count bigint NOT NULL DEFAULT 0,
            duplicate_count bigint NOT NULL DEFAULT 0,
            erased_count bigint NOT NULL DEFAULT 0,
            customer_count bigint NOT NULL DEFAULT 0,
            -- The last staged customer id folded: a resumed commit goes on after it.
            folded_through uuid,
            created_at timestamptz NOT NULL DEFAULT now(),
            committed_at timestamptz,
            finished_at timestamptz
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE event_imports")
