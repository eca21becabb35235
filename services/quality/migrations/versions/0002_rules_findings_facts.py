"""Validation rules with their history, finding counters, duplicates and contact failures
reported by peers, per-profile facts and daily report snapshots.

Revision ID: quality_0002
Revises: quality_0001
Create Date: 2026-11-22
"""

from alembic import op

revision = "quality_0002"
down_revision = "quality_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE validation_rules (
            rule_id text PRIMARY KEY,
            field text NOT NULL,
            -- '' = every source.
            source text NOT NULL DEFAULT '',
            action text NOT NULL CHECK (action IN ('reject', 'flag')),
            check_name text NOT NULL,
            parameters jsonb NOT NULL DEFAULT '{}',
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        );

        -- Every change of the rules, so "which rules were in force on day X" can be answered.
        CREATE TABLE validation_rule_changes (
            change_pk bigserial PRIMARY KEY,
            rule_id text NOT NULL,
            change text NOT NULL CHECK (change IN ('created', 'deleted')),
            definition jsonb NOT NULL,
            changed_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX validation_rule_changes_rule ON validation_rule_changes (rule_id, changed_at);

        -- Structural errors: findings counted by day, source, rule, field and action.
        CREATE TABLE finding_counts (
            day date NOT NULL,
            source text NOT NULL,
            rule text NOT NULL,
            field text NOT NULL,
            action text NOT NULL,
            count bigint NOT NULL,
            PRIMARY KEY (day, source, rule, field, action)
        );

        -- Records standardised per day and source (the denominator of the finding counts).
        CREATE TABLE record_counts (
            day date NOT NULL,
            source text NOT NULL,
            records bigint NOT NULL,
            rejected bigint NOT NULL,
            flagged bigint NOT NULL,
            PRIMARY KEY (day, source)
        );

        -- Suspected duplicates reported by identity; first_customer_id < second_customer_id.
        -- Resolved pairs stay as tombstones so an older report cannot bring them back.
        CREATE TABLE duplicate_pairs (
            first_customer_id uuid NOT NULL,
            second_customer_id uuid NOT NULL,
            score double precision NOT NULL,
            suspected boolean NOT NULL,
            -- The report time of the latest report applied to the pair.
            reported_at timestamptz NOT NULL,
            first_reported_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (first_customer_id, second_customer_id),
            CHECK (first_customer_id < second_customer_id)
        );
        CREATE INDEX duplicate_pairs_second ON duplicate_pairs (second_customer_id);

        -- Shared identifiers identity stopped matching on (shop phones, test e-mails ...).
        CREATE TABLE blocked_identifiers (
            id_type text NOT NULL,
            namespace text NOT NULL DEFAULT '',
            value text NOT NULL,
            blocked boolean NOT NULL,
            reported_at timestamptz NOT NULL,
            PRIMARY KEY (id_type, namespace, value)
        );

        -- Bounced e-mails and failed phones, by a hash of the normalised identifier only.
        CREATE TABLE contact_failures (
            identifier_hash bytea PRIMARY KEY,
            id_type text NOT NULL,
            failed_at timestamptz NOT NULL
        );

        -- What the last report refresh learnt about each profile (no personal data).
        CREATE TABLE profile_facts (
            customer_id uuid PRIMARY KEY,
            refresh_id bigint NOT NULL,
            sources text[] NOT NULL,
            has_valid_phone boolean NOT NULL,
            has_valid_email boolean NOT NULL,
            fields_present text[] NOT NULL,
            birth_date_plausible boolean NOT NULL,
            address_complete boolean NOT NULL,
            contact_confirmed_at timestamptz,
            open_flags integer NOT NULL,
            undeliverable boolean NOT NULL,
            computed_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX profile_facts_refresh ON profile_facts (refresh_id);
        CREATE SEQUENCE refresh_ids;

        -- One report a day (the latest refresh of the day), for the trend.
        CREATE TABLE report_snapshots (
            day date PRIMARY KEY,
            taken_at timestamptz NOT NULL,
            report jsonb NOT NULL
        );
        """
    )
    # A sensible start (svod_quality.domain.rules.DEFAULT_RULE_DEFINITIONS): flag, reject nothing.
    op.execute(
        """
        INSERT INTO validation_rules (rule_id, field, action, check_name) VALUES
            ('default.email_not_disposable', 'email', 'flag', 'email_not_disposable'),
            ('default.email_not_role', 'email', 'flag', 'email_not_role'),
            ('default.birth_date', 'birth_date', 'flag', 'birth_date_plausible'),
            ('default.first_name', 'first_name', 'flag', 'name_plausible'),
            ('default.last_name', 'last_name', 'flag', 'name_plausible'),
            ('default.postcode', 'postal_code', 'flag', 'postcode_format');
        INSERT INTO validation_rule_changes (rule_id, change, definition)
        SELECT rule_id, 'created', jsonb_build_object('rule_id', rule_id, 'field', field,
            'source', source, 'action', action, 'check', check_name, 'parameters', parameters)
        FROM validation_rules;
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP TABLE report_snapshots; DROP SEQUENCE refresh_ids; DROP TABLE profile_facts; "
        "DROP TABLE contact_failures; DROP TABLE blocked_identifiers; DROP TABLE duplicate_pairs; "
        "DROP TABLE record_counts; DROP TABLE finding_counts; "
        "DROP TABLE validation_rule_changes; DROP TABLE validation_rules;"
    )
