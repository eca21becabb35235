"""Rules as data, blocking keys, fuzzy evidence, review queue, blocklist, match models, splits.

Revision ID: identity_0002
Revises: identity_0001
Create Date: 2026-12-01
"""

from alembic import op

revision = "identity_0002"
down_revision = "identity_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        -- Versioned matching rules; the highest version is in force. Never updated in place.
        CREATE TABLE rules (
            version bigint PRIMARY KEY,
            body jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            actor text NOT NULL
        );

        -- Fellegi-Sunter models (MatchModel JSON); the highest version is in force.
        CREATE TABLE match_models (
            version bigserial PRIMARY KEY,
            body jsonb NOT NULL,
            trained_pairs bigint NOT NULL DEFAULT 0,
            created_at timestamptz NOT NULL DEFAULT now(),
            actor text NOT NULL
        );

        -- How a record was placed (for Explain): the identifier or candidate record and score.
        ALTER TABLE records ADD COLUMN evidence jsonb NOT NULL DEFAULT '{}';

        -- Which records carry which identifier (normalised), for Explain, splits and audits.
        CREATE TABLE record_identifiers (
            id_type text NOT NULL,
            namespace text NOT NULL DEFAULT '',
            value text NOT NULL,
            record_pk bigint NOT NULL REFERENCES records (record_pk) ON DELETE CASCADE,
            PRIMARY KEY (id_type, namespace, value, record_pk)
        );
        CREATE INDEX record_identifiers_record ON record_identifiers (record_pk);
        INSERT INTO record_identifiers (id_type, namespace, value, record_pk)
        SELECT x ->> 0, x ->> 1, x ->> 2, r.record_pk
        FROM records r, jsonb_array_elements(r.identifiers) AS x
        ON CONFLICT DO NOTHING;

        -- Customers, other than the owner, whose records carried the identifier but are clearly
        -- different people (the frequency blocklist counts them).
        ALTER TABLE identifiers ADD COLUMN sharers jsonb NOT NULL DEFAULT '[]';

        -- Candidate search for fuzzy matching: records by blocking key.
        CREATE TABLE blocking_keys (
            key text NOT NULL,
            record_pk bigint NOT NULL REFERENCES records (record_pk) ON DELETE CASCADE,
            PRIMARY KEY (key, record_pk)
        );
        CREATE INDEX blocking_keys_record ON blocking_keys (record_pk);

        -- Identifier values that stopped linking (frequency, placeholders) - reported, listed.
        CREATE TABLE blocked_identifiers (
            id_type text NOT NULL,
            namespace text NOT NULL DEFAULT '',
            value text NOT NULL,
            reason text NOT NULL,
            people_count bigint NOT NULL DEFAULT 0,
            blocked_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (id_type, namespace, value)
        );
        CREATE INDEX blocked_identifiers_time ON blocked_identifiers (blocked_at, id_type,
                                                                      namespace, value);

        -- Suspected duplicates waiting for (or given) a person's decision.
        CREATE TABLE review_items (
            review_item_id uuid PRIMARY KEY,
            record_pk bigint NOT NULL REFERENCES records (record_pk) ON DELETE CASCADE,
            candidate_record_pk bigint REFERENCES records (record_pk) ON DELETE CASCADE,
            candidate_customer_id uuid NOT NULL,
            score double precision NOT NULL,
            probability double precision NOT NULL,
            explanation jsonb NOT NULL,
            state text NOT NULL DEFAULT 'open',
            decided_by text,
            decision_reason text,
            decided_at timestamptz,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX review_items_open ON review_items (created_at, review_item_id)
            WHERE state = 'open';
        CREATE INDEX review_items_all ON review_items (created_at, review_item_id);

        -- Customers a person declared different (rejected review, split): never auto-merged.
        CREATE TABLE kept_apart (
            customer_a uuid NOT NULL,
            customer_b uuid NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (customer_a, customer_b),
            CHECK (customer_a < customer_b)
        );
        CREATE INDEX kept_apart_b ON kept_apart (customer_b);
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP TABLE kept_apart; DROP TABLE review_items; DROP TABLE blocked_identifiers; "
        "DROP TABLE blocking_keys; ALTER TABLE identifiers DROP COLUMN sharers; "
        "DROP TABLE record_identifiers; ALTER TABLE records DROP COLUMN evidence; "
        "DROP TABLE match_models; DROP TABLE rules;"
    )
