"""A date read from a custom attribute's text without failing on a value that is not one.

Revision ID: segmentation_0003
Revises: segmentation_0002
Create Date: 2026-12-01
"""

from alembic import op

revision = "segmentation_0003"
down_revision = "segmentation_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rules over a date attribute read its ISO text as a date. The profile stores declared
    # dates in ISO form, but a value stored before the attribute was declared may be anything
    # ("2020-02-30", "soon"): it must read as no date, not fail the statement (and with it the
    # evaluation of every customer in the batch).
    op.execute(
        """
        CREATE FUNCTION date_or_null(value text) RETURNS date
        LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
        BEGIN
            IF value IS NULL OR value !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' THEN
                RETURN NULL;
            END IF;
            RETURN CAST(value AS date);
        EXCEPTION WHEN others THEN
            RETURN NULL;
        END
        $$;
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION date_or_null(text)")
