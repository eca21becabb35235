"""Nothing acknowledged is lost or counted twice when a service dies (#15).

The five services run as separate processes, as the chart runs them. During a bulk load of
identify calls and order events (300 customers, 100 of them identified again from a second
source, 2,000 orders; tests/faults/load.py), one service (quality too: identify calls are then
accepted unchecked and checked before delivery) is killed with SIGKILL and started
again; the client sends a failed stream call again with the same message ids, as a point of
sale does. Afterwards every acknowledged event is counted exactly once in its customer's
order_count and total_spent, segmentation's events and read model agree with profile, no
identify call made a second customer, and every backlog (ingestion's records, held events,
each service's outbox) drains to zero.

Recovery is the time from the restarted service answering until everything has drained
(the rest of the load is still being sent during it).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from svod_cli.suite import ProcessSuite
from tests.faults.harness import Outcome, kill, process_suite, record, restart
from tests.faults.load import Sender, account, build_load, wait_drained

pytestmark = pytest.mark.slow

DOWN_S = 2.0


@pytest.fixture(scope="module")
def processes(postgres_admin_url: str) -> Iterator[ProcessSuite]:
    # Events never fail for an unknown customer here: each is sent after its identify.
    with process_suite(
        postgres_admin_url, {"SVOD_UNKNOWN_CUSTOMER_GRACE_S": "3600"}, prefix="svod_crash"
    ) as suite:
        yield suite


@pytest.mark.parametrize("service", ["ingestion", "identity", "profile", "segmentation", "quality"])
def test_kill_9_during_a_bulk_load_loses_nothing_and_counts_nothing_twice(
    processes: ProcessSuite, service: str
) -> None:
    suite = processes
    db_url = suite.env["SVOD_DATABASE_URL"]
    load = build_load()
    sender = Sender(suite.target("ingestion"), load)
    sender.start()
    # A third of the way in: some customers known, events of others still to come.
    sender.wait_chunks(len(load.schedule) // 3)
    kill(suite, service)
    time.sleep(DOWN_S)
    restart(suite, service)
    back_at = time.monotonic()
    sender.finish()
    wait_drained(db_url, load)
    recovery_s = time.monotonic() - back_at
    totals = account(suite, db_url, load)
    record(
        Outcome(
            f"kill -9 {service} mid-load",
            totals.acknowledged,
            totals.delivered,
            totals.lost,
            totals.double_counted,
            recovery_s,
        )
    )
    assert (totals.lost, totals.double_counted) == (0, 0)
    assert totals.delivered == totals.acknowledged
