"""Accepted messages and the transactional outbox that delivers them downstream.

Revision ID: ingestion_0001
Revises:
Create Date: 2026-11-22
"""

from alembic import op

from svod_runtime.outbox import OUTBOX_DDL_V1

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
            -- Final figures; while pending, the outbox row has the live ones.
            attempts integer NOT NULL DEFAULT 0,
            last_error text,
            delivered_at timestamptz,
            UNIQUE (source, message_id)
        );

        """
        + OUTBOX_DDL_V1
    )


def downgrade() -> None:
    op.execute("DROP TABLE outbox; DROP TABLE records;")
