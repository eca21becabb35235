"""Accepted messages and the transactional outbox that delivers them downstream.

Revision ID: ingestion_0001
Revises:
Create Date: 2026-11-22
"""

from alembic import op

revision = "ingestion_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE records (
            record_pk bigserial PRIMARY KEY,
            record_id uuid NOT NULL UNIQUE,
            source text NOT NULL,
            message_id text NOT NULL,
            kind text NOT NULL CHECK (kind IN ('identify', 'track')),
            channel text NOT NULL,
            -- The request as accepted (serialised protobuf); erased on request.
            payload bytea,
            -- Fingerprint of the request as sent: tells a retry from a reused message id.
            payload_hash bytea NOT NULL,
            received_at timestamptz NOT NULL DEFAULT now(),
            state text NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'delivered', 'failed')),
            customer_id uuid,
            attempts integer NOT NULL DEFAULT 0,
            last_error text,
            delivered_at timestamptz,
            UNIQUE (source, message_id)
        );

        CREATE TABLE outbox (
            outbox_pk bigserial PRIMARY KEY,
            record_pk bigint NOT NULL REFERENCES records (record_pk),
            -- W3C trace context of the accepting call, so delivery continues its trace.
            trace_carrier jsonb NOT NULL DEFAULT '{}',
            next_attempt_at timestamptz NOT NULL DEFAULT now(),
            -- A relay holds a row until this time; a crashed relay's rows come back after it.
            locked_until timestamptz,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX outbox_due ON outbox (next_attempt_at);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE outbox; DROP TABLE records;")
