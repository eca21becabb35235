"""Batch jobs: imports staged record by record and resolved at once, and re-resolutions.

Revision ID: identity_0006
Revises: identity_0005
Create Date: 2027-02-01
"""

from alembic import op

revision = "identity_0006"
down_revision = "identity_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        -- Imports and re-resolutions (domain/jobs.py). One runs at a time; a running job's
        -- worker renews its lease, and a job whose lease ran out is started again.
        CREATE TABLE resolution_jobs (
            job_pk bigserial PRIMARY KEY,
            job_id text NOT NULL UNIQUE,
            kind text NOT NULL,
            state text NOT NULL,
            phase text NOT NULL DEFAULT 'unspecified',
            dry_run boolean NOT NULL DEFAULT false,
            actor text NOT NULL DEFAULT '',
            reason text NOT NULL DEFAULT '',
            records_staged bigint NOT NULL DEFAULT 0,
            records_total bigint NOT NULL DEFAULT 0,
            records_done bigint NOT NULL DEFAULT 0,
            -- JobOutcome: counts, a re-resolution's changes, seconds per phase.
            outcome jsonb NOT NULL DEFAULT '{}',
            error text NOT NULL DEFAULT '',
            attempts integer NOT NULL DEFAULT 0,
            lease_until timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            queued_at timestamptz,
            started_at timestamptz,
            finished_at timestamptz
        );
        CREATE INDEX resolution_jobs_waiting ON resolution_jobs (queued_at)
            WHERE state IN ('queued', 'running');

        -- Staged records of imports, as Resolve would receive them (normalised). Keyed by
        -- (source, message_id) within an import: staging a record again changes nothing.
        CREATE TABLE import_records (
            job_pk bigint NOT NULL REFERENCES resolution_jobs (job_pk) ON DELETE CASCADE,
            seq bigint NOT NULL,
            source text NOT NULL,
            message_id text NOT NULL,
            channel text NOT NULL,
            observed_at timestamptz NOT NULL,
            identifiers jsonb NOT NULL,
            attributes jsonb NOT NULL,
            PRIMARY KEY (job_pk, source, message_id)
        );
        CREATE UNIQUE INDEX import_records_order ON import_records (job_pk, seq);
        CREATE SEQUENCE import_records_seq;
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP SEQUENCE import_records_seq; DROP TABLE import_records; DROP TABLE resolution_jobs;"
    )
