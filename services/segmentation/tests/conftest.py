"""Fixtures of segmentation's tests (builders live in helpers.py)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from svod_cli.suite import create_database, drop_database, prepare_database


@pytest.fixture
def tag() -> str:
    """Marks the customers of one test, so rules can pick them out of the shared database."""
    return f"t{secrets.token_hex(5)}"


@pytest.fixture
def own_segmentation_url(postgres_admin_url: str) -> Iterator[str]:
    """Segmentation's URL in a database of its own with every service's schema, dropped after
    the test: for tests whose segments or feed must not meet the shared database's."""
    name = f"svod_test_seg_{os.getpid()}_{secrets.token_hex(3)}"
    db_url = create_database(postgres_admin_url, name)
    try:
        yield prepare_database(db_url)["segmentation"]
    finally:
        drop_database(postgres_admin_url, name)
