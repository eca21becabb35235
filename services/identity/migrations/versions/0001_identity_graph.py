"""Identity graph: customers, identifiers, records and the append-only ledger.

Revision ID: identity_0001
Revises:
Create Date: 2026-11-22
"""

from alembic import op

from svod_runtime.outbox import OUTBOX_DDL_V1

revision = "identity_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE customers (
            customer_id uuid PRIMARY KEY,
            created_at timestamptz NOT NULL DEFAULT now(),
            -- Set when merged away: the survivor. Kept so old ids keep resolving.
            merged_into uuid REFERENCES customers (customer_id)
        );
        CREATE INDEX customers_merged_into ON customers (merged_into)
            WHERE merged_into IS NOT NULL;

        CREATE TABLE identifiers (
            id_type text NOT NULL,
            namespace text NOT NULL DEFAULT '',
            value text NOT NULL,
            -- Always a current (not merged-away) customer.
            customer_id uuid NOT NULL REFERENCES customers (customer_id),
            first_source text NOT NULL,
            first_seen timestamptz NOT NULL,
            last_seen timestamptz NOT NULL,
            PRIMARY KEY (id_type, namespace, value)
        );
        CREATE INDEX identifiers_customer ON identifiers (customer_id);

        CREATE TABLE records (
            record_pk bigserial PRIMARY KEY,
            source text NOT NULL,
            message_id text NOT NULL,
            customer_id uuid NOT NULL REFERENCES customers (customer_id),
            channel text NOT NULL,
            observed_at timestamptz NOT NULL,
            identifiers jsonb NOT NULL,
            attributes jsonb NOT NULL,
            outcome text NOT NULL,
            rule text NOT NULL,
            resolved_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (source, message_id)
        );
        CREATE INDEX records_customer ON records (customer_id);

        CREATE TABLE ledger (
            entry_id bigserial PRIMARY KEY,
            at timestamptz NOT NULL DEFAULT now(),
            kind text NOT NULL,
            customer_id uuid NOT NULL,
            other_customer_id uuid,
            source text,
            message_id text,
            detail jsonb NOT NULL DEFAULT '{}',
            actor text NOT NULL,
            reason text NOT NULL DEFAULT ''
        );
        CREATE INDEX ledger_customer ON ledger (customer_id, entry_id);

        -- The ledger is append-only: history is never rewritten.
        CREATE FUNCTION ledger_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'identity ledger is append-only';
        END $$;
        CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON ledger
            FOR EACH ROW EXECUTE FUNCTION ledger_is_append_only();
        """
        + OUTBOX_DDL_V1
    )


def downgrade() -> None:
    op.execute(
        "DROP TABLE outbox; DROP TABLE ledger; DROP FUNCTION ledger_is_append_only(); "
        "DROP TABLE records; DROP TABLE identifiers; DROP TABLE customers;"
    )
