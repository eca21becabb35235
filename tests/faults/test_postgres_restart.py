"""A PostgreSQL crash and restart mid-load: clients see UNAVAILABLE, never INTERNAL, and
nothing acknowledged is lost or counted twice (#15 items 4 and 7).

The suite runs on a private cluster of this test's own (fsync on, synchronous_commit on: what
was acknowledged must survive the crash), never the session's shared server. During the bulk
load of tests/faults/load.py the cluster is restarted with ``pg_ctl restart -m immediate`` (no
checkpoint: recovery replays the WAL, as after a crash). The point-of-sale client sends a
failed stream call again with the same message ids; a second client reads profiles all the
while. Every failure either saw is UNAVAILABLE; afterwards the accounting of
test_crash_recovery.py holds.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from svod.common.v1 import common_pb2
from svod.profile.v1 import profile_pb2, profile_pb2_grpc
from svod_cli.postgres import PrivateCluster, find_bindir
from svod_cli.suite import ProcessSuite, free_ports
from tests.builders import CARD
from tests.faults.harness import Outcome, process_suite, record
from tests.faults.load import Load, Sender, account, build_load, wait_drained
from tests.waiting import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL binaries to start a private cluster with")
    top = Path(tempfile.mkdtemp(prefix="svod-pg-restart-"))
    top.chmod(0o755)  # the cluster runs as the postgres user when the tests run as root
    (port,) = free_ports(1)
    private = PrivateCluster(top / "pg", bindir, port, settings={"synchronous_commit": "on"})
    private.start()
    try:
        yield private
    finally:
        private.stop()
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="module")
def processes(cluster: PrivateCluster) -> Iterator[ProcessSuite]:
    with process_suite(
        cluster.url, {"SVOD_UNKNOWN_CUSTOMER_GRACE_S": "3600"}, prefix="svod_pg_restart"
    ) as suite:
        yield suite


class Reader(threading.Thread):
    """Reads a profile every few milliseconds; counts the answers by status code."""

    def __init__(self, target: str, card: str) -> None:
        super().__init__(daemon=True)
        self.target, self.card = target, card
        self.codes: Counter[str] = Counter()
        self.stop = threading.Event()

    def run(self) -> None:
        with grpc.insecure_channel(self.target) as channel:
            stub = profile_pb2_grpc.ProfileServiceStub(channel)
            request = profile_pb2.GetProfileRequest(
                identifier=common_pb2.Identifier(type=CARD, value=self.card)
            )
            while not self.stop.is_set():
                try:
                    stub.GetProfile(request, timeout=10)
                    self.codes["OK"] += 1
                except grpc.RpcError as error:
                    self.codes[error.code().name] += 1  # type: ignore[attr-defined]
                time.sleep(0.02)


def _first_customer_known(suite: ProcessSuite, load: Load, sender: Sender) -> None:
    with grpc.insecure_channel(suite.target("profile")) as channel:
        stub = profile_pb2_grpc.ProfileServiceStub(channel)
        request = profile_pb2.GetProfileRequest(
            identifier=common_pb2.Identifier(type=CARD, value=load.persons[0].card)
        )

        def known() -> bool:
            try:
                stub.GetProfile(request, timeout=10)
            except grpc.RpcError:
                assert sender.is_alive(), "the load stopped before its first customer was known"
                return False
            return True

        wait_until(known, 60, "the first customer known", 0.1)


def test_postgres_restart_mid_load_is_unavailable_and_loses_nothing(
    cluster: PrivateCluster, processes: ProcessSuite
) -> None:
    suite = processes
    db_url = suite.env["SVOD_DATABASE_URL"]
    load = build_load()
    sender = Sender(suite.target("ingestion"), load)
    sender.start()
    _first_customer_known(suite, load, sender)
    reader = Reader(suite.target("profile"), load.persons[0].card)
    reader.start()
    sender.wait_chunks(len(load.schedule) // 3)
    crashed_at = time.monotonic()
    cluster.restart("immediate")
    back_at = time.monotonic()
    sender.finish()
    wait_drained(db_url, load)
    recovery_s = time.monotonic() - back_at
    reader.stop.set()
    reader.join(15)
    totals = account(suite, db_url, load)
    record(
        Outcome(
            "postgres restart -m immediate mid-load",
            totals.acknowledged,
            totals.delivered,
            totals.lost,
            totals.double_counted,
            recovery_s,
        )
    )
    print(
        f"postgres down {back_at - crashed_at:.1f}s; writer's failed calls "
        f"{dict(sender.failures)}; reader's answers {dict(reader.codes)}"
    )
    # Clients saw the outage as UNAVAILABLE only: something to retry, never INTERNAL.
    assert set(sender.failures) <= {"UNAVAILABLE"}, sender.failures
    assert set(reader.codes) <= {"OK", "UNAVAILABLE"}, reader.codes
    assert reader.codes["UNAVAILABLE"] + sum(sender.failures.values()) > 0, "no call saw it"
    assert (totals.lost, totals.double_counted) == (0, 0)
    assert totals.delivered == totals.acknowledged
