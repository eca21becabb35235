"""Fixtures for the whole suite: a real Postgres (found or started), a fresh database per run,
and the five services running on loopback gRPC ports.

Every test run creates its own database ``svod_test_<random>`` and drops it at the end.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc
import psycopg
import pytest
from hypothesis import HealthCheck, settings
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from psycopg import sql

from svod.common.v1 import common_pb2
from svod.identity.v1 import identity_pb2_grpc
from svod.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from svod.profile.v1 import profile_pb2_grpc
from svod.quality.v1 import quality_pb2_grpc
from svod.segmentation.v1 import segmentation_pb2_grpc
from svod_cli.postgres import PostgresMissing, ensure_postgres
from svod_cli.suite import TOP, InProcessSuite, create_database, drop_database, prepare_database
from svod_runtime.db import libpq_url
from tests.privacy import LogCollector

RPC_TIMEOUT_S = 10.0

# Hypothesis, for the property tests of every tier (tests/properties, the services' unit
# tests): no per-example deadline and no "too slow" health check. On this shared 2-core machine
# a loaded moment made profile's test_event_fact fail the generation-speed check when run on
# its own, without the properties' settings (loaded for the whole suite only). Examples are
# drawn the same way at every run unless SVOD_PROPERTY_RANDOM is set.
settings.register_profile(
    "svod",
    deadline=None,
    suppress_health_check=(HealthCheck.too_slow, HealthCheck.data_too_large),
    database=None,
    derandomize=os.environ.get("SVOD_PROPERTY_RANDOM", "") == "",
)
settings.load_profile("svod")


@pytest.fixture(scope="session", autouse=True)
def collected_logs() -> Iterator[LogCollector]:
    """Every log line of the session, for the check that none carries personal data."""
    collector = LogCollector().install()
    yield collector
    collector.remove()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``runs_last`` look back on the whole session: they go last."""
    items.sort(key=lambda item: item.get_closest_marker("runs_last") is not None)


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    try:
        url, cluster = ensure_postgres(TOP)
    except PostgresMissing as missing:
        pytest.exit(f"Svod's tests need PostgreSQL: {missing}", returncode=2)
    yield url
    if cluster is not None:
        cluster.stop()


@dataclass(frozen=True)
class SuiteDatabase:
    admin_url: str
    name: str
    service_urls: dict[str, str]

    def admin_connect(self) -> psycopg.Connection:
        return psycopg.connect(libpq_url(self.admin_url), autocommit=True)


# The session's shared database commits without waiting for its WAL to reach the disk: no test
# on it depends on surviving a crash of PostgreSQL (the fault tests make databases of their own,
# which keep synchronous_commit on). A crash could lose the last moments of commits, never
# corrupt anything. SVOD_TEST_SYNCHRONOUS_COMMIT=on turns it back on. What it saves, measured
# by benchmarks/runtime/bench_durability.py on this 2-core machine: a one-row commit takes
# 0.16 ms with fsync off, 2.56 ms with fsync on, 0.17 ms with fsync on and synchronous_commit
# off (500-row commits: 1.7-1.8 ms in all three). Five integration files (54 tests) took
# 10-74 s with fsync off, 32-74 s with fsync on and 20-47 s with synchronous_commit off over three
# rounds each: the machine's load (5-17) swamped the difference there.
SYNCHRONOUS_COMMIT = os.environ.get("SVOD_TEST_SYNCHRONOUS_COMMIT", "off")


@pytest.fixture
def scratch_databases(postgres_admin_url: str) -> Iterator[Callable[[str], dict[str, str]]]:
    """Makes scratch databases with every service's schema (each call a new one, named after
    the caller's ``purpose``) and gives each service's URL in it; dropped after the test. For
    tests whose rows, segments or feed must not meet the shared suite database's, and for tests
    of one service's storage on its own (no services running)."""
    made: list[str] = []

    def make(purpose: str) -> dict[str, str]:
        name = f"svod_test_{purpose}_{os.getpid()}_{secrets.token_hex(3)}"
        url = create_database(postgres_admin_url, name)
        made.append(name)
        return prepare_database(url)

    try:
        yield make
    finally:
        for name in made:
            drop_database(postgres_admin_url, name)


@pytest.fixture
def profile_urls(scratch_databases: Callable[[str], dict[str, str]]) -> Callable[[], str]:
    """Profile's URL in a new scratch database at each call (see ``scratch_databases``)."""
    return lambda: scratch_databases("profile")["profile"]


@pytest.fixture(scope="session")
def suite_database(postgres_admin_url: str) -> Iterator[SuiteDatabase]:
    name = f"svod_test_{os.getpid()}_{secrets.token_hex(3)}"
    db_url = create_database(postgres_admin_url, name)
    if SYNCHRONOUS_COMMIT != "on":
        with psycopg.connect(libpq_url(postgres_admin_url), autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER DATABASE {} SET synchronous_commit = off").format(
                    sql.Identifier(name)
                )
            )
    try:
        urls = prepare_database(db_url)
        yield SuiteDatabase(db_url, name, urls)
    finally:
        drop_database(postgres_admin_url, name)


@pytest.fixture(scope="session")
def span_exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


class SuiteClient:
    """Synchronous stubs to every running service, with a deadline on every call."""

    def __init__(self, suite: InProcessSuite) -> None:
        self.suite = suite
        self.channels = {s: grpc.insecure_channel(suite.target(s)) for s in suite.ports}
        self.ingestion = ingestion_pb2_grpc.IngestionServiceStub(self.channels["ingestion"])
        self.identity = identity_pb2_grpc.IdentityServiceStub(self.channels["identity"])
        self.profile = profile_pb2_grpc.ProfileServiceStub(self.channels["profile"])
        self.segmentation = segmentation_pb2_grpc.SegmentationServiceStub(
            self.channels["segmentation"]
        )
        self.quality = quality_pb2_grpc.QualityServiceStub(self.channels["quality"])

    def wait_processed(
        self, ref: common_pb2.RecordRef, timeout_s: float = 15.0
    ) -> ingestion_pb2.RecordStatus:
        """Polls until the message left the PENDING state (delivered or failed)."""
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.ingestion.GetRecordStatus(
                ingestion_pb2.GetRecordStatusRequest(record_ref=ref), timeout=RPC_TIMEOUT_S
            )
            if status.state != ingestion_pb2.RecordStatus.STATE_PENDING:
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"{ref} still pending after {timeout_s}s: {status}")
            time.sleep(0.05)

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()


@pytest.fixture(scope="session")
def suite(
    suite_database: SuiteDatabase,
    span_exporter: InMemorySpanExporter,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SuiteClient]:
    running = InProcessSuite(
        suite_database.admin_url,
        exporters=[span_exporter],
        # Events for customers nobody identified fail after 2 s here (10 min by default).
        extra_env={
            "SVOD_UNKNOWN_CUSTOMER_GRACE_S": "2",
            "SVOD_CUSTOM_ATTRIBUTES": (
                '{"shoe_size": "number", "pets": "list", "vip": "bool", "anniversary": "date"}'
            ),
            "SVOD_SURVIVORSHIP": '{"birth_date": {"policy": "most_frequent"}}',
            # Destinations' files go to a folder of the run; live changes are gathered often.
            "SVOD_EXPORT_DIR": str(tmp_path_factory.mktemp("exports")),
            "SVOD_SEGMENTATION_SYNC_S": "0.3",
        },
    ).start()
    client = SuiteClient(running)
    try:
        yield client
    finally:
        client.close()
        running.stop()
