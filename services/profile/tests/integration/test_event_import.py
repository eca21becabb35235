"""Event imports (issue 22): the set-based fold gives exactly what streaming ApplyEventBatch
gives. One generated history (every event type, several events per customer, out of order,
duplicates) goes through ApplyEventBatch into one database and through StageEventImport +
CommitEventImport into another (part of it streamed there first); every customer's metrics,
consents and timeline must be identical. Real Postgres, real identity and profile servers
(GetTimeline asks identity who a customer id names now)."""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from benchmarks.profile.event_data import events
from svod.common.v1 import common_pb2
from svod.identity.v1 import identity_pb2, identity_pb2_grpc
from svod.profile.v1 import profile_pb2, profile_pb2_grpc
from svod_cli.suite import InProcessSuite, create_database, drop_database, prepare_database
from tests.waiting import wait_until

T = 30
PERSONS = 40
EVENTS = 600
SEED = 22
COMMITTED = profile_pb2.EventImport.STATE_COMMITTED


@dataclass
class Side:
    identity: identity_pb2_grpc.IdentityServiceStub
    profile: profile_pb2_grpc.ProfileServiceStub
    # person number -> this database's customer id
    customers: list[str]


@pytest.fixture
def databases(postgres_admin_url) -> Iterator[Callable[[], Side]]:
    """Identity and profile on an empty database of their own (segmentation and quality are
    not started: what profile announces to them waits in its outbox)."""
    started: list[tuple[str, InProcessSuite, grpc.Channel]] = []

    def start() -> Side:
        name = f"svod_test_evimp_{secrets.token_hex(4)}"
        url = create_database(postgres_admin_url, name)
        prepare_database(url)
        suite = InProcessSuite(url, services=("identity", "profile")).start()
        channel = grpc.insecure_channel(suite.target("profile"))
        id_channel = grpc.insecure_channel(suite.target("identity"))
        started.append((name, suite, channel))
        identity = identity_pb2_grpc.IdentityServiceStub(id_channel)
        customers = [
            identity.Resolve(
                identity_pb2.ResolveRequest(
                    record_ref=common_pb2.RecordRef(source="crm", message_id=f"c{p}"),
                    channel=common_pb2.SOURCE_CHANNEL_WEB,
                    identifiers=[
                        common_pb2.Identifier(
                            type=common_pb2.IDENTIFIER_TYPE_EMAIL, value=f"person{p}@example.com"
                        )
                    ],
                ),
                timeout=T,
            ).customer_id
            for p in range(PERSONS)
        ]
        return Side(identity, profile_pb2_grpc.ProfileServiceStub(channel), customers)

    try:
        yield start
    finally:
        for name, suite, channel in started:
            channel.close()
            suite.stop()
            drop_database(postgres_admin_url, name)


PERSON_IDS = [f"p{p}" for p in range(PERSONS)]


def history() -> list[profile_pb2.ApplyEventRequest]:
    """The generated events, customer ids standing for persons ("p<n>"), and one whose texts
    hold what COPY's text format must escape."""
    items = list(events(PERSON_IDS, EVENTS, SEED))
    odd = profile_pb2.ApplyEventRequest()
    odd.CopyFrom(next(i for i in items if i.event.lines))
    odd.record_ref.message_id = 'odd\t"id"\\'
    odd.event.order_id = "A\tB\nC\rD\\E"
    odd.event.lines[0].category = 'x"y\\z,{}\t'
    odd.event.properties['k\t"'] = "v\\n\n{}"
    odd.event.identifiers.add(type=common_pb2.IDENTIFIER_TYPE_PHONE, value='+7 916\t"1"')
    return [*items, odd]


def on(side: Side, items: list[profile_pb2.ApplyEventRequest]) -> list:
    out = []
    for item in items:
        copy = profile_pb2.ApplyEventRequest()
        copy.CopyFrom(item)
        copy.customer_id = side.customers[int(item.customer_id[1:])]
        out.append(copy)
    return out


def stream_batches(side: Side, items: list) -> None:
    for start in range(0, len(items), 100):
        reply = side.profile.ApplyEventBatch(
            profile_pb2.ApplyEventBatchRequest(events=items[start : start + 100]), timeout=T
        )
        assert all(r.HasField("applied") for r in reply.results), reply


def stage(side: Side, import_id: str, messages: list[list]) -> list:
    requests = [
        profile_pb2.StageEventImportRequest(import_id=import_id, events=m) for m in messages
    ]
    return list(side.profile.StageEventImport(iter(requests), timeout=T))


def commit(side: Side, import_id: str) -> profile_pb2.EventImport:
    side.profile.CommitEventImport(
        profile_pb2.CommitEventImportRequest(import_id=import_id), timeout=T
    )
    return wait_until(
        lambda: side.profile.GetEventImport(
            profile_pb2.GetEventImportRequest(import_id=import_id), timeout=T
        ),
        until=lambda found: found.state == COMMITTED,
        what=f"import {import_id} committed",
        timeout_s=120,
    )


def picture(side: Side) -> list[tuple]:
    """Per person: metrics, consents and the whole timeline (customer ids left out)."""
    seen = []
    for customer in side.customers:
        profile = side.profile.GetProfile(
            profile_pb2.GetProfileRequest(customer_id=customer), timeout=T
        )
        entries, token = [], ""
        while True:
            page = side.profile.GetTimeline(
                profile_pb2.GetTimelineRequest(
                    customer_id=customer, page_size=500, page_token=token
                ),
                timeout=T,
            )
            entries += [e.SerializeToString(deterministic=True) for e in page.entries]
            token = page.next_page_token
            if not token:
                break
        consents = [
            (c.channel, c.status, c.source, c.time.ToJsonString(), c.legal_basis)
            for c in profile.consents
        ]
        seen.append(
            (profile.metrics.SerializeToString(deterministic=True), sorted(consents), entries)
        )
    return seen


def test_imported_history_folds_exactly_as_streamed_events(databases) -> None:
    items = history()
    rng = random.Random(7)
    # Streaming: out of order, 10% sent twice.
    streamed = databases()
    shuffled = items[:]
    rng.shuffle(shuffled)
    stream_batches(streamed, on(streamed, shuffled + rng.sample(items, len(items) // 10)))

    imported = databases()
    # A fifth of the history was streamed here before the import (it must count once).
    early = rng.sample(items, len(items) // 5)
    stream_batches(imported, on(imported, early))
    order = items[:]
    rng.shuffle(order)
    mine = on(imported, order)
    head, late = mine[:-40], mine[-40:]
    first = stage(imported, "hist-1", [head[i : i + 250] for i in range(0, len(head), 250)])
    # In another stream: one message of 30 events staged already (duplicates inside the
    # import) and 40 new ones - the new ones are staged, the others counted as duplicates.
    resent = rng.sample(head, 30)
    second = stage(imported, "hist-1", [resent + late])
    assert sum(r.staged_count for r in first) == len(items) - 40
    assert (second[0].staged_count, second[0].duplicate_count) == (40, 30)
    assert second[0].import_staged_count == len(items)

    done = commit(imported, "hist-1")
    assert done.staged_count == len(items)
    assert done.duplicate_count == len(early)
    assert done.applied_count == len(items) - len(early)
    assert done.erased_count == 0
    assert done.customer_count == len({i.customer_id for i in items})
    assert done.finish_time.seconds > 0
    expected = picture(streamed)
    assert picture(imported) == expected
    # The comparison is about something: orders, opt-outs and long timelines are there.
    metrics = [profile_pb2.Metrics.FromString(m) for m, _, _ in expected]
    assert sum(m.order_count for m in metrics) > 100
    assert all(m.channels for m in metrics)
    assert any(consents for _, consents, _ in expected)
    assert max(len(entries) for _, _, entries in expected) > 10

    # Committing again, or importing the same history again, changes nothing.
    again = imported.profile.CommitEventImport(
        profile_pb2.CommitEventImportRequest(import_id="hist-1"), timeout=T
    )
    assert (again.state, again.applied_count) == (COMMITTED, done.applied_count)
    stage(imported, "hist-2", [mine[i : i + 2000] for i in range(0, len(mine), 2000)])
    redo = commit(imported, "hist-2")
    assert (redo.applied_count, redo.duplicate_count, redo.customer_count) == (0, len(items), 0)
    # And an event of the import streamed afterwards counts once as well.
    stream_batches(imported, on(imported, items[:50]))
    assert picture(imported) == picture(streamed)


def _violations(status: status_pb2.Status) -> set[str]:
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            request = error_details_pb2.BadRequest()
            detail.Unpack(request)
            return {v.field for v in request.field_violations}
    return set()


def _fields_of(error: grpc.RpcError) -> set[str]:
    status = rpc_status.from_call(error)
    return _violations(status) if status is not None else set()


def test_bad_input_is_refused_with_field_violations(databases) -> None:
    side = databases()
    good = on(side, history()[:3])
    no_type = profile_pb2.ApplyEventRequest()
    no_type.CopyFrom(good[0])
    no_type.record_ref.message_id = "bad-type"
    no_type.event.type = common_pb2.EVENT_TYPE_UNSPECIFIED
    bad_customer = profile_pb2.ApplyEventRequest()
    bad_customer.CopyFrom(good[1])
    bad_customer.record_ref.message_id = "bad-customer"
    bad_customer.customer_id = "not-a-uuid"
    negative = profile_pb2.ApplyEventRequest()
    negative.CopyFrom(good[2])
    negative.record_ref.message_id = "negative"
    negative.event.total.units = -5
    [reply] = stage(side, "bad-1", [[good[0], no_type, bad_customer, negative, good[1]]])
    assert (reply.staged_count, reply.duplicate_count) == (2, 0)
    refused = {r.index: r for r in reply.refused}
    assert sorted(refused) == [1, 2, 3]
    assert refused[1].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert _violations(refused[1].error) == {"event.type"}
    assert _violations(refused[2].error) == {"customer_id"}
    assert _violations(refused[3].error) == {"event.total"}
    assert refused[2].record_ref.message_id == "bad-customer"

    for messages, field in (
        ([profile_pb2.StageEventImportRequest(events=good)], "import_id"),
        ([profile_pb2.StageEventImportRequest(import_id="no spaces", events=good)], "import_id"),
        (
            [
                profile_pb2.StageEventImportRequest(import_id="a", events=good),
                profile_pb2.StageEventImportRequest(import_id="b", events=good),
            ],
            "import_id",
        ),
        ([profile_pb2.StageEventImportRequest(import_id="big", events=good * 667)], "events"),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            list(side.profile.StageEventImport(iter(messages), timeout=T))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert _fields_of(caught.value) == {field}

    with pytest.raises(grpc.RpcError) as caught:
        side.profile.CommitEventImport(
            profile_pb2.CommitEventImportRequest(import_id="never-staged"), timeout=T
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as caught:
        side.profile.GetEventImport(profile_pb2.GetEventImportRequest(import_id=""), timeout=T)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    commit(side, "bad-1")
    with pytest.raises(grpc.RpcError) as caught:
        stage(side, "bad-1", [good])
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
