"""Segmentation's read model, segments with versions, memberships with history.

Revision ID: segmentation_0002
Revises: segmentation_0001
Create Date: 2026-11-23
"""

from alembic import op

revision = "segmentation_0002"
down_revision = "segmentation_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        -- The read model: one row per profile, typed columns for what rules test, fed by the
        -- profile service's change announcements. merged_into marks customers merged away.
        CREATE TABLE customers (
            customer_id uuid PRIMARY KEY,
            profile_version bigint NOT NULL DEFAULT 0,
            merged_into uuid,
            first_name text,
            last_name text,
            middle_name text,
            gender text,
            birth_date date,
            city text,
            region text,
            country_code text,
            postal_code text,
            currency text,
            order_count bigint NOT NULL DEFAULT 0,
            total_spent numeric NOT NULL DEFAULT 0,
            average_order_value numeric NOT NULL DEFAULT 0,
            return_count bigint NOT NULL DEFAULT 0,
            total_returned numeric NOT NULL DEFAULT 0,
            first_order_at timestamptz,
            last_order_at timestamptz,
            last_contact_at timestamptz,
            channels text[] NOT NULL DEFAULT '{}',
            items_bought bigint NOT NULL DEFAULT 0,
            abandoned_cart_count bigint NOT NULL DEFAULT 0,
            campaign_delivered_count bigint NOT NULL DEFAULT 0,
            campaign_opened_count bigint NOT NULL DEFAULT 0,
            campaign_clicked_count bigint NOT NULL DEFAULT 0,
            session_count bigint NOT NULL DEFAULT 0,
            support_ticket_count bigint NOT NULL DEFAULT 0,
            last_support_ticket_at timestamptz,
            loyalty_points_balance bigint NOT NULL DEFAULT 0,
            sources text[] NOT NULL DEFAULT '{}',
            identifier_types text[] NOT NULL DEFAULT '{}',
            -- channel -> "opted_in" / "opted_out"
            consents jsonb NOT NULL DEFAULT '{}',
            attributes jsonb NOT NULL DEFAULT '{}',
            profile_created_at timestamptz,
            profile_updated_at timestamptz,
            applied_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX customers_merged ON customers (merged_into) WHERE merged_into IS NOT NULL;

        -- Behaviour: every event a profile change announced, idempotent by its record.
        CREATE TABLE events (
            source text NOT NULL,
            message_id text NOT NULL,
            customer_id uuid NOT NULL,
            event_type text NOT NULL,
            occurred_at timestamptz NOT NULL,
            amount numeric,
            discount numeric,
            categories text[] NOT NULL DEFAULT '{}',
            channel text NOT NULL DEFAULT '',
            properties jsonb NOT NULL DEFAULT '{}',
            PRIMARY KEY (source, message_id)
        );
        CREATE INDEX events_customer ON events (customer_id, event_type, occurred_at);

        CREATE TABLE segments (
            segment_id text PRIMARY KEY,
            display_name text NOT NULL DEFAULT '',
            description text NOT NULL DEFAULT '',
            rule jsonb,
            builtin text NOT NULL DEFAULT '',
            parameters jsonb NOT NULL DEFAULT '{}',
            -- Computed state of a built-in (cut-offs), refreshed by full recomputes.
            state jsonb NOT NULL DEFAULT '{}',
            version bigint NOT NULL DEFAULT 1,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        );

        -- Every version of every segment's definition.
        CREATE TABLE segment_versions (
            segment_id text NOT NULL,
            version bigint NOT NULL,
            display_name text NOT NULL DEFAULT '',
            description text NOT NULL DEFAULT '',
            rule jsonb,
            builtin text NOT NULL DEFAULT '',
            parameters jsonb NOT NULL DEFAULT '{}',
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (segment_id, version)
        );

        -- Bumped by every change of definitions or built-in state: replicas reload on it.
        CREATE TABLE registry (
            singleton boolean PRIMARY KEY DEFAULT TRUE CHECK (singleton),
            generation bigint NOT NULL
        );
        INSERT INTO registry (singleton, generation) VALUES (TRUE, 1);

        -- Current memberships.
        CREATE TABLE memberships (
            segment_id text NOT NULL,
            customer_id uuid NOT NULL,
            label text,
            entered_at timestamptz NOT NULL,
            PRIMARY KEY (segment_id, customer_id)
        );
        CREATE INDEX memberships_customer ON memberships (customer_id);

        -- Enter/exit history, and the feed WatchMemberships reads in (txid, event_id) order:
        -- rows of transactions older than every running one are final, so a reader that only
        -- reads below that horizon never misses a row committed late.
        CREATE TABLE membership_events (
            event_id bigserial PRIMARY KEY,
            txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
            segment_id text NOT NULL,
            customer_id uuid NOT NULL,
            kind text NOT NULL CHECK (kind IN ('entered', 'exited')),
            label text,
            at timestamptz NOT NULL
        );
        CREATE INDEX membership_events_feed ON membership_events (txid, event_id);
        CREATE INDEX membership_events_customer ON membership_events (customer_id);

        -- When a customer must be looked at again because a time condition may flip.
        CREATE TABLE rechecks (
            customer_id uuid PRIMARY KEY,
            due_at timestamptz NOT NULL
        );
        CREATE INDEX rechecks_due ON rechecks (due_at);

        -- Customers erased on request: late announcements do not bring them back.
        CREATE TABLE erased_customers (
            customer_id uuid PRIMARY KEY,
            erased_at timestamptz NOT NULL DEFAULT now()
        );
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP TABLE erased_customers; DROP TABLE rechecks; DROP TABLE membership_events; "
        "DROP TABLE memberships; DROP TABLE registry; DROP TABLE segment_versions; "
        "DROP TABLE segments; DROP TABLE events; DROP TABLE customers;"
    )
