"""Fixtures of segmentation's tests (builders live in helpers.py)."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import pytest


@pytest.fixture
def tag() -> str:
    """Marks the customers of one test, so rules can pick them out of the shared database."""
    return f"t{secrets.token_hex(5)}"


@pytest.fixture
def own_segmentation_url(scratch_databases: Callable[[str], dict[str, str]]) -> str:
    """Segmentation's URL in a database of its own with every service's schema, dropped after
    the test: for tests whose segments or feed must not meet the shared database's."""
    return scratch_databases("seg")["segmentation"]
