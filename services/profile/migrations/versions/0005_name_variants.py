"""Every spelling of a profile's name fields, and the keys it is searched by.

``name_variants``: per name field, each distinct spelling with its latest observation, when it
was first seen and how often (a profile shows them as its name history). ``name_keys``: the
script-neutral forms every spelling is found by ("f:masha", "f:maria", "l:smirnova"; see
``svod_names.first_names.search_forms``), with a GIN index for SearchProfiles. Both are filled
for the profiles already stored: variants in SQL, keys in batches of 1,000 profiles (the key of
a name needs the transliteration rules and the first-name table).

Revision ID: profile_0005
Revises: profile_0004
Create Date: 2026-12-02
"""

from alembic import op
from sqlalchemy import text

from svod_names.first_names import search_forms

revision = "profile_0005"
down_revision = "profile_0004"
branch_labels = None
depends_on = None

NAME_FIELDS = ("first_name", "last_name", "middle_name", "full_name")
KEY_PREFIX = {"first_name": "f:", "last_name": "l:", "middle_name": "m:"}
BATCH = 1000


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE profiles ADD COLUMN name_variants jsonb NOT NULL DEFAULT '[]',
            ADD COLUMN name_keys text[] NOT NULL DEFAULT '{}';
        UPDATE profiles p SET name_variants = v.variants
        FROM (
            SELECT customer_id, jsonb_agg(jsonb_build_object(
                'f', field, 'v', value, 's', source, 'ch', channel, 'at', observed_at,
                'first', first_seen, 'n', n) ORDER BY field, observed_at DESC) AS variants
            FROM (
                SELECT DISTINCT ON (customer_id, field, value) customer_id, field, value,
                    source, channel, observed_at,
                    min(observed_at) OVER w AS first_seen, count(*) OVER w AS n
                FROM trait_values
                WHERE field IN ('first_name', 'last_name', 'middle_name', 'full_name')
                WINDOW w AS (PARTITION BY customer_id, field, value)
                ORDER BY customer_id, field, value, observed_at DESC, source DESC
            ) latest
            GROUP BY customer_id
        ) v
        WHERE v.customer_id = p.customer_id;
        """
    )
    conn = op.get_bind()
    after = "00000000-0000-0000-0000-000000000000"
    while True:
        rows = conn.execute(
            text(
                """
                SELECT customer_id, array_agg(DISTINCT field || '|' || value) AS names
                FROM trait_values
                WHERE field IN ('first_name', 'last_name', 'middle_name')
                  AND customer_id IN (
                      SELECT DISTINCT customer_id FROM trait_values
                      WHERE customer_id > CAST(:after AS uuid)
                        AND field IN ('first_name', 'last_name', 'middle_name')
                      ORDER BY customer_id LIMIT :n)
                GROUP BY customer_id ORDER BY customer_id
                """
            ),
            {"after": after, "n": BATCH},
        ).all()
        if not rows:
            break
        updates = []
        for customer_id, names in rows:
            keys: set[str] = set()
            for entry in names:
                field, _, value = entry.partition("|")
                keys |= {KEY_PREFIX[field] + f for f in search_forms(value, field == "first_name")}
            updates.append({"c": customer_id, "k": sorted(keys)})
        conn.execute(
            text("UPDATE profiles SET name_keys = CAST(:k AS text[]) WHERE customer_id = :c"),
            updates,
        )
        after = str(rows[-1][0])
    op.execute("CREATE INDEX profiles_name_keys ON profiles USING gin (name_keys)")


def downgrade() -> None:
    op.execute(
        "DROP INDEX profiles_name_keys; "
        "ALTER TABLE profiles DROP COLUMN name_keys, DROP COLUMN name_variants"
    )
