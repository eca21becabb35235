"""Two ingestion processes (two outbox relays, as the chart's two replicas) on one database,
delivering to a slowed profile: no outbox message is delivered by two relays at once.

The services run as separate processes. Each ingestion process reaches profile through a proxy
of its own in the test process, which forwards every call and holds each ApplyEventBatch for
longer than the relays' lease (SVOD_OUTBOX_LEASE_S=1, calls take 2.5 s): the receiver side sees
which relay delivered which event, and when. Before leases were renewed (a 60 s lease, never
renewed or fenced), a pass longer than the lease was sent again by the other replica while the
first was still sending; now the working relay's heartbeat keeps its lease, the other skips
those messages, and every event arrives once and is counted once.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

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
    wait_healthy,
)
from svod_runtime.config import SERVICES
from tests.builders import PHONE, identify, random_phone, track
from tests.faults.harness import Outcome, record
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

CUSTOMERS = 20
WAVES = 8
EVENTS_PER_WAVE = 20  # per ingestion process
LEASE_S = 1.0
RECEIVER_DELAY_S = 2.5
T = 30.0
DELIVERY_TIMEOUT_S = 180.0
APPLY_EVENT_BATCH = "/svod.profile.v1.ProfileService/ApplyEventBatch"


@dataclass
class Receiver:
    """What the slowed profile saw: per record (source, message id), each delivery's relay
    and its start and end on the receiver's clock."""

    deliveries: dict[tuple[str, str], list[tuple[str, float, float]]] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    # ApplyEventBatch calls that reached the receiver, per relay (finished or not).
    started: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, relay: str) -> None:
        with self.lock:
            self.started[relay] = self.started.get(relay, 0) + 1

    def record(self, relay: str, refs: list[tuple[str, str]], start: float, end: float) -> None:
        with self.lock:
            self.calls[relay] = self.calls.get(relay, 0) + 1
            for ref in refs:
                self.deliveries.setdefault(ref, []).append((relay, start, end))


class SlowProxy(grpc.GenericRpcHandler):
    """Forwards every unary call to profile; ApplyEventBatch after RECEIVER_DELAY_S."""

    def __init__(self, name: str, target: str, receiver: Receiver) -> None:
        self.name = name
        self.target = target
        self.receiver = receiver
        self.delay_s = RECEIVER_DELAY_S
        self.channel: grpc.aio.Channel | None = None

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = details.method

        async def forward(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            assert self.channel is not None
            start = time.monotonic()
            if method == APPLY_EVENT_BATCH:
                self.receiver.start(self.name)
                await asyncio.sleep(self.delay_s)
            metadata = tuple(
                (k, v)
                for k, v in context.invocation_metadata() or ()
                if not k.startswith((":", "grpc-")) and k != "user-agent"
            )
            try:
                answer = await self.channel.unary_unary(method)(
                    request, metadata=metadata, timeout=context.time_remaining()
                )
            except grpc.aio.AioRpcError as error:
                await context.abort(error.code(), error.details() or "")
            if method == APPLY_EVENT_BATCH:
                batch = profile_pb2.ApplyEventBatchRequest.FromString(request)
                refs = [(e.record_ref.source, e.record_ref.message_id) for e in batch.events]
                self.receiver.record(self.name, refs, start, time.monotonic())
            return answer

        return grpc.unary_unary_rpc_method_handler(forward)


class Proxies:
    """The two proxies, served by an event loop of their own in a thread."""

    def __init__(self, profile_target: str, receiver: Receiver) -> None:
        self.ports = free_ports(3)
        self.handlers = [
            SlowProxy(name, profile_target, receiver) for name in ("relay-a", "relay-b", "relay-c")
        ]
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.servers: list[grpc.aio.Server] = []

    def start(self) -> Proxies:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        return self

    async def _start(self) -> None:
        for handler, port in zip(self.handlers, self.ports, strict=True):
            handler.channel = grpc.aio.insecure_channel(handler.target)
            server = grpc.aio.server()
            server.add_generic_rpc_handlers([handler])
            server.add_insecure_port(f"127.0.0.1:{port}")
            await server.start()
            self.servers.append(server)

    def stop(self) -> None:
        async def stop() -> None:
            for server in self.servers:
                await server.stop(None)
            for handler in self.handlers:
                if handler.channel is not None:
                    await handler.channel.close()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def target(self, index: int) -> str:
        return f"127.0.0.1:{self.ports[index]}"


@dataclass
class TwoRelays:
    suite: ProcessSuite
    second: subprocess.Popen[bytes]
    second_port: int
    receiver: Receiver
    proxies: Proxies


@pytest.fixture(scope="module")
def two_relays(postgres_admin_url: str) -> Iterator[TwoRelays]:
    name = f"svod_test_relays_{os.getpid()}_{secrets.token_hex(3)}"
    url = create_database(postgres_admin_url, name)
    ports = dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True))
    receiver = Receiver()
    proxies = Proxies(f"127.0.0.1:{ports['profile']}", receiver).start()
    suite = second = None
    try:
        prepare_database(url)
        common_env = {
            "SVOD_LOG_LEVEL": "WARNING",
            "SVOD_UNKNOWN_CUSTOMER_GRACE_S": "3600",
            "SVOD_OUTBOX_LEASE_S": str(LEASE_S),
            "SVOD_PEER_TIMEOUT_S": "20",
        }
        # Every service reaches profile through proxy A (only ingestion sends events).
        suite = ProcessSuite(
            url,
            ports=ports,
            extra_env={**common_env, "SVOD_PROFILE_TARGET": proxies.target(0)},
        ).start()
        (second_port,) = free_ports(1)
        env = {
            **suite.env,
            "SVOD_INGESTION_PORT": str(second_port),
            "SVOD_INGESTION_METRICS_PORT": "0",
            "SVOD_PROFILE_TARGET": proxies.target(1),
        }
        second = subprocess.Popen([sys.executable, "-m", "svod_ingestion", "serve"], env=env)
        wait_healthy({"ingestion": second_port}, env=env)
        yield TwoRelays(suite, second, second_port, receiver, proxies)
    finally:
        if second is not None:
            second.terminate()
            try:
                second.wait(15)
            except subprocess.TimeoutExpired:
                second.kill()
                second.wait()
        if suite is not None:
            suite.stop()
        proxies.stop()
        drop_database(postgres_admin_url, name)


def _wait_delivered(
    stub: ingestion_pb2_grpc.IngestionServiceStub, refs: list[common_pb2.RecordRef]
) -> None:
    pending = list(refs)

    def undelivered() -> int:
        pending[:] = [
            ref
            for ref in pending
            if stub.GetRecordStatus(
                ingestion_pb2.GetRecordStatusRequest(record_ref=ref), timeout=T
            ).state
            != ingestion_pb2.RecordStatus.STATE_DELIVERED
        ]
        return len(pending)

    wait_until(undelivered, DELIVERY_TIMEOUT_S, "every event delivered", 0.5, lambda n: n == 0)


def _order_counts(
    profile: profile_pb2_grpc.ProfileServiceStub, phones: list[str]
) -> dict[str, int]:
    return {
        phone: profile.GetProfile(
            profile_pb2.GetProfileRequest(
                identifier=common_pb2.Identifier(type=PHONE, value=phone)
            ),
            timeout=T,
        ).metrics.order_count
        for phone in phones
    }


def _accounting(expected: dict[str, int], counted: dict[str, int]) -> tuple[int, int]:
    """Orders missing from their profiles, and orders counted more than once."""
    lost = sum(max(0, n - counted[p]) for p, n in expected.items())
    doubled = sum(max(0, counted[p] - n) for p, n in expected.items())
    return lost, doubled


def test_no_message_is_delivered_by_two_relays_at_once(two_relays: TwoRelays) -> None:
    suite = two_relays.suite
    with (
        grpc.insecure_channel(suite.target("ingestion")) as channel_a,
        grpc.insecure_channel(f"127.0.0.1:{two_relays.second_port}") as channel_b,
        grpc.insecure_channel(suite.target("profile")) as profile_channel,
    ):
        ingestion = [
            ingestion_pb2_grpc.IngestionServiceStub(channel_a),
            ingestion_pb2_grpc.IngestionServiceStub(channel_b),
        ]
        profile = profile_pb2_grpc.ProfileServiceStub(profile_channel)
        phones = [random_phone() for _ in range(CUSTOMERS)]
        identifies = [identify("webshop", phones=(phone,)) for phone in phones]
        for request in identifies:
            ingestion[0].Identify(request, timeout=T)
        _wait_delivered(ingestion[0], [r.record_ref for r in identifies])

        # Waves of orders into both processes: each relay claims what its process wakes it for
        # and whatever else is due, while the other's passes are held up at the receiver.
        sent: list[common_pb2.RecordRef] = []
        per_phone = dict.fromkeys(phones, 0)
        for wave in range(WAVES):
            for side in (0, 1):
                for i in range(EVENTS_PER_WAVE):
                    phone = phones[
                        (wave * 2 * EVENTS_PER_WAVE + side * EVENTS_PER_WAVE + i) % CUSTOMERS
                    ]
                    request = track(
                        "pos",
                        common_pb2.EVENT_TYPE_ORDER_PLACED,
                        common_pb2.Identifier(type=PHONE, value=phone),
                        total="100.00",
                        lines=(("bread", 1, "100.00", "0"),),
                    )
                    ingestion[side].Track(request, timeout=T)
                    sent.append(request.record_ref)
                    per_phone[phone] += 1
            time.sleep(0.4)
        started = time.monotonic()
        _wait_delivered(ingestion[0], sent)
        drained_s = time.monotonic() - started
        counted = _order_counts(profile, phones)
    lost, doubled = _accounting(per_phone, counted)
    record(
        Outcome(
            "two relays, receiver slower than lease",
            len(sent),
            len(sent) - lost,
            lost,
            doubled,
            drained_s,
        )
    )
    # Profile counted each order once.
    assert (lost, doubled) == (0, 0)

    receiver = two_relays.receiver
    with receiver.lock:
        deliveries = {ref: list(d) for ref, d in receiver.deliveries.items()}
        calls = dict(receiver.calls)
    # Both relays delivered: they competed for the same table.
    assert calls.get("relay-a", 0) > 0 and calls.get("relay-b", 0) > 0, calls
    concurrent = []
    for ref in ((r.source, r.message_id) for r in sent):
        seen = deliveries.get(ref, [])
        assert seen, f"{ref} never reached profile"
        for i, (relay1, start1, end1) in enumerate(seen):
            for relay2, start2, end2 in seen[i + 1 :]:
                if relay1 != relay2 and start1 < end2 and start2 < end1:
                    concurrent.append(ref)
    assert concurrent == []
    # The heartbeat kept every lease: nothing was even sent twice.
    twice = {ref: d for ref, d in deliveries.items() if len(d) > 1}
    assert twice == {}


def test_a_killed_relays_messages_are_delivered_by_another_within_15_s(
    two_relays: TwoRelays,
) -> None:
    """A third ingestion process, on the default 10 s lease, is killed (-9) while its pass is at
    the receiver: the other two deliver its messages once its lease has run out."""
    suite = two_relays.suite
    (port,) = free_ports(1)
    env = {
        **suite.env,
        "SVOD_INGESTION_PORT": str(port),
        "SVOD_INGESTION_METRICS_PORT": "0",
        "SVOD_PROFILE_TARGET": two_relays.proxies.target(2),
        "SVOD_OUTBOX_LEASE_S": "10",
    }
    third = subprocess.Popen([sys.executable, "-m", "svod_ingestion", "serve"], env=env)
    a, b, c = two_relays.proxies.handlers
    try:
        wait_healthy({"ingestion": port}, env=env)
        # Only the dying relay's receiver is slow: its pass is in flight when it is killed.
        a.delay_s = b.delay_s = 0.0
        with (
            grpc.insecure_channel(suite.target("ingestion")) as channel_a,
            grpc.insecure_channel(f"127.0.0.1:{port}") as channel_c,
            grpc.insecure_channel(suite.target("profile")) as profile_channel,
        ):
            survivor = ingestion_pb2_grpc.IngestionServiceStub(channel_a)
            dying = ingestion_pb2_grpc.IngestionServiceStub(channel_c)
            profile = profile_pb2_grpc.ProfileServiceStub(profile_channel)
            phones = [random_phone() for _ in range(5)]
            identifies = [identify("webshop", phones=(phone,)) for phone in phones]
            for request in identifies:
                survivor.Identify(request, timeout=T)
            _wait_delivered(survivor, [r.record_ref for r in identifies])

            sent = []
            for i in range(30):
                request = track(
                    "pos",
                    common_pb2.EVENT_TYPE_ORDER_PLACED,
                    common_pb2.Identifier(type=PHONE, value=phones[i % len(phones)]),
                    total="10.00",
                    lines=(("milk", 1, "10.00", "0"),),
                )
                dying.Track(request, timeout=T)
                sent.append(request.record_ref)
            wait_until(
                lambda: two_relays.receiver.started.get("relay-c"), 20, "the third relay delivering"
            )
            third.kill()
            third.wait()
            killed = time.monotonic()
            _wait_delivered(survivor, sent)
            recovery_s = time.monotonic() - killed
            lost, doubled = _accounting(
                dict.fromkeys(phones, len(sent) // len(phones)), _order_counts(profile, phones)
            )
            record(
                Outcome(
                    "kill -9 one of three ingestion relays",
                    len(sent),
                    len(sent) - lost,
                    lost,
                    doubled,
                    recovery_s,
                )
            )
            assert recovery_s < 15.0
            assert (lost, doubled) == (0, 0)
    finally:
        a.delay_s = b.delay_s = c.delay_s = RECEIVER_DELAY_S
        if third.poll() is None:
            third.kill()
            third.wait()
