"""Segmentation's use cases over the in-memory store (no database): definitions with their
versions and references, profile changes entering and leaving segments, merges, splits,
erasure, and what a failed use case leaves behind (nothing).

The SQL that evaluates rules over the whole population is tested against PostgreSQL in
``tests/integration``; here the use cases' own decisions are.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections import Counter
from collections.abc import Awaitable
from typing import TypeVar

import pytest

from services.segmentation.tests.unit.fakes import FakeSegmentationStore
from svod_runtime.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from svod_segmentation.domain.access import Scope
from svod_segmentation.domain.model import (
    CustomerEvent,
    CustomerSnapshot,
    MetricsSnapshot,
    ProfileChange,
    Segment,
    SplitSide,
)
from svod_segmentation.domain.rules import (
    FieldCondition,
    InSegment,
    Not,
    SegmentDefinition,
)
from svod_segmentation.service_layer.use_cases import MembershipCounts, SegmentationService

T = TypeVar("T")
NOW = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)


def run(awaitable: Awaitable[T]) -> T:
    async def main() -> T:
        return await awaitable

    return asyncio.run(main())


def gold() -> Segment:
    return Segment(
        SegmentDefinition("gold", FieldCondition("attributes.tier", "eq", ("gold",))),
        display_name="Gold tier",
    )


def buyers(min_orders: int = 3) -> Segment:
    rule = FieldCondition("metrics.order_count", "ge", (str(min_orders),))
    return Segment(SegmentDefinition("buyers", rule), display_name="Frequent buyers")


def cid() -> str:
    return str(uuid.uuid4())


def snapshot(customer_id: str, version: int, *, tier: str = "", orders: int = 0):
    attributes = {"tier": tier} if tier else {}
    return CustomerSnapshot(customer_id, version, order_count=orders, attributes=attributes)


def change(customer_id: str, version: int, **kwargs: object) -> ProfileChange:
    merged = tuple(kwargs.pop("merged", ()))  # type: ignore[call-overload]
    split = kwargs.pop("split", None)
    return ProfileChange(
        customer_id,
        version,
        snapshot(customer_id, version, **kwargs),  # type: ignore[arg-type]
        merged_customer_ids=merged,
        split=split,  # type: ignore[arg-type]
    )


class Service:
    """The use cases over a fresh in-memory store, recording the membership counts reported."""

    def __init__(self) -> None:
        self.store = FakeSegmentationStore()
        self.reported: MembershipCounts = Counter()
        self.use_cases = SegmentationService(
            self.store, clock=lambda: NOW, on_memberships=self.reported.update
        )

    def members(self, segment_id: str) -> list[str]:
        page, _ = run(self.use_cases.list_members(segment_id, "", 1000))
        return [m.customer_id for m in page]

    def feed(self) -> list[tuple[str, str, str]]:
        return [(e.segment_id, e.customer_id, e.kind) for e in self.store.state.feed]


def field_paths(error: InvalidArgument) -> set[str]:
    return {v.field for v in error.violations}


# -- definitions --------------------------------------------------------------------------


def test_a_new_segment_takes_in_the_customers_it_selects_and_logs_their_entry() -> None:
    svc = Service()
    a, b = cid(), cid()
    run(svc.use_cases.apply_change(change(a, 1, tier="gold")))
    run(svc.use_cases.apply_change(change(b, 1, tier="silver")))

    created = run(svc.use_cases.create_segment(gold(), actor="ann"))

    assert (created.version, created.member_count, created.display_name) == (1, 1, "Gold tier")
    assert svc.members("gold") == [a]
    assert svc.feed() == [("gold", a, "entered")]
    assert svc.reported == Counter({("gold", "enter"): 1})
    assert svc.store.state.versions == [("gold", 1, "ann", False)]


def test_a_segment_id_is_taken_once() -> None:
    svc = Service()
    run(svc.use_cases.create_segment(gold()))
    with pytest.raises(AlreadyExists):
        run(svc.use_cases.create_segment(gold()))
    assert run(svc.use_cases.get_segment("gold")).version == 1


def test_a_bad_definition_is_refused_naming_the_node_and_nothing_is_stored() -> None:
    svc = Service()
    bad = Segment(
        SegmentDefinition("bad", Not(FieldCondition("metrics.order_count", "contains", ("1",))))
    )
    with pytest.raises(InvalidArgument) as caught:
        run(svc.use_cases.create_segment(bad))
    assert field_paths(caught.value) == {"segment.rule.not.field.operator"}
    missing_ref = Segment(SegmentDefinition("orphan", InSegment("nowhere")))
    with pytest.raises(InvalidArgument) as caught:
        run(svc.use_cases.create_segment(missing_ref))
    assert field_paths(caught.value) == {"segment.rule.in_segment.segment_id"}
    assert run(svc.use_cases.list_segments("", 10)) == ([], "")
    assert svc.store.state.generation == 0


def test_an_update_at_a_stale_version_is_refused_and_changes_nothing() -> None:
    svc = Service()
    a = cid()
    run(svc.use_cases.apply_change(change(a, 1, orders=4)))
    run(svc.use_cases.create_segment(buyers(3)))
    run(svc.use_cases.update_segment(buyers(5), expected_version=1))
    with pytest.raises(FailedPrecondition, match="at version 2, not 1"):
        run(svc.use_cases.update_segment(buyers(3), expected_version=1))
    with pytest.raises(NotFound):
        run(svc.use_cases.update_segment(gold(), expected_version=0))
    assert run(svc.use_cases.get_segment("buyers")).version == 2
    assert svc.members("buyers") == []


def test_an_update_re_evaluates_the_segment_and_the_segments_built_on_it() -> None:
    svc = Service()
    a, b = cid(), cid()
    run(svc.use_cases.apply_change(change(a, 1, orders=4, tier="gold")))
    run(svc.use_cases.apply_change(change(b, 1, orders=1, tier="gold")))
    run(svc.use_cases.create_segment(buyers(3)))
    golden_buyers = Segment(SegmentDefinition("golden_buyers", InSegment("buyers")))
    run(svc.use_cases.create_segment(golden_buyers))
    assert svc.members("golden_buyers") == [a]

    updated = run(svc.use_cases.update_segment(buyers(1), expected_version=1))

    assert (updated.version, updated.member_count) == (2, 2)
    assert svc.members("golden_buyers") == sorted([a, b])
    assert svc.store.compilations_dropped == 3  # every definition change drops the statement


def test_a_segment_in_use_cannot_be_deleted_and_a_deletion_ends_every_membership() -> None:
    svc = Service()
    a = cid()
    run(svc.use_cases.apply_change(change(a, 1, orders=4)))
    run(svc.use_cases.create_segment(buyers()))
    run(svc.use_cases.create_segment(Segment(SegmentDefinition("uses", InSegment("buyers")))))
    with pytest.raises(FailedPrecondition, match="used by uses"):
        run(svc.use_cases.delete_segment("buyers"))
    assert svc.members("buyers") == [a]

    run(svc.use_cases.delete_segment("uses", actor="bob"))
    run(svc.use_cases.delete_segment("buyers", actor="bob"))

    with pytest.raises(NotFound):
        run(svc.use_cases.get_segment("buyers"))
    assert svc.feed()[-2:] == [("uses", a, "exited"), ("buyers", a, "exited")]
    assert svc.reported[("buyers", "exit")] == 1
    assert svc.store.state.versions[-1] == ("buyers", 2, "bob", True)


def test_a_principal_limited_to_segments_sees_and_deletes_only_those() -> None:
    svc = Service()
    run(svc.use_cases.create_segment(gold()))
    run(svc.use_cases.create_segment(buyers()))
    mine = Scope("marketing", frozenset({"gold"}))
    page, _ = run(svc.use_cases.list_segments("", 10, mine))
    assert [s.segment_id for s in page] == ["gold"]
    with pytest.raises(PermissionDenied, match="buyers"):
        run(svc.use_cases.delete_segment("buyers", mine))
    assert run(svc.use_cases.get_segment("buyers")).version == 1


# -- profile changes ----------------------------------------------------------------------


def test_a_profile_change_enters_and_exits_segments() -> None:
    svc = Service()
    run(svc.use_cases.create_segment(gold()))
    run(svc.use_cases.create_segment(buyers()))
    a = cid()

    first = run(svc.use_cases.apply_change(change(a, 1, tier="gold", orders=5)))
    second = run(svc.use_cases.apply_change(change(a, 2, tier="gold", orders=1)))
    third = run(svc.use_cases.apply_change(change(a, 3, tier="silver", orders=3)))

    assert (first.profile_applied, first.entered, first.exited) == (True, ("buyers", "gold"), ())
    assert (second.entered, second.exited) == ((), ("buyers",))
    assert (third.entered, third.exited) == (("buyers",), ("gold",))
    assert [m.segment_id for m in run(svc.use_cases.customer_segments(a))] == ["buyers"]
    assert svc.reported == Counter(
        {("gold", "enter"): 1, ("gold", "exit"): 1, ("buyers", "enter"): 2, ("buyers", "exit"): 1}
    )


def test_a_customer_id_in_another_spelling_is_stored_under_its_canonical_form() -> None:
    svc = Service()
    run(svc.use_cases.create_segment(buyers()))
    a = cid()
    shouted = ProfileChange(a.upper(), 1, snapshot(a.upper(), 1, orders=4))
    as_sent = ProfileChange(a, 2, None, metrics=MetricsSnapshot(a, 2, order_count=1))

    first = run(svc.use_cases.apply_change(shouted))
    second = run(svc.use_cases.apply_change(as_sent))

    assert (first.entered, second.exited) == (("buyers",), ("buyers",))
    assert set(svc.store.state.customers) == {a}
    customer = svc.store.state.customers[a]
    assert customer.snapshot is not None and customer.snapshot.customer_id == a
    assert customer.snapshot.order_count == 1


def test_an_older_profile_version_is_not_applied_and_moves_nothing() -> None:
    svc = Service()
    run(svc.use_cases.create_segment(gold()))
    a = cid()
    run(svc.use_cases.apply_change(change(a, 5, tier="gold")))

    late = run(svc.use_cases.apply_change(change(a, 4, tier="silver")))

    assert (late.profile_applied, late.entered, late.exited) == (False, (), ())
    assert svc.members("gold") == [a]


def test_bad_changes_are_refused_with_every_field_named() -> None:
    svc = Service()
    a = cid()
    bad = ProfileChange(
        a,
        0,
        None,
        events=(CustomerEvent("", "", "", NOW),),
        merged_customer_ids=(a,),
    )
    with pytest.raises(InvalidArgument) as caught:
        run(svc.use_cases.apply_change(bad))
    assert field_paths(caught.value) == {
        "profile_version",
        "merged_customer_ids[0]",
        "new_events[0].record_ref",
        "new_events[0].event_type",
    }
    with pytest.raises(InvalidArgument) as caught:
        run(svc.use_cases.apply_change(change("not-a-uuid", 1)))
    assert field_paths(caught.value) == {"customer_id"}
    assert svc.store.state.customers == {}


def test_a_merge_moves_the_merged_customers_out_and_the_survivor_in() -> None:
    svc = Service()
    run(svc.use_cases.create_segment(gold()))
    survivor, merged = cid(), cid()
    run(svc.use_cases.apply_change(change(merged, 1, tier="gold")))
    assert svc.members("gold") == [merged]

    outcome = run(svc.use_cases.apply_change(change(survivor, 1, tier="gold", merged=[merged])))

    assert outcome.entered == ("gold",)
    assert svc.members("gold") == [survivor]
    assert ("gold", merged, "exited") in svc.feed()
    # A late change about the merged customer lands on the survivor.
    late = run(svc.use_cases.apply_change(change(merged, 2, tier="silver")))
    assert late.profile_applied is False
    assert run(svc.use_cases.customer_segments(merged))[0].customer_id == survivor


def test_a_split_evaluates_both_sides_in_the_same_step() -> None:
    svc = Service()
    run(svc.use_cases.create_segment(gold()))
    source, split_off = cid(), cid()
    run(svc.use_cases.apply_change(change(source, 1, tier="gold")))
    side = SplitSide(source, snapshot(source, 2, tier="silver"))

    outcome = run(svc.use_cases.apply_change(change(split_off, 1, tier="gold", split=side)))

    assert outcome.entered == ("gold",)
    assert svc.members("gold") == [split_off]


def test_a_split_naming_the_customer_itself_is_refused() -> None:
    svc = Service()
    a = cid()
    side = SplitSide(a, None)
    with pytest.raises(InvalidArgument) as caught:
        run(svc.use_cases.apply_change(change(a, 1, split=side)))
    assert field_paths(caught.value) == {"split.source_customer_id"}


def test_an_erased_customer_leaves_every_segment_and_later_changes_are_dropped() -> None:
    svc = Service()
    run(svc.use_cases.create_segment(gold()))
    a = cid()
    run(svc.use_cases.apply_change(change(a, 1, tier="gold")))

    assert run(svc.use_cases.erase_customer(a)) == 1

    assert svc.members("gold") == []
    late = run(svc.use_cases.apply_change(change(a, 2, tier="gold")))
    assert (late.profile_applied, late.entered) == (False, ())
    assert svc.members("gold") == []
    with pytest.raises(NotFound):
        run(svc.use_cases.customer_segments(a))


# -- reads --------------------------------------------------------------------------------


def test_members_page_through_in_customer_order() -> None:
    svc = Service()
    run(svc.use_cases.create_segment(gold()))
    ids = sorted(cid() for _ in range(5))
    for customer_id in ids:
        run(svc.use_cases.apply_change(change(customer_id, 1, tier="gold")))

    first, token = run(svc.use_cases.list_members("gold", "", 2))
    second, token2 = run(svc.use_cases.list_members("gold", token, 2))
    third, token3 = run(svc.use_cases.list_members("gold", token2, 2))

    assert [m.customer_id for m in first + second + third] == ids
    assert token3 == ""
    with pytest.raises(NotFound):
        run(svc.use_cases.list_members("nowhere", "", 2))
    with pytest.raises(InvalidArgument):
        run(svc.use_cases.list_members("gold", "bad-token", 2))


def test_preview_counts_without_storing_a_segment() -> None:
    svc = Service()
    for orders in (1, 3, 7):
        run(svc.use_cases.apply_change(change(cid(), 1, orders=orders)))
    count, sample = run(
        svc.use_cases.preview(FieldCondition("metrics.order_count", "ge", ("3",)), 10)
    )
    assert (count, len(sample)) == (2, 2)
    assert run(svc.use_cases.list_segments("", 10)) == ([], "")
