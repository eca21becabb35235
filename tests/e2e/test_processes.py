"""The suite as `svod run` starts it: one process per service, driven by the `svod` CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest

from svod_cli.suite import (
    ProcessSuite,
    create_database,
    drop_database,
    free_ports,
    prepare_database,
)
from svod_runtime.config import SERVICES
from tests.waiting import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def running_processes(postgres_admin_url):
    name = f"svod_proc_{time.monotonic_ns()}"
    url = create_database(postgres_admin_url, name)
    suite = None
    try:
        prepare_database(url)
        suite = ProcessSuite(url, ports=dict(zip(SERVICES, free_ports(5), strict=True))).start()
        yield suite
    finally:
        if suite is not None:
            suite.stop()
        drop_database(postgres_admin_url, name)


def svod(suite: ProcessSuite, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "svod_cli", *args],
        env={**os.environ, **suite.env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_ingests_demo_data_and_shows_a_merged_profile(running_processes) -> None:
    suite = running_processes
    status = svod(suite, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.count("SERVING") == 5

    from svod_cli.__main__ import DEMO_FILE

    ingested = svod(suite, "ingest", str(DEMO_FILE))
    assert ingested.returncode == 0, ingested.stdout + ingested.stderr
    assert "accepted 12" in ingested.stdout  # 8 identify calls, 4 events

    def shown() -> dict[str, Any]:
        got = svod(suite, "profile", "get", "--phone", "8 916 123 45 67", "--json")
        return json.loads(got.stdout) if got.returncode == 0 else {"error": got.stderr}

    profile = wait_until(
        shown, 30, "3 sources", 0.2, until=lambda p: len(p.get("sources", [])) == 3
    )
    assert {s["source"] for s in profile["sources"]} == {"pos-msk-01", "webshop", "app"}
    profile = wait_until(
        shown, 30, "2 orders", 0.2, until=lambda p: p.get("metrics", {}).get("order_count") == "2"
    )
    assert profile["metrics"]["total_spent"]["units"] == "8590"

    again = svod(suite, "ingest", str(DEMO_FILE))
    assert "accepted 0, duplicates 12" in again.stdout

    mapping = svod(suite, "identity", "export-mapping")
    assert mapping.returncode == 0, mapping.stderr
    rows = mapping.stdout.strip().splitlines()
    assert rows[0].startswith("source,message_id,customer_id")
    assert len(rows) == 1 + 8
    customer_of = {row.split(",")[1]: row.split(",")[2] for row in rows[1:]}
    assert customer_of["pos-0001"] == customer_of["web-0001"] == customer_of["app-0001"]

    missing = svod(suite, "profile", "get", "--email", "nobody@example.ru")
    assert missing.returncode == 1
    assert "NOT_FOUND" in missing.stderr


def test_sigterm_drains_and_every_service_exits_cleanly(running_processes) -> None:
    codes = running_processes.stop()
    assert codes == dict.fromkeys(SERVICES, 0)
