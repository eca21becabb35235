"""An identity outage longer than the grace period loses nothing (#15 item 1).

The five services run as separate processes. Identity is killed for longer than the grace
period (2 s here; 600 s by default) while order events keep arriving - for customers known
before the outage, and for new customers whose identify calls arrive during the outage and
wait in ingestion's outbox. After identity comes back, zero events are failed or left
unattributed, and every event is counted exactly once in its customer's metrics: the grace
clock ran neither while identity was down nor while the customers' identifies were pending.
"""

from __future__ import annotations

import time
from collections import defaultdict

import grpc
import pytest

from svod.common.v1 import common_pb2
from svod.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from svod.profile.v1 import profile_pb2, profile_pb2_grpc
from svod_cli.suite import (
    ProcessSuite,
    create_database,
    drop_database,
    free_ports,
    prepare_database,
)
from svod_runtime.config import SERVICES
from tests.builders import CARD, identify, track, unique
from tests.faults.harness import Outcome, record, restart
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

GRACE_S = 2.0
OUTAGE_S = 3 * GRACE_S  # 6 s
T = 10.0
Status = ingestion_pb2.RecordStatus


@pytest.fixture
def processes(postgres_admin_url):
    name = f"svod_fault_{time.monotonic_ns()}"
    url = create_database(postgres_admin_url, name)
    suite = None
    try:
        prepare_database(url)
        suite = ProcessSuite(
            url,
            ports=dict(zip(SERVICES, free_ports(5), strict=True)),
            extra_env={"SVOD_UNKNOWN_CUSTOMER_GRACE_S": str(GRACE_S)},
        ).start()
        yield suite
    finally:
        if suite is not None:
            suite.stop()
        drop_database(postgres_admin_url, name)


def states(ingestion, refs) -> dict[int, int]:
    counts: dict[int, int] = defaultdict(int)
    for ref in refs:
        status = ingestion.GetRecordStatus(
            ingestion_pb2.GetRecordStatusRequest(record_ref=ref), timeout=T
        )
        counts[status.state] += 1
    return counts


def test_identity_down_longer_than_the_grace_period_loses_nothing(processes) -> None:  # noqa: PLR0915
    suite = processes
    ingestion_channel = grpc.insecure_channel(suite.target("ingestion"))
    profile_channel = grpc.insecure_channel(suite.target("profile"))
    ingestion = ingestion_pb2_grpc.IngestionServiceStub(ingestion_channel)
    profile = profile_pb2_grpc.ProfileServiceStub(profile_channel)
    try:
        known = [unique("2000") for _ in range(6)]
        identified = []
        for card in known:
            request = identify("pos-msk-01", cards=(card,), first_name="Анна")
            ingestion.Identify(request, timeout=T)
            identified.append(request.record_ref)
        newcomers = [unique("3000") for _ in range(4)]
        spent: dict[str, int] = defaultdict(int)
        orders: dict[str, int] = defaultdict(int)
        events: list[common_pb2.RecordRef] = []

        def order(card: str, rub: int) -> None:
            request = track(
                "pos-msk-01",
                common_pb2.EVENT_TYPE_ORDER_PLACED,
                common_pb2.Identifier(type=CARD, value=card),
                total=str(rub),
            )
            ingestion.Track(request, timeout=T)
            events.append(request.record_ref)
            spent[card] += rub
            orders[card] += 1

        wait_until(
            lambda: states(ingestion, identified)[Status.STATE_DELIVERED],
            30,
            "the known customers identified",
            0.1,
            until=lambda delivered: delivered >= len(identified),
        )

        suite.processes["identity"].kill()
        suite.processes["identity"].wait(10)
        down_at = time.monotonic()
        rub = 100
        while time.monotonic() - down_at < OUTAGE_S:
            for card in known:
                order(card, rub)
                rub += 1
            if newcomers and time.monotonic() - down_at > GRACE_S / 2:
                # A new customer's identify, then her order, both while identity is down.
                card = newcomers.pop()
                ingestion.Identify(identify("webshop", cards=(card,), first_name="Вера"), timeout=T)
                order(card, rub)
                rub += 1
            time.sleep(0.3)
        during = states(ingestion, events)
        assert during[Status.STATE_FAILED] == 0 and during[Status.STATE_UNATTRIBUTED] == 0
        sample = ingestion.GetRecordStatus(
            ingestion_pb2.GetRecordStatusRequest(record_ref=events[-1]), timeout=T
        )
        assert sample.state == Status.STATE_PENDING

        restart(suite, "identity")
        back_at = time.monotonic()

        def none_failed() -> dict[int, int]:
            now = dict(states(ingestion, events))
            assert now.get(Status.STATE_FAILED, 0) == 0, now
            assert now.get(Status.STATE_UNATTRIBUTED, 0) == 0, now
            return now

        wait_until(
            none_failed,
            90,
            "every event delivered",
            0.5,
            until=lambda now: now.get(Status.STATE_DELIVERED, 0) >= len(events),
        )
        recovery_s = time.monotonic() - back_at
        # No event's grace clock ran: not while identity was down, nor while the newcomers'
        # identify calls waited in ingestion's outbox after it came back.
        clocks = [
            ingestion.GetRecordStatus(
                ingestion_pb2.GetRecordStatusRequest(record_ref=ref), timeout=T
            ).unknown_customer_time.ToTimedelta()
            for ref in events
        ]
        assert max(clocks).total_seconds() == 0, max(clocks)

        counted = lost = doubled = 0
        for card in orders:
            metrics = profile.GetProfile(
                profile_pb2.GetProfileRequest(
                    identifier=common_pb2.Identifier(type=CARD, value=card)
                ),
                timeout=T,
            ).metrics
            counted += metrics.order_count
            lost += max(0, orders[card] - metrics.order_count)
            doubled += max(0, metrics.order_count - orders[card])
            assert metrics.total_spent.units == spent[card], card
        record(
            Outcome(
                f"identity down {OUTAGE_S:.0f} s (grace {GRACE_S:.0f} s)",
                len(events),
                counted,
                lost,
                doubled,
                recovery_s,
            )
        )
        assert lost == 0 and doubled == 0
        assert counted == len(events)
    finally:
        ingestion_channel.close()
        profile_channel.close()
