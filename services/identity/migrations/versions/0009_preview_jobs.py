"""PreviewRules runs as a dry-run re-resolution job in the batch worker (issue #22): the job
keeps the candidate rules it previews.

Revision ID: identity_0009
Revises: identity_0008
Create Date: 2026-12-05
"""

from alembic import op

revision = "identity_0009"
down_revision = "identity_0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The candidate rules of a PreviewRules job (``Rules.to_dict``); NULL: the rules in force.
    op.execute("ALTER TABLE resolution_jobs ADD COLUMN candidate_rules jsonb")


def downgrade() -> None:
    op.execute("ALTER TABLE resolution_jobs DROP COLUMN candidate_rules")
