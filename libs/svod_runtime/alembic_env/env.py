"""The Alembic environment every service's migrations run in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text

config = context.config
schema = config.get_main_option("svod.schema")
url = (config.get_main_option("sqlalchemy.url") or "").replace(
    "postgresql://", "postgresql+psycopg://", 1
)

engine = create_engine(url, poolclass=pool.NullPool)
with engine.connect() as connection:
    # Unqualified names in revision scripts land in the service's own schema.
    connection.execute(text(f'SET search_path TO "{schema}"'))
    connection.commit()
    context.configure(
        connection=connection,
        version_table_schema=schema,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
