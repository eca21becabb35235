"""The profile's use cases over in-memory storage and identity (no database, no peers):
records applied once with survivorship, batches answered per record, events and metrics,
consents, identity's merges and splits applied once, and erased customers staying erased.

The SQL behind each storage method is tested against PostgreSQL in ``tests/e2e``; here the use
cases' own decisions are.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Awaitable
from decimal import Decimal
from typing import TypeVar

import pytest

from services.profile.tests.unit.fakes import FakeDirectory, FakeEvents, FakeProfileStore
from svod_profile.domain.consents import Consent, ConsentStatus
from svod_profile.domain.events import EventFact
from svod_profile.domain.model import (
    IdentifierObservation,
    Provenance,
    RecordApplication,
    TraitObservation,
)
from svod_profile.domain.survivorship import SurvivorshipRules
from svod_profile.service_layer.use_cases import ProfileService
from svod_runtime.custom_attributes import AttributeType
from svod_runtime.errors import CustomerErased, InvalidArgument, NotFound

T = TypeVar("T")
NOW = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)


def run(awaitable: Awaitable[T]) -> T:
    async def main() -> T:
        return await awaitable

    return asyncio.run(main())


def cid() -> str:
    return str(uuid.uuid4())


def record(
    customer_id: str,
    message_id: str,
    *,
    source: str = "web",
    days_ago: float = 0,
    identifiers: tuple[tuple[str, str], ...] = (),
    **traits: str,
) -> RecordApplication:
    provenance = Provenance(source, "web", NOW - dt.timedelta(days=days_ago))
    return RecordApplication(
        customer_id=customer_id,
        source=source,
        message_id=message_id,
        provenance=provenance,
        traits=tuple(TraitObservation(f, v, provenance) for f, v in traits.items()),
        identifiers=tuple(IdentifierObservation(t, v, "", provenance) for t, v in identifiers),
    )


def order(message_id: str, amount: str, *, days_ago: float = 0, **kw: object) -> EventFact:
    return EventFact(
        "shop",
        message_id,
        "order_placed",
        NOW - dt.timedelta(days=days_ago),
        "web",
        currency="RUB",
        amount=Decimal(amount),
        items=1,
        **kw,  # type: ignore[arg-type]
    )


class Service:
    def __init__(self, **kwargs: object) -> None:
        self.store = FakeProfileStore(NOW)
        self.directory = FakeDirectory()
        self.woken = 0
        self.use_cases = ProfileService(
            self.store,
            self.directory,
            on_announced=self.wake,
            clock=lambda: NOW,
            **kwargs,  # type: ignore[arg-type]
        )

    def wake(self) -> None:
        self.woken += 1

    def shown(self, customer_id: str) -> dict[str, str]:
        view = run(self.use_cases.get_by_id(customer_id))
        return {name: obs.value for name, obs in view.shown.items()}


def paths(error: InvalidArgument) -> set[str]:
    return {v.field for v in error.violations}


# -- records ----------------------------------------------------------------------------------


def test_a_record_is_applied_once_and_the_newest_value_is_shown() -> None:
    svc = Service()
    a = cid()
    version, changed = run(
        svc.use_cases.apply(record(a, "m1", days_ago=2, first_name="Мария", last_name="Иванова"))
    )
    assert changed and version >= 1
    newer = record(a, "m2", source="pos", days_ago=1, last_name="Петрова")

    run(svc.use_cases.apply(newer))
    again = run(svc.use_cases.apply(newer))

    assert again == (run(svc.use_cases.get_by_id(a)).version, False)
    assert svc.shown(a) == {"first_name": "Мария", "last_name": "Петрова"}
    view = run(svc.use_cases.get_by_id(a))
    assert [(s.source, s.record_count) for s in view.sources] == [("pos", 1), ("web", 1)]
    # One announcement per change that changed something, not for the repeat.
    assert [key for key, _ in svc.store.announcements()] == [a, a]
    assert svc.woken == 2


def test_an_older_record_does_not_replace_a_newer_value() -> None:
    svc = Service()
    a = cid()
    run(svc.use_cases.apply(record(a, "m1", days_ago=1, city="Казань")))
    run(svc.use_cases.apply(record(a, "m2", days_ago=30, city="Москва")))
    assert svc.shown(a)["city"] == "Казань"


def test_a_trusted_source_wins_when_the_rules_say_so() -> None:
    rules = SurvivorshipRules.from_json(
        '{"city": {"policy": "source_priority", "sources": ["crm"]}}'
    )
    svc = Service(survivorship=rules)
    a = cid()
    run(svc.use_cases.apply(record(a, "m1", source="crm", days_ago=9, city="Казань")))
    run(svc.use_cases.apply(record(a, "m2", source="web", days_ago=1, city="Москва")))
    assert svc.shown(a)["city"] == "Казань"


def test_bad_records_are_refused_with_their_fields_named_and_nothing_stored() -> None:
    svc = Service(attribute_types={"height": AttributeType.NUMBER})
    a = cid()
    bad = record(a, "", source="", **{"attributes.height": "tall"})
    with pytest.raises(InvalidArgument) as caught:
        run(svc.use_cases.apply(bad))
    assert paths(caught.value) == {
        "record_ref.source",
        "record_ref.message_id",
        "attributes[height]",
    }
    with pytest.raises(InvalidArgument) as caught:
        run(svc.use_cases.apply(record("nope", "m1", first_name="Анна")))
    assert paths(caught.value) == {"customer_id"}
    assert svc.store.state.profiles == {}


def test_declared_attributes_are_kept_in_their_canonical_form() -> None:
    svc = Service(attribute_types={"height": AttributeType.NUMBER})
    a = cid()
    run(svc.use_cases.apply(record(a, "m1", **{"attributes.height": "172,5"})))
    assert svc.shown(a)["attributes.height"] == "172.5"


def test_a_batch_answers_every_record_in_order_and_a_customers_later_record_wins() -> None:
    svc = Service()
    a, b = cid(), cid()
    items = [
        (record(a, "m1", days_ago=0, city="Москва"), {}),
        (record("not-a-uuid", "m2", city="Тверь"), {}),
        (record(b, "m3", city="Пермь"), {}),
        (record(a, "m1", days_ago=0, city="Москва"), {}),  # the same record again
    ]

    outcomes = run(svc.use_cases.apply_many(items))

    assert isinstance(outcomes[1], InvalidArgument)
    assert [o[1] for o in outcomes if isinstance(o, tuple)] == [True, True, False]
    assert svc.shown(a) == {"city": "Москва"} and svc.shown(b) == {"city": "Пермь"}
    assert sorted(key for key, _ in svc.store.announcements()) == sorted([a, b])


def test_a_record_resolved_before_a_merge_lands_on_the_survivor() -> None:
    svc = Service()
    survivor, merged = cid(), cid()
    run(svc.use_cases.apply(record(survivor, "m1", first_name="Анна")))
    run(svc.use_cases.apply(record(merged, "m2", last_name="Смирнова")))
    run(svc.use_cases.identity_changes.merge("c1", survivor, [merged]))

    run(svc.use_cases.apply(record(merged, "m3", days_ago=-0.1, city="Омск")))

    assert svc.shown(survivor) == {"first_name": "Анна", "last_name": "Смирнова", "city": "Омск"}
    svc.directory.survivors[merged] = survivor  # identity answers for the merged-away id
    assert run(svc.use_cases.get_by_id(merged)).customer_id == survivor


# -- events and consents ----------------------------------------------------------------------


def test_events_count_once_into_the_metrics_and_the_timeline() -> None:
    svc = Service()
    a = cid()
    run(svc.use_cases.apply_event(a, order("o1", "1000", days_ago=2)))
    run(svc.use_cases.apply_event(a, order("o2", "500", days_ago=1)))
    _, again = run(svc.use_cases.apply_event(a, order("o2", "500", days_ago=1)))

    view = run(svc.use_cases.get_by_id(a))
    assert again is False
    assert (view.metrics.order_count, view.metrics.total_spent) == (2, Decimal(1500))
    page, token = run(svc.use_cases.timeline(a, 1, ""))
    rest, last = run(svc.use_cases.timeline(a, 1, token))
    assert [e.message_id for e in page + rest] == ["o2", "o1"] and last == ""


def test_an_unsubscribe_event_opts_the_customer_out_of_that_channel() -> None:
    svc = Service()
    a = cid()
    run(svc.use_cases.apply(record(a, "m1", first_name="Анна")))
    run(
        svc.use_cases.update_consent(
            a, Consent("email", ConsentStatus.OPTED_IN, "web", NOW - dt.timedelta(days=3))
        )
    )
    unsubscribe = EventFact(
        "esp",
        "u1",
        "campaign_unsubscribed",
        NOW - dt.timedelta(days=1),
        "email",
        contact_channel="email",
    )

    run(svc.use_cases.apply_event(a, unsubscribe))

    consents = {c.channel: c.status for c in run(svc.use_cases.get_by_id(a)).consents}
    assert consents == {"email": ConsentStatus.OPTED_OUT}


def test_the_newer_consent_stands_and_an_older_one_is_only_history() -> None:
    svc = Service()
    a = cid()
    run(svc.use_cases.apply(record(a, "m1", first_name="Анна")))
    run(
        svc.use_cases.update_consent(
            a, Consent("sms", ConsentStatus.OPTED_OUT, "crm", NOW - dt.timedelta(days=1))
        )
    )

    view = run(
        svc.use_cases.update_consent(
            a, Consent("sms", ConsentStatus.OPTED_IN, "web", NOW - dt.timedelta(days=5))
        )
    )

    assert [(c.channel, c.status, c.source) for c in view.consents] == [
        ("sms", ConsentStatus.OPTED_OUT, "crm")
    ]
    assert len(svc.store.state.history) == 2


def test_a_bad_consent_is_refused_and_one_for_nobody_is_not_found() -> None:
    svc = Service()
    a = cid()
    with pytest.raises(InvalidArgument) as caught:
        run(
            svc.use_cases.update_consent(a, Consent("fax", "maybe", "", NOW + dt.timedelta(days=1)))
        )
    assert paths(caught.value) == {
        "consent.channel",
        "consent.status",
        "consent.source",
        "consent.time",
    }
    with pytest.raises(NotFound):
        run(svc.use_cases.update_consent(a, Consent("email", ConsentStatus.OPTED_IN, "web", NOW)))


# -- identity's merges and splits -------------------------------------------------------------


def test_a_merge_gives_the_survivor_everything_once() -> None:
    svc = Service()
    survivor, merged = cid(), cid()
    run(
        svc.use_cases.apply(
            record(
                survivor, "m1", days_ago=5, first_name="Анна", identifiers=(("email", "a@x.ru"),)
            )
        )
    )
    run(
        svc.use_cases.apply(
            record(
                merged,
                "m2",
                days_ago=1,
                last_name="Смирнова",
                identifiers=(("phone", "+79161234567"),),
            )
        )
    )
    run(svc.use_cases.apply_event(survivor, order("o1", "100")))
    run(svc.use_cases.apply_event(merged, order("o2", "200")))
    run(
        svc.use_cases.update_consent(
            merged, Consent("email", ConsentStatus.OPTED_IN, "web", NOW - dt.timedelta(days=1))
        )
    )

    run(svc.use_cases.identity_changes.merge("c1", survivor, [merged]))
    run(svc.use_cases.identity_changes.merge("c1", survivor, [merged]))  # re-delivered

    view = run(svc.use_cases.get_by_id(survivor))
    assert svc.shown(survivor) == {"first_name": "Анна", "last_name": "Смирнова"}
    assert {i.type for i in view.identifiers} == {"email", "phone"}
    assert (view.metrics.order_count, view.metrics.total_spent) == (2, Decimal(300))
    assert [c.channel for c in view.consents] == ["email"]
    svc.directory.survivors[merged] = survivor
    assert run(svc.use_cases.get_by_id(merged)).customer_id == survivor
    merges = [p for k, p in svc.store.announcements() if p.get("merged")]
    assert merges == [{"events": [], "merged": [merged]}]


def test_a_bad_merge_is_refused_naming_its_fields() -> None:
    svc = Service()
    a = cid()
    with pytest.raises(InvalidArgument) as caught:
        run(svc.use_cases.identity_changes.merge("", a, [a]))
    assert paths(caught.value) == {"change_id", "merge.merged_customer_ids"}


def test_a_merge_about_an_erased_customer_is_dropped() -> None:
    svc = Service()
    survivor, erased = cid(), cid()
    run(svc.use_cases.apply(record(survivor, "m1", first_name="Анна")))
    svc.store.state.erased.add(erased)

    run(svc.use_cases.identity_changes.merge("c1", survivor, [erased]))

    assert svc.store.state.merged == {}
    with pytest.raises(CustomerErased):
        run(svc.use_cases.apply(record(erased, "m2", first_name="Ира")))


def test_a_split_moves_the_records_events_and_identifiers_that_are_the_targets_now() -> None:
    svc = Service()
    source, target = cid(), cid()
    first = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    run(
        svc.use_cases.apply(
            record(
                source, "m1", days_ago=3, first_name="Анна", identifiers=(("email", "anna@x.ru"),)
            )
        )
    )
    run(
        svc.use_cases.apply(
            record(
                source,
                "m2",
                days_ago=1,
                first_name="Ольга",
                identifiers=(("phone", "+79160000000"),),
            )
        )
    )
    run(
        svc.use_cases.apply_event(
            source, order("o1", "100", identifiers=(("email", "anna@x.ru", ""),))
        )
    )
    run(
        svc.use_cases.apply_event(
            source, order("o2", "700", identifiers=(("phone", "+79160000000", ""),))
        )
    )
    # Identity's view after the split: the phone (and record m2) belong to the target.
    svc.directory.owners = {
        ("email", "anna@x.ru", ""): source,
        ("phone", "+79160000000", ""): target,
    }
    svc.directory.linked = {
        source: [("email", "anna@x.ru", "", "web", first)],
        target: [("phone", "+79160000000", "", "web", first)],
    }

    run(svc.use_cases.identity_changes.split("c2", source, target, [("web", "m2")]))
    run(svc.use_cases.identity_changes.split("c2", source, target, [("web", "m2")]))  # again

    left, moved = run(svc.use_cases.get_by_id(source)), run(svc.use_cases.get_by_id(target))
    assert (svc.shown(source), svc.shown(target)) == (
        {"first_name": "Анна"},
        {"first_name": "Ольга"},
    )
    assert [i.value for i in left.identifiers] == ["anna@x.ru"]
    assert [i.value for i in moved.identifiers] == ["+79160000000"]
    assert (left.metrics.total_spent, moved.metrics.total_spent) == (Decimal(100), Decimal(700))
    splits = [(k, p["split"]) for k, p in svc.store.announcements() if "split" in p]
    assert splits == [(target, {"source": source, "moved": [["shop", "o2"]]})]


def test_a_split_with_nothing_to_move_is_refused() -> None:
    svc = Service()
    a = cid()
    with pytest.raises(InvalidArgument) as caught:
        run(svc.use_cases.identity_changes.split("c1", a, a, []))
    assert paths(caught.value) == {"split.moved_records", "split.target_customer_id"}


def test_reading_a_customer_nobody_knows_is_not_found() -> None:
    svc = Service()
    with pytest.raises(NotFound):
        run(svc.use_cases.get_by_id(cid()))
    found, missing = run(svc.use_cases.batch_get([cid()]))
    assert found == [] and len(missing) == 1


def test_batched_events_answer_each_count_once_and_report_failed_contacts() -> None:
    svc = Service()
    a, b = cid(), cid()
    bounce = EventFact(
        "esp",
        "b1",
        "contact_failed",
        NOW,
        "email",
        contact_channel="email",
        identifiers=(("email", "anna@x.ru", ""),),
    )

    async def scenario() -> list[tuple[int, bool] | Exception]:
        svc.use_cases.enable_batching()
        return await svc.use_cases.apply_events(
            [
                (a, order("o1", "100"), {}),
                (b, order("o2", "200"), {}),
                ("nope", order("o3", "300"), {}),
                (a, order("o1", "100"), {}),  # the same event again
                (a, bounce, {}),
            ]
        )

    outcomes = asyncio.run(scenario())

    assert isinstance(outcomes[2], InvalidArgument)
    assert [o[1] for o in outcomes if isinstance(o, tuple)] == [True, True, False, True]
    assert run(svc.use_cases.get_by_id(a)).metrics.total_spent == Decimal(100)
    assert run(svc.use_cases.get_by_id(b)).metrics.total_spent == Decimal(200)
    failed = [k for k, _ in svc.store.announcements("quality.contact_failed")]
    assert failed == [a]


def test_a_record_or_event_that_loses_a_deadlock_is_applied_once_all_the_same() -> None:
    svc = Service()
    a = cid()
    svc.store.deadlocks = 2

    version, changed = run(svc.use_cases.apply(record(a, "m1", first_name="Анна")))
    _, event_changed = run(svc.use_cases.apply_event(a, order("o1", "100")))

    assert changed and event_changed and svc.store.deadlocks == 0
    view = run(svc.use_cases.get_by_id(a))
    assert svc.shown(a) == {"first_name": "Анна"} and view.metrics.order_count == 1
    assert [k for k, _ in svc.store.announcements()] == [a, a] and svc.woken == 2
    assert version == 1


def test_event_batches_in_flight_never_share_a_customer_and_keep_each_customers_order() -> None:
    """Four batches are written at a time; unkeyed, batches of one relay pass that shared
    customers waited on each other's row locks. Keyed by customer, they never share one, and a
    customer's events of a submission go together, in the order they came."""
    svc = Service()
    customers = [cid() for _ in range(6)]
    in_flight: list[set[str]] = []
    overlaps: list[set[str]] = []
    batches: list[list[str]] = []
    insert_events = FakeEvents.insert_events

    async def slow_insert(
        self: FakeEvents, rows: list[tuple[str, EventFact]]
    ) -> set[tuple[str, str]]:
        owners = {owner for owner, _ in rows}
        overlaps.extend(owners & other for other in in_flight if owners & other)
        in_flight.append(owners)
        batches.append([event.message_id for _, event in rows])
        await asyncio.sleep(0.01)  # another batch is prepared meanwhile
        in_flight.remove(owners)
        return await insert_events(self, rows)

    # (The fake's transactions copy its state whole: overlapping ones would lose each other's
    # writes, so what is checked is the batches, not the metrics.)

    items: list[tuple[str, EventFact, dict[str, str]]] = [
        (customers[n % 6], order(f"o{n}", "10"), {})
        for n in range(60)  # ten events a customer, interleaved
    ]

    async def scenario() -> list[tuple[int, bool] | Exception]:
        batcher = svc.use_cases.enable_batching()
        batcher._batcher.max_batch = 7  # several batches per submission
        halves = (items[:30], items[30:])
        answered = await asyncio.gather(*(svc.use_cases.apply_events(h) for h in halves))
        return [outcome for half in answered for outcome in half]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FakeEvents, "insert_events", slow_insert)
        outcomes = asyncio.run(scenario())

    assert all(isinstance(o, tuple) and o[1] for o in outcomes)
    assert overlaps == [] and len(batches) > 2
    # A customer's events share a batch (not one batch per event of a customer).
    assert any(len(b) > len({int(m[1:]) % 6 for m in b}) for b in batches)
    applied = [message for batch in batches for message in batch]
    assert sorted(applied) == sorted(f"o{n}" for n in range(60))
    for index in range(6):
        mine = [m for m in applied if int(m[1:]) % 6 == index]
        assert mine == [f"o{n}" for n in range(index, 60, 6)]
