"""Events with metrics computed from them, consents per channel, erase receipts, the outbox.

Revision ID: profile_0002
Revises: profile_0001
Create Date: 2026-11-22
"""

from alembic import op

from svod_runtime.outbox import OUTBOX_DDL_V1

revision = "profile_0002"
down_revision = "profile_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE profiles ADD COLUMN metrics jsonb NOT NULL DEFAULT '{}';

        -- Every applied event; metrics are a fold over these, so they can be recomputed.
        CREATE TABLE events (
            source text NOT NULL,
            message_id text NOT NULL,
            customer_id uuid NOT NULL,
            event_type text NOT NULL,
            occurred_at timestamptz NOT NULL,
            channel text NOT NULL,
            currency text NOT NULL DEFAULT '',
            amount numeric(20, 9) NOT NULL DEFAULT 0,
            discount numeric(20, 9) NOT NULL DEFAULT 0,
            items integer NOT NULL DEFAULT 0,
            categories text[] NOT NULL DEFAULT '{}',
            order_id text NOT NULL DEFAULT '',
            reference_id text NOT NULL DEFAULT '',
            contact_channel text NOT NULL DEFAULT '',
            loyalty_points bigint NOT NULL DEFAULT 0,
            properties jsonb NOT NULL DEFAULT '{}',
            applied_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (source, message_id)
        );
        CREATE INDEX events_timeline ON events (customer_id, occurred_at DESC, source, message_id);

        -- The current consent per channel; consent_history keeps every change.
        CREATE TABLE consents (
            customer_id uuid NOT NULL,
            channel text NOT NULL,
            status text NOT NULL CHECK (status IN ('opted_in', 'opted_out')),
            source text NOT NULL,
            at timestamptz NOT NULL,
            legal_basis text NOT NULL DEFAULT '',
            PRIMARY KEY (customer_id, channel)
        );
        CREATE TABLE consent_history (
            entry_pk bigserial PRIMARY KEY,
            customer_id uuid NOT NULL,
            channel text NOT NULL,
            status text NOT NULL,
            source text NOT NULL,
            at timestamptz NOT NULL,
            legal_basis text NOT NULL DEFAULT '',
            recorded_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX consent_history_customer ON consent_history (customer_id);

        -- Proof of erasure: no personal data, only what was removed and when.
        CREATE TABLE erasure_receipts (
            receipt_id uuid PRIMARY KEY,
            customer_id uuid NOT NULL,
            erased_at timestamptz NOT NULL DEFAULT now(),
            actor text NOT NULL,
            reason text NOT NULL DEFAULT '',
            counts jsonb NOT NULL
        );

        CREATE INDEX profiles_updated ON profiles (updated_at);
        CREATE INDEX trait_search ON trait_values (field, lower(value));
        """
        + OUTBOX_DDL_V1
    )


def downgrade() -> None:
    op.execute(
        "DROP TABLE outbox; DROP INDEX trait_search; DROP INDEX profiles_updated; "
        "DROP TABLE erasure_receipts; DROP TABLE consent_history; DROP TABLE consents; "
        "DROP TABLE events; ALTER TABLE profiles DROP COLUMN metrics;"
    )
