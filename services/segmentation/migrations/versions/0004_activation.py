"""Activation: destinations, bindings, syncs and webhook deliveries (with the outbox that
retries them), look-alike scores, and the campaign ids of events (attribution).

Revision ID: segmentation_0004
Revises: segmentation_0003
Create Date: 2026-12-03
"""

from alembic import op

from svod_runtime.outbox import OUTBOX_DDL_V1

revision = "segmentation_0004"
down_revision = "segmentation_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(OUTBOX_DDL_V1)
    op.execute(
        """
        -- The outbox's lease and attempt columns (as the other services' outbox migrations
        -- add them): fencing token, counted attempts, redrives.
        ALTER TABLE outbox ADD COLUMN lease_token uuid;
        ALTER TABLE outbox ADD COLUMN failed_attempts integer NOT NULL DEFAULT 0;
        ALTER TABLE outbox ADD COLUMN redrive_count integer NOT NULL DEFAULT 0;
        CREATE INDEX outbox_dead_letters ON outbox (outbox_pk) WHERE failed_at IS NOT NULL;

        -- Campaign (or ticket) ids and order ids of events: attribution groups by campaign.
        ALTER TABLE events ADD COLUMN reference_id text NOT NULL DEFAULT '';
        ALTER TABLE events ADD COLUMN order_id text NOT NULL DEFAULT '';
        -- Orders and touches of a period, across customers (campaign reports).
        CREATE INDEX events_type_time ON events (event_type, occurred_at);

        CREATE TABLE destinations (
            destination_id text PRIMARY KEY,
            display_name text NOT NULL DEFAULT '',
            kind text NOT NULL CHECK (kind IN ('file', 'webhook', 'ad_audience')),
            consent_channel text NOT NULL,
            -- format / url and max_attempts / platform
            settings jsonb NOT NULL DEFAULT '{}',
            -- the webhook's HMAC key (never returned after create)
            secret text NOT NULL DEFAULT '',
            created_at timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE bindings (
            binding_id uuid PRIMARY KEY,
            segment_id text NOT NULL,
            destination_id text NOT NULL REFERENCES destinations (destination_id),
            mode text NOT NULL CHECK (mode IN ('full', 'live')),
            schedule_seconds bigint NOT NULL DEFAULT 0,
            next_sync_at timestamptz,
            -- the sequence number of the binding's next delivery
            next_sequence bigint NOT NULL DEFAULT 1,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX bindings_segment ON bindings (segment_id);
        CREATE INDEX bindings_due ON bindings (next_sync_at) WHERE next_sync_at IS NOT NULL;

        -- Who each webhook binding's destination holds now (customer ids and labels only).
        CREATE TABLE destination_members (
            binding_id uuid NOT NULL,
            customer_id uuid NOT NULL,
            label text NOT NULL DEFAULT '',
            PRIMARY KEY (binding_id, customer_id)
        );

        CREATE TABLE syncs (
            sync_id uuid PRIMARY KEY,
            binding_id uuid NOT NULL,
            segment_id text NOT NULL,
            destination_id text NOT NULL,
            scheduled boolean NOT NULL DEFAULT FALSE,
            state text NOT NULL CHECK (state IN ('running', 'done', 'failed')),
            started_at timestamptz NOT NULL DEFAULT now(),
            ended_at timestamptz,
            member_count bigint NOT NULL DEFAULT 0,
            delivered_count bigint NOT NULL DEFAULT 0,
            skipped_no_consent bigint NOT NULL DEFAULT 0,
            skipped_no_contact bigint NOT NULL DEFAULT 0,
            file_paths text[] NOT NULL DEFAULT '{}',
            error text NOT NULL DEFAULT ''
        );
        CREATE INDEX syncs_binding ON syncs (binding_id, started_at);

        -- Webhook deliveries: the idempotency key, what to send (customer ids, kinds, labels:
        -- contact data is fetched when sending), and how it went. The outbox retries them.
        CREATE TABLE deliveries (
            delivery_id uuid PRIMARY KEY,
            binding_id uuid NOT NULL,
            destination_id text NOT NULL,
            segment_id text NOT NULL,
            sequence bigint NOT NULL,
            kind text NOT NULL CHECK (kind IN ('changes', 'full_sync_page')),
            state text NOT NULL CHECK (state IN ('pending', 'delivered', 'dead_letter')),
            items jsonb NOT NULL,
            item_count integer NOT NULL,
            sync_id uuid,
            page integer NOT NULL DEFAULT 0,
            last_page boolean NOT NULL DEFAULT FALSE,
            attempts integer NOT NULL DEFAULT 0,
            failed_attempts integer NOT NULL DEFAULT 0,
            last_http_status integer NOT NULL DEFAULT 0,
            last_error text NOT NULL DEFAULT '',
            created_at timestamptz NOT NULL DEFAULT now(),
            delivered_at timestamptz,
            UNIQUE (binding_id, sequence)
        );
        CREATE INDEX deliveries_destination ON deliveries (destination_id, created_at DESC);
        CREATE INDEX deliveries_open ON deliveries (binding_id, sequence) WHERE state = 'pending';

        -- The chosen customers of each look-alike segment, with their scores.
        CREATE TABLE lookalike_scores (
            segment_id text NOT NULL,
            customer_id uuid NOT NULL,
            score double precision NOT NULL,
            PRIMARY KEY (segment_id, customer_id)
        );
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP TABLE lookalike_scores; DROP TABLE deliveries; DROP TABLE syncs; "
        "DROP TABLE destination_members; DROP TABLE bindings; DROP TABLE destinations; "
        "DROP INDEX events_type_time; ALTER TABLE events DROP COLUMN order_id; "
        "ALTER TABLE events DROP COLUMN reference_id; DROP TABLE outbox;"
    )
