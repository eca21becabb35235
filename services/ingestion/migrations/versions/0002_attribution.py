"""Events that wait for their customer, or are held unattributed, without ever failing.

Revision ID: ingestion_0002
Revises: ingestion_0001
Create Date: 2027-01-10
"""

from alembic import op

revision = "ingestion_0002"
down_revision = "ingestion_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE records DROP CONSTRAINT records_state_check;
        ALTER TABLE records ADD CONSTRAINT records_state_check
            CHECK (state IN ('pending', 'delivered', 'failed', 'unattributed'));
        -- The grace clock of an event nobody is known for (domain/attribution.py): seconds of
        -- genuinely-unknown time so far, and the look it counts from (NULL: stopped).
        ALTER TABLE records ADD COLUMN unknown_for_s double precision NOT NULL DEFAULT 0;
        ALTER TABLE records ADD COLUMN unknown_since timestamptz;

        -- Events waiting for their customer or held unattributed. A due row goes back to the
        -- outbox (queued_at set) for another look; the look deletes it (attributed) or sets
        -- the next one.
        CREATE TABLE held_events (
            record_pk bigint PRIMARY KEY REFERENCES records (record_pk),
            issue text NOT NULL CHECK (issue IN (
                'conflicting_identifiers', 'shared_identifier', 'blocked_identifier',
                'unknown_customer', 'identity_unavailable', 'awaiting_customer')),
            -- Customers the event may belong to (never personal data).
            candidates uuid[] NOT NULL DEFAULT '{}',
            -- What the last look found, for GetRecordStatus (never personal data).
            detail text NOT NULL DEFAULT '',
            checks integer NOT NULL DEFAULT 0,
            next_check_at timestamptz NOT NULL,
            -- Set while handed back to the outbox for a look.
            queued_at timestamptz,
            -- Last time something (an identify, a merge, a rules change) asked for a look.
            woken_at timestamptz,
            held_at timestamptz NOT NULL DEFAULT now(),
            -- W3C trace context of the event's delivery, so later looks continue its trace.
            trace_carrier jsonb NOT NULL DEFAULT '{}'
        );
        CREATE INDEX held_events_due ON held_events (next_check_at) WHERE queued_at IS NULL;
        CREATE INDEX held_events_issue ON held_events (issue, record_pk);
        CREATE INDEX held_events_candidates ON held_events USING gin (candidates);

        -- The identifiers of held events (SHA-256 of their canonical key), so an identify
        -- carrying one wakes them.
        CREATE TABLE held_event_keys (
            key_hash bytea NOT NULL,
            record_pk bigint NOT NULL REFERENCES held_events (record_pk) ON DELETE CASCADE,
            PRIMARY KEY (key_hash, record_pk)
        );
        CREATE INDEX held_event_keys_record ON held_event_keys (record_pk);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE held_event_keys;
        DROP TABLE held_events;
        ALTER TABLE records DROP COLUMN unknown_since;
        ALTER TABLE records DROP COLUMN unknown_for_s;
        UPDATE records SET state = 'failed', last_error = 'unattributed (downgraded)'
            WHERE state = 'unattributed';
        ALTER TABLE records DROP CONSTRAINT records_state_check;
        ALTER TABLE records ADD CONSTRAINT records_state_check
            CHECK (state IN ('pending', 'delivered', 'failed'));
        """
    )
