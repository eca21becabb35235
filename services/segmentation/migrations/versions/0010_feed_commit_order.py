"""WatchMemberships' feed in commit order: every transaction that writes membership events is
numbered when it commits (feed_commits.seq), and the feed reads in (seq, event_id) order.

The feed read in (txid, event_id) order, but a transaction gets its id at its first write or
row lock, not at its commit: a batch of changes that got its id locking one customer, then
waited for another, could change a customer that the expiry sweeper had changed and committed
meanwhile under a larger id, and the feed gave the two changes in the wrong order
(tests/integration/test_feed_order.py). Numbers are given under a lock held until commit, so
one is given only after every smaller one's transaction has ended: no reader sees a number
before a smaller one, and the feed needs no horizon.

Triggers number every writer's transactions, whatever statement or process wrote the events:
a statement inserting membership events registers its transaction (once), and a deferred
trigger on that registration numbers it at commit. Resume tokens stay "txid.event_id": a
token's transaction is looked up for its number (tests/integration/test_feed_order.py has the
old tokens' case). Transactions of before are numbered in txid order, the order they were read
in.

Revision ID: segmentation_0010
Revises: segmentation_0009
Create Date: 2026-12-06
"""

from alembic import op

revision = "segmentation_0010"
down_revision = "segmentation_0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        -- One row per transaction that wrote membership events; seq is NULL only until it
        -- commits (never seen by another transaction).
        CREATE TABLE feed_commits (
            txid xid8 PRIMARY KEY,
            seq bigint UNIQUE
        );
        -- The last number given; its row lock, held from numbering to commit, orders commits.
        CREATE TABLE feed_clock (
            singleton boolean PRIMARY KEY DEFAULT TRUE CHECK (singleton),
            seq bigint NOT NULL
        );
        INSERT INTO feed_commits (txid, seq)
        SELECT txid, row_number() OVER (ORDER BY txid)
        FROM (SELECT DISTINCT txid FROM membership_events) AS t;
        INSERT INTO feed_clock (singleton, seq)
        SELECT TRUE, coalesce(max(seq), 0) FROM feed_commits;

        CREATE FUNCTION feed_commit_registered() RETURNS trigger
        LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
        BEGIN
            INSERT INTO feed_commits (txid) VALUES (pg_current_xact_id())
            ON CONFLICT (txid) DO NOTHING;
            RETURN NULL;
        END $$;
        CREATE TRIGGER membership_events_registered AFTER INSERT ON membership_events
            FOR EACH STATEMENT EXECUTE FUNCTION feed_commit_registered();

        CREATE FUNCTION feed_commit_numbered() RETURNS trigger
        LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
        BEGIN
            WITH clock AS (UPDATE feed_clock SET seq = seq + 1 RETURNING seq)
            UPDATE feed_commits f SET seq = clock.seq FROM clock WHERE f.txid = NEW.txid;
            RETURN NULL;
        END $$;
        CREATE CONSTRAINT TRIGGER feed_commits_numbered AFTER INSERT ON feed_commits
            DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW EXECUTE FUNCTION feed_commit_numbered();
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TRIGGER membership_events_registered ON membership_events;
        DROP TABLE feed_commits;
        DROP TABLE feed_clock;
        DROP FUNCTION feed_commit_registered();
        DROP FUNCTION feed_commit_numbered();
        """
    )
