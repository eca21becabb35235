"""Runs a service's Alembic migrations, with the version table inside the service's schema.

All services share one Alembic environment (``alembic_env/``); each keeps only its own
revision scripts in ``services/<name>/migrations/versions``.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from svod_runtime.db import libpq_url

ENV_DIR = Path(__file__).resolve().parent / "alembic_env"


def alembic_config(versions_dir: Path, url: str, schema: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(ENV_DIR))
    cfg.set_main_option("version_locations", str(versions_dir))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("sqlalchemy.url", libpq_url(url).replace("%", "%%"))
    cfg.set_main_option("svod.schema", schema)
    return cfg


def upgrade(versions_dir: Path, url: str, schema: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(versions_dir, url, schema), revision)
