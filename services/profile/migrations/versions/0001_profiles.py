"""Profiles with trait history, identifiers, contributing sources and applied records.

Revision ID: profile_0001
Revises:
Create Date: 2026-11-22
"""

from alembic import op

revision = "profile_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE profiles (
            customer_id uuid PRIMARY KEY,
            -- The shown value of each trait with its provenance, chosen by survivorship.
            shown jsonb NOT NULL DEFAULT '{}',
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            version bigint NOT NULL DEFAULT 0
        );

        -- Every value any source ever gave, so survivorship can be re-run and history shown.
        CREATE TABLE trait_values (
            value_pk bigserial PRIMARY KEY,
            customer_id uuid NOT NULL,
            field text NOT NULL,
            value text NOT NULL,
            source text NOT NULL,
            channel text NOT NULL,
            observed_at timestamptz NOT NULL,
            record_source text NOT NULL,
            record_message_id text NOT NULL,
            recorded_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX trait_values_customer ON trait_values (customer_id, field);

        CREATE TABLE profile_identifiers (
            customer_id uuid NOT NULL,
            id_type text NOT NULL,
            namespace text NOT NULL DEFAULT '',
            value text NOT NULL,
            source text NOT NULL,
            channel text NOT NULL,
            observed_at timestamptz NOT NULL,
            PRIMARY KEY (customer_id, id_type, namespace, value)
        );

        CREATE TABLE profile_sources (
            customer_id uuid NOT NULL,
            source text NOT NULL,
            channel text NOT NULL,
            first_seen timestamptz NOT NULL,
            last_seen timestamptz NOT NULL,
            record_count bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (customer_id, source)
        );

        -- Idempotency of Apply: a record is applied once.
        CREATE TABLE applied_records (
            source text NOT NULL,
            message_id text NOT NULL,
            customer_id uuid NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (source, message_id)
        );

        -- Customers identity merged away, and where their data went.
        CREATE TABLE merged_customers (
            customer_id uuid PRIMARY KEY,
            survivor_id uuid NOT NULL,
            merged_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX merged_customers_survivor ON merged_customers (survivor_id);

        -- Idempotency of identity changes (merges, splits).
        CREATE TABLE applied_changes (
            change_id text PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now()
        );
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP TABLE applied_changes; DROP TABLE merged_customers; DROP TABLE applied_records; "
        "DROP TABLE profile_sources; DROP TABLE profile_identifiers; DROP TABLE trait_values; "
        "DROP TABLE profiles;"
    )
