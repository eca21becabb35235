"""Activation's use cases over in-memory storage, contacts, receiver and files (no database,
no HTTP, no disk): destinations and bindings, full and live syncs, webhook verdicts (delivered,
retried, dead letter, in order), consent checked again at sending, redrives, file exports, and
campaign report checks.

The SQL of each storage method, real HTTP and real files are tested in tests/e2e.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

import pytest

from services.segmentation.tests.unit.activation_fakes import (
    FakeActivationStore,
    FakeContacts,
    FakeFiles,
    FakeReceiver,
)
from svod_runtime.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from svod_runtime.outbox import DeliveryError, OutboxMessage
from svod_segmentation.domain.activation import (
    Binding,
    BindingMode,
    Contact,
    DeliveryKind,
    DeliveryState,
    Destination,
    DestinationKind,
    FileFormat,
    SyncState,
)
from svod_segmentation.service_layer.activation import ActivationService
from svod_segmentation.service_layer.campaigns import CampaignService

T = TypeVar("T")
NOW = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
A, B, C = (f"00000000-0000-0000-0000-00000000000{i}" for i in (1, 2, 3))


def run(awaitable: Awaitable[T]) -> T:
    async def main() -> T:
        return await awaitable

    return asyncio.run(main())


def contact(customer_id: str, *, email: str = "x@example.ru", opted_in: bool = True) -> Contact:
    status = "opted_in" if opted_in else "opted_out"
    return Contact(customer_id, first_name="Анна", email=email, consents={"email": status})


class Activation:
    def __init__(self, statuses: list[int] | None = None) -> None:
        self.store = FakeActivationStore(NOW)
        self.contacts = FakeContacts()
        self.receiver = FakeReceiver(statuses or [200])
        self.files = FakeFiles()
        self.enqueued = 0
        self.use_cases = ActivationService(
            self.store,
            self.contacts,
            self.receiver,
            Path("/exports"),
            clock=lambda: NOW,
            on_enqueued=self.count,
            files=self.files,
        )
        # The segment "vip": A and B in it; A and C opted in to e-mail in the read model.
        self.store.state.members["vip"] = {A: "", B: ""}
        self.store.state.opted_in = {A: {"email"}, C: {"email"}}
        for c in (A, B, C):
            self.contacts.known[c] = contact(c, opted_in=c != B)

    def count(self) -> None:
        self.enqueued += 1

    def webhook(self, max_attempts: int = 3) -> Destination:
        destination = Destination(
            "crm-hook",
            DestinationKind.WEBHOOK,
            "email",
            url="https://crm.example.ru/hook",
            max_attempts=max_attempts,
        )
        saved, secret = run(self.use_cases.create_destination(destination))
        assert secret  # generated when none was given
        return saved

    def bind(self, mode: BindingMode = BindingMode.LIVE) -> Binding:
        return run(self.use_cases.create_binding(Binding("", "vip", "crm-hook", mode)))

    def pending(self) -> list[str]:
        return [
            d.delivery_id
            for d in sorted(self.store.state.deliveries.values(), key=lambda d: d.sequence)
            if d.state is DeliveryState.PENDING
        ]

    def deliver(self, delivery_id: str) -> None:
        message = OutboxMessage(0, "webhook", "", delivery_id.encode(), {}, 0)
        run(self.use_cases.deliver_webhook(message))


def test_a_live_binding_starts_with_the_consenting_audience_then_sends_changes() -> None:
    act = Activation()
    act.webhook()
    binding = act.bind()

    (first,) = act.store.state.deliveries.values()
    assert (first.kind, first.items) == (DeliveryKind.FULL_SYNC_PAGE, ((A, ""),))
    # C joins the segment, A leaves it.
    act.store.state.members["vip"] = {B: "", C: ""}
    assert run(act.use_cases.reconcile_live_once()) == 2
    assert run(act.use_cases.reconcile_live_once()) == 0

    changes = [d for d in act.store.state.deliveries.values() if d.kind is DeliveryKind.CHANGES]
    assert [(i[0], i[1]) for i in changes[0].items] == [(A, "exited"), (C, "entered")]
    assert [d.sequence for d in act.store.state.deliveries.values()] == [1, 2]
    assert act.store.state.held[binding.binding_id] == {C: ""}


def test_deliveries_go_in_order_and_a_delivered_one_is_not_sent_again() -> None:
    act = Activation()
    act.webhook()
    act.bind()
    act.store.state.members["vip"] = {C: ""}
    run(act.use_cases.reconcile_live_once())
    first, second = act.pending()

    with pytest.raises(DeliveryError, match="waits for delivery 1"):
        act.deliver(second)
    act.deliver(first)
    act.deliver(second)
    act.deliver(second)  # redelivered by the outbox: nothing more is sent

    assert act.pending() == [] and len(act.receiver.received) == 2
    body = json.loads(act.receiver.received[0][1])
    assert "x@example.ru" in json.dumps(body, ensure_ascii=False)


def test_someone_who_opted_out_since_is_not_sent() -> None:
    act = Activation()
    act.webhook()
    act.bind()
    act.contacts.known[A] = contact(A, opted_in=False)  # the profile says so at sending time

    act.deliver(act.pending()[0])

    assert "x@example.ru" not in act.receiver.received[0][1].decode()


def test_a_receiver_that_keeps_failing_makes_a_dead_letter_and_a_redrive_sends_it_again() -> None:
    act = Activation(statuses=[500, 500, 500, 200])
    act.webhook(max_attempts=3)
    act.bind()
    (delivery_id,) = act.pending()

    for _ in range(2):
        with pytest.raises(DeliveryError):
            act.deliver(delivery_id)
    act.deliver(delivery_id)  # the third counted failure: given up on

    dead = act.store.state.deliveries[delivery_id]
    assert (dead.state, dead.attempts, dead.last_http_status) == (DeliveryState.DEAD_LETTER, 3, 500)
    _, _, dead_count = run(act.use_cases.list_deliveries("crm-hook", None, 10, ""))
    assert dead_count == 1

    assert run(act.use_cases.redrive("crm-hook", [delivery_id])) == 1
    act.deliver(delivery_id)

    assert act.store.state.deliveries[delivery_id].state is DeliveryState.DELIVERED


def test_a_client_error_is_a_dead_letter_at_once_and_only_dead_letters_are_redriven() -> None:
    act = Activation(statuses=[400])
    act.webhook()
    act.bind()
    (delivery_id,) = act.pending()
    act.deliver(delivery_id)
    assert act.store.state.deliveries[delivery_id].state is DeliveryState.DEAD_LETTER

    act.receiver.statuses = [200]
    run(act.use_cases.redrive("crm-hook", []))  # every dead letter of the destination
    act.deliver(delivery_id)
    with pytest.raises(FailedPrecondition, match="not a dead letter"):
        run(act.use_cases.redrive("crm-hook", [delivery_id]))
    with pytest.raises(InvalidArgument):
        run(act.use_cases.redrive("crm-hook", ["not-an-id"]))


def test_destinations_are_named_once_and_kept_while_bound() -> None:
    act = Activation()
    act.webhook()
    with pytest.raises(AlreadyExists):
        act.webhook()
    act.bind(BindingMode.FULL)
    with pytest.raises(FailedPrecondition, match="binding"):
        run(act.use_cases.delete_destination("crm-hook"))
    with pytest.raises(NotFound):
        run(act.use_cases.create_binding(Binding("", "nowhere", "crm-hook", BindingMode.FULL)))
    with pytest.raises(InvalidArgument) as caught:
        run(act.use_cases.create_binding(Binding("", "", "", BindingMode.FULL)))
    assert {v.field for v in caught.value.violations} == {
        "binding.segment_id",
        "binding.destination_id",
    }


def test_a_file_export_writes_the_consenting_members_and_counts_the_rest() -> None:
    act = Activation()
    destination = Destination("csv-out", DestinationKind.FILE, "email", file_format=FileFormat.CSV)
    run(act.use_cases.create_destination(destination))
    binding = run(act.use_cases.create_binding(Binding("", "vip", "csv-out", BindingMode.FULL)))

    sync = run(act.use_cases.start_sync(binding.binding_id))
    run(act.use_cases.run_export(OutboxMessage(0, "export", "", sync.sync_id.encode(), {}, 0)))

    done = run(act.use_cases.get_sync(sync.sync_id))
    assert (done.state, done.member_count, done.delivered_count) == (SyncState.DONE, 2, 1)
    assert done.skipped_no_consent == 1
    ((path, (header, rows)),) = act.files.written.items()
    assert str(path) in done.file_paths and header is not None and len(rows) == 1


def test_a_campaign_report_checks_its_period_window_and_filters() -> None:
    campaigns = CampaignService(FakeActivationStore(NOW), clock=lambda: NOW)
    with pytest.raises(InvalidArgument) as caught:
        run(
            campaigns.report(
                NOW, NOW - dt.timedelta(days=1), 1000, ["carrier_pigeon"], ["c"] * 10_000
            )
        )
    assert {v.field for v in caught.value.violations} == {
        "start_time",
        "window_days",
        "touch_types[0]",
        "campaign_ids",
    }
    with pytest.raises(InvalidArgument):
        run(campaigns.responsiveness("not-a-uuid"))


def test_a_receiver_that_is_down_is_retried_without_using_up_the_attempts() -> None:
    act = Activation(statuses=[503])
    act.webhook(max_attempts=3)
    act.bind()
    (delivery_id,) = act.pending()

    for _ in range(5):
        with pytest.raises(DeliveryError):
            act.deliver(delivery_id)

    waiting = act.store.state.deliveries[delivery_id]
    assert (waiting.state, waiting.attempts, waiting.failed_attempts) == (
        DeliveryState.PENDING,
        5,
        0,
    )
