"""A bulk load of identify calls and order events, sent as a real point of sale sends it: in
stream calls of CHUNK messages, a failed call sent again whole with the same message ids
until it is answered (duplicates are answered as such), and the accounting that proves
nothing acknowledged was lost or counted twice.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import grpc
import psycopg

from svod.common.v1 import common_pb2
from svod.ingestion.v1 import ingestion_pb2_grpc
from svod.profile.v1 import profile_pb2, profile_pb2_grpc
from svod_cli.suite import ProcessSuite
from svod_runtime.db import libpq_url
from tests.builders import CARD, EMAIL, PHONE, identify, track
from tests.waiting import wait_until

CHUNK = 100
T = 30.0
# Schemas whose outbox is a backlog to drain (quality keeps none).
OUTBOX_SCHEMAS = ("ingestion", "identity", "profile", "segmentation")


@dataclass(frozen=True)
class Person:
    phone: str
    card: str
    email: str


@dataclass
class Load:
    """What to send, in order, and what each person should end up with."""

    source: str
    web_source: str
    persons: list[Person]
    schedule: list[tuple[str, list[Any]]]
    orders: dict[int, int] = field(default_factory=dict)
    spent: dict[int, Decimal] = field(default_factory=dict)
    # Person of each identify message id (for the duplicate-customer check).
    identify_person: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def messages(self) -> int:
        return sum(len(chunk) for _, chunk in self.schedule)

    @property
    def events(self) -> int:
        return sum(self.orders.values())


# Every person of every load this process builds gets a mobile number of its own. The loads
# of a module share its suite's database, and each load's numbers were once a progression of
# step 7,919 from its run token: two loads whose tokens differed by 7,919 x k (mod 10^7) gave
# person i of one the number of person i - k of the other, and identity rightly made them one
# customer. A clean-clone CI run (2026-12-07) failed so: persons 261-299 of the quality-kill
# load carried the numbers of persons 0-38 of an earlier load, person 261's total_spent
# 1,806.12 = its own 531.12 + the earlier person 0's 1,275.00. 7,919 is prime to 10^7, so one
# counter stepped by it gives 10^7 numbers before any repeats.
_PHONE_BASE = secrets.randbelow(10**7)
_person_numbers = itertools.count()


def _mobile() -> str:
    return f"+7915{(_PHONE_BASE + 7_919 * next(_person_numbers)) % 10**7:07d}"


def build_load(persons: int = 300, events: int = 2_000, again: int = 100) -> Load:
    """``persons`` identified from the shop's tills (phone and card) in three parts, ``again``
    of them identified once more from the web shop (phone and e-mail: the same customer),
    and ``events`` orders by card, each for a person identified before it was sent."""
    run = secrets.token_hex(3)
    load = Load(f"pos-{run}", f"web-{run}", [], [])
    for i in range(persons):
        load.persons.append(Person(_mobile(), f"77{run}{i:05d}", f"p{i}.{run}@example.ru"))
    parts = 3
    per_part = persons // parts
    events_per_part = [events // 4, events // 4, events - 2 * (events // 4)]
    n = 0
    for part in range(parts):
        first, last = part * per_part, (part + 1) * per_part if part < parts - 1 else persons
        identifies = []
        for i in range(first, last):
            p = load.persons[i]
            request = identify(
                load.source,
                phones=(p.phone,),
                cards=(p.card,),
                first_name="Анна",
                message_id=f"id-{i}",
                channel=common_pb2.SOURCE_CHANNEL_POS,
            )
            identifies.append(request)
            load.identify_person[(load.source, f"id-{i}")] = i
        for start in range(0, len(identifies), CHUNK):
            load.schedule.append(("identify", identifies[start : start + CHUNK]))
        if part == parts - 1:
            web = []
            for i in range(min(again, persons)):
                p = load.persons[i]
                web.append(
                    identify(
                        load.web_source, phones=(p.phone,), emails=(p.email,), message_id=f"w-{i}"
                    )
                )
                load.identify_person[(load.web_source, f"w-{i}")] = i
            for start in range(0, len(web), CHUNK):
                load.schedule.append(("identify", web[start : start + CHUNK]))
        known = last
        tracks = []
        for _ in range(events_per_part[part]):
            person = (n * 37) % known
            total = Decimal(100 + n % 53) + Decimal(n % 100) / 100
            tracks.append(
                track(
                    load.source,
                    common_pb2.EVENT_TYPE_ORDER_PLACED,
                    common_pb2.Identifier(type=CARD, value=load.persons[person].card),
                    occurred=f"2026-03-{1 + n % 28:02d}T10:{n % 60:02d}:00Z",
                    total=str(total),
                    message_id=f"order-{n}",
                    channel=common_pb2.SOURCE_CHANNEL_POS,
                )
            )
            load.orders[person] = load.orders.get(person, 0) + 1
            load.spent[person] = load.spent.get(person, Decimal(0)) + total
            n += 1
        for start in range(0, len(tracks), CHUNK):
            load.schedule.append(("track", tracks[start : start + CHUNK]))
    return load


class Sender(threading.Thread):
    """Sends a load's stream calls in order; a call that fails is sent again whole (same
    message ids) after a short pause, until answered. Counts the failures by status code."""

    def __init__(self, target: str, load: Load, pause_s: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.target = target
        self.load = load
        self.pause_s = pause_s
        self.chunks_sent = 0
        self.acknowledged = 0
        self.failures: Counter[str] = Counter()
        self.error: BaseException | None = None
        self.finished_at = 0.0

    def run(self) -> None:
        try:
            with grpc.insecure_channel(self.target) as channel:
                stub = ingestion_pb2_grpc.IngestionServiceStub(channel)
                for kind, chunk in self.load.schedule:
                    self._send(stub, kind, chunk)
                    self.chunks_sent += 1
                    self.acknowledged += len(chunk)
                    time.sleep(self.pause_s)
        except BaseException as error:  # noqa: BLE001 - reported by finish()
            self.error = error
        self.finished_at = time.monotonic()

    def _send(self, stub: Any, kind: str, chunk: list[Any]) -> None:
        method = stub.IdentifyStream if kind == "identify" else stub.TrackStream
        delay = 0.2
        deadline = time.monotonic() + 240
        while True:
            try:
                reply = method(iter(chunk), timeout=T)
            except grpc.RpcError as error:
                self.failures[error.code().name] += 1  # type: ignore[attr-defined]
                if time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            assert reply.rejected_count == 0, reply.rejected
            assert reply.accepted_count + reply.duplicate_count == len(chunk), reply
            return

    def finish(self, timeout_s: float = 300) -> None:
        self.join(timeout_s)
        assert not self.is_alive(), "the load did not finish"
        if self.error is not None:
            raise self.error

    def wait_chunks(self, count: int, timeout_s: float = 120) -> None:
        wait_until(
            lambda: self.chunks_sent,
            timeout_s,
            f"{count} chunks sent",
            until=lambda sent: sent >= count or not self.is_alive(),
        )


def backlog(db_url: str, load: Load) -> dict[str, int]:
    """What is still to do: the load's records not delivered (by state), held events, and
    each service's outbox rows not yet delivered (dead letters too: none is expected)."""
    with psycopg.connect(libpq_url(db_url), autocommit=True) as conn:
        left: dict[str, int] = {}
        for state, count in conn.execute(
            "SELECT state, count(*) FROM ingestion.records WHERE source = ANY(%s) "
            "AND state <> 'delivered' GROUP BY state",
            ([load.source, load.web_source],),
        ):
            left[f"records {state}"] = count
        held = conn.execute("SELECT count(*) FROM ingestion.held_events").fetchone()
        left["held events"] = held[0] if held else 0
        for schema in OUTBOX_SCHEMAS:
            row = conn.execute(f"SELECT count(*) FROM {schema}.outbox").fetchone()
            left[f"{schema} outbox"] = row[0] if row else 0
    return {k: v for k, v in left.items() if v}


def wait_drained(db_url: str, load: Load, timeout_s: float = 240) -> float:
    """Seconds until every record of the load is delivered and every backlog is empty. The
    backlog's course is printed (with -s, or on failure) to tell what a slow recovery waited on."""
    started = time.monotonic()
    course: list[str] = []
    while left := backlog(db_url, load):
        elapsed = time.monotonic() - started
        if not course or len(course) * 2 <= elapsed:
            course.append(f"{elapsed:5.1f}s {left}")
        assert elapsed < timeout_s, "not drained:\n" + "\n".join(course)
        time.sleep(0.5)
    print("\nbacklog while draining:\n" + "\n".join(course))
    return time.monotonic() - started


@dataclass
class Accounting:
    acknowledged: int
    delivered: int
    lost: int
    double_counted: int


def account(suite: ProcessSuite, db_url: str, load: Load) -> Accounting:  # noqa: C901
    """Checks every person's profile, segmentation's read model and the identify calls'
    customers against what was acknowledged; returns the totals for the table."""
    lost = doubled = 0
    customer_of: dict[int, str] = {}
    problems: list[str] = []
    with grpc.insecure_channel(suite.target("profile")) as channel:
        profiles = profile_pb2_grpc.ProfileServiceStub(channel)

        def get(kind: int, value: str) -> profile_pb2.Profile:
            return profiles.GetProfile(
                profile_pb2.GetProfileRequest(
                    identifier=common_pb2.Identifier(type=kind, value=value)
                ),
                timeout=T,
            )

        for i, person in enumerate(load.persons):
            profile = get(CARD, person.card)
            customer_of[i] = profile.customer_id
            if get(PHONE, person.phone).customer_id != profile.customer_id:
                problems.append(f"person {i}: phone and card name different customers")
            expected = load.orders.get(i, 0)
            got = profile.metrics.order_count
            lost += max(0, expected - got)
            doubled += max(0, got - expected)
            money = profile.metrics.total_spent
            spent = Decimal(money.units) + Decimal(money.nanos) / 10**9
            if spent != load.spent.get(i, Decimal(0)):
                problems.append(f"person {i}: total_spent {spent} != {load.spent.get(i)}")
        again = [i for (source, _), i in load.identify_person.items() if source == load.web_source]
        for i in again:
            if get(EMAIL, load.persons[i].email).customer_id != customer_of[i]:
                problems.append(f"person {i}: the web shop's identify made another customer")
    if len(set(customer_of.values())) != len(load.persons):
        problems.append("two persons share a customer")
    with psycopg.connect(libpq_url(db_url), autocommit=True) as conn:
        delivered = conn.execute(
            "SELECT count(*) FROM ingestion.records WHERE source = ANY(%s) AND state = 'delivered'",
            ([load.source, load.web_source],),
        ).fetchone()[0]  # type: ignore[index]
        # Every identify call was attributed to its person's one customer: none made another.
        for source, message_id, customer in conn.execute(
            "SELECT source, message_id, customer_id::text FROM ingestion.records "
            "WHERE source = ANY(%s) AND kind = 'identify'",
            ([load.source, load.web_source],),
        ):
            person = load.identify_person[(source, message_id)]
            if customer != customer_of[person]:
                problems.append(f"identify {source}/{message_id} went to another customer")
        # Segmentation's behaviour (its events) and read model agree with profile.
        ids = sorted(customer_of.values())
        seen = {
            str(c): (int(n), Decimal(s or 0))
            for c, n, s in conn.execute(
                "SELECT customer_id, count(*), sum(amount) FROM segmentation.events "
                "WHERE source = %s AND event_type = 'order_placed' "
                "AND customer_id = ANY(CAST(%s AS uuid[])) GROUP BY customer_id",
                (load.source, ids),
            )
        }
        read_model = {
            str(c): (int(n), Decimal(s))
            for c, n, s in conn.execute(
                "SELECT customer_id, order_count, total_spent FROM segmentation.customers "
                "WHERE customer_id = ANY(CAST(%s AS uuid[]))",
                (ids,),
            )
        }
    for i, customer in customer_of.items():
        expected = (load.orders.get(i, 0), load.spent.get(i, Decimal(0)))
        if seen.get(customer, (0, Decimal(0))) != expected:
            problems.append(f"person {i}: segmentation events {seen.get(customer)} != {expected}")
        if read_model.get(customer) != expected:
            problems.append(f"person {i}: segmentation read model {read_model.get(customer)}")
    assert not problems, problems[:20]
    return Accounting(load.messages, delivered, lost, doubled)
