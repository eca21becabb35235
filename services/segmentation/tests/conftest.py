"""Fixtures of segmentation's tests (builders live in helpers.py)."""

from __future__ import annotations

import secrets

import pytest


@pytest.fixture
def tag() -> str:
    """Marks the customers of one test, so rules can pick them out of the shared database."""
    return f"t{secrets.token_hex(5)}"
