"""Fixtures of profile's integration tests."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import pytest

from svod_cli.suite import create_database, drop_database, prepare_database
from svod_runtime.config import service_database_url


@pytest.fixture
def profile_urls(postgres_admin_url: str) -> Iterator[Callable[[], str]]:
    """Makes scratch databases with every service's schema (each call a new one) and gives
    profile's URL of each; dropped after the test."""
    made: list[str] = []

    def make() -> str:
        name = f"svod_test_profile_{secrets.token_hex(4)}"
        url = create_database(postgres_admin_url, name)
        made.append(name)
        prepare_database(url)
        return service_database_url("profile", {"SVOD_DATABASE_URL": url})

    try:
        yield make
    finally:
        for name in made:
            drop_database(postgres_admin_url, name)
