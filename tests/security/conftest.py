"""A suite with authentication on: a key file with a principal per scope (with and without it),
a segment-scoped marketer, and a key of its own for each service."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import psycopg
import pytest

from svod_cli.suite import InProcessSuite, create_database, drop_database, prepare_database
from svod_runtime.access import Scope
from svod_runtime.auth import principal_entry
from svod_runtime.config import SERVICES
from svod_runtime.db import libpq_url


def key_of(principal: str) -> str:
    return f"test-key-{principal}"


def bearer(principal: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key_of(principal)}"),)


def principals_for_tests() -> list[dict]:
    entries = [principal_entry("admin", key_of("admin"), [s.value for s in Scope])]
    for scope in Scope:
        entries.append(
            principal_entry(f"with-{scope.value}", key_of(f"with-{scope.value}"), [scope.value])
        )
        others = [s.value for s in Scope if s is not scope]
        entries.append(
            principal_entry(f"without-{scope.value}", key_of(f"without-{scope.value}"), others)
        )
    entries.append(
        principal_entry(
            "marketing",
            key_of("marketing"),
            ["profile:read", "profile:write", "profile:export", "segment:read", "segment:admin"],
            segments=["sec-vip"],
        )
    )
    entries.append(
        principal_entry(
            "tiny",
            key_of("tiny"),
            ["quality:read", "segment:read"],
            rate_per_s=0.5,
            burst=3,
            max_streams=1,
        )
    )
    entries.append(
        principal_entry("one-stream", key_of("one-stream"), ["segment:read"], max_streams=1)
    )
    for service in SERVICES:
        entries.append(
            principal_entry(f"svod-{service}", key_of(f"svod-{service}"), service=service)
        )
    return entries


@dataclass
class SecuredSuite:
    suite: InProcessSuite
    key_file: Path
    url: str

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(libpq_url(self.url), autocommit=True)

    def target(self, service: str) -> str:
        return self.suite.target(service)

    def channel(self, service: str) -> grpc.Channel:
        return grpc.insecure_channel(self.target(service))


@pytest.fixture(scope="session")
def secured(postgres_admin_url, tmp_path_factory) -> Iterator[SecuredSuite]:
    name = f"svod_sec_{os.getpid()}_{secrets.token_hex(3)}"
    url = create_database(postgres_admin_url, name)
    key_file = tmp_path_factory.mktemp("keys") / "keys.json"
    key_file.write_text(json.dumps({"principals": principals_for_tests()}))
    env = {
        "SVOD_API_KEYS_FILE": str(key_file),
        "SVOD_UNKNOWN_CUSTOMER_GRACE_S": "2",
        # Destinations' files go to a folder of the run, not the checkout's .data/exports.
        "SVOD_EXPORT_DIR": str(tmp_path_factory.mktemp("exports")),
    }
    for service in SERVICES:
        env[f"SVOD_{service.upper()}_PEER_API_KEY"] = key_of(f"svod-{service}")
    suite = None
    try:
        prepare_database(url)
        suite = InProcessSuite(url, extra_env=env).start()
        yield SecuredSuite(suite, key_file, url)
    finally:
        if suite is not None:
            suite.stop()
        drop_database(postgres_admin_url, name)
