"""Identity's merge, split, review, ledger and look-up use cases over in-memory storage (no
database): which customer survives a merge, where a split's records and merged-away ids go,
what a review decision does, what the ledger pages show, and what they all refuse.

The SQL behind each storage part is tested against PostgreSQL in ``tests/integration`` and
``tests/e2e``; here the use cases' own decisions are.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Awaitable
from typing import TypeVar

import pytest

from services.identity.tests.unit.fakes import FakeIdentityStore
from svod_identity.domain.announcements import MERGED_TOPIC, SPLIT_TOPIC
from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.ledger import LedgerKind
from svod_identity.domain.model import RecordRef
from svod_identity.domain.review import ReviewState
from svod_identity.service_layer.use_cases import IdentityService
from svod_runtime.errors import FailedPrecondition, InvalidArgument, NotFound

T = TypeVar("T")
OLD = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
NEW = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)


def run(awaitable: Awaitable[T]) -> T:
    async def main() -> T:
        return await awaitable

    return asyncio.run(main())


class Identity:
    """The service over a fake store, counting the commits it reports (the outbox wake-up)."""

    def __init__(self) -> None:
        self.store = FakeIdentityStore()
        self.commits = 0
        self.service = IdentityService(self.store, on_commit=self._committed)

    def _committed(self) -> None:
        self.commits += 1

    def customer(self, *message_ids: str, created_at: dt.datetime | None = None) -> str:
        customer_id = self.store.add_customer(created_at)
        for message_id in message_ids:
            self.store.add_record(customer_id, message_id)
        return customer_id


@pytest.fixture
def identity() -> Identity:
    return Identity()


def ref(message_id: str) -> RecordRef:
    return RecordRef("web", message_id)


# -- merge ----------------------------------------------------------------------------------


def test_a_merge_keeps_the_oldest_customer_whatever_the_order_or_ids(identity: Identity) -> None:
    # The older customer's id sorts last: the survivor is chosen by age, not by id.
    older = identity.store.add_customer(OLD, customer_id="ffffffff-0000-4000-8000-000000000000")
    identity.store.add_record(older, "a1")
    newer = identity.store.add_customer(NEW, customer_id="00000000-0000-4000-8000-000000000001")
    identity.store.add_record(newer, "b1")

    survivor, merged = run(identity.service.merge_customers([newer, older], "same person", "ann"))

    assert (survivor, merged) == (older, (newer,))
    view = run(identity.service.lookup_by_id(newer))
    assert view.customer_id == older
    assert view.merged_ids == (newer,)
    assert view.record_count == 2


def test_a_merge_is_written_to_the_ledger_and_announced(identity: Identity) -> None:
    first = identity.customer("a1", "a2", created_at=OLD)
    second = identity.customer("b1", created_at=NEW)

    run(identity.service.merge_customers([first, second], "same email", "ann"))

    (entry,) = identity.store.ledger_of(LedgerKind.MANUAL_MERGE)
    assert (entry.customer_id, entry.other_customer_id) == (first, second)
    assert (entry.actor, entry.reason) == ("ann", "same email")
    assert entry.detail["merged"] == [second]
    # One record of each side, to replay the decision when rules are previewed.
    assert set(entry.detail["anchors"]) == {first, second}
    assert all(len(pks) == 1 for pks in entry.detail["anchors"].values())
    (announced,) = identity.store.announced(MERGED_TOPIC)
    assert announced["survivor"] == first
    assert announced["merged"] == [second]
    assert announced["change_id"] == str(entry.entry_id)
    assert identity.commits == 1


def test_merging_an_unknown_customer_is_not_found_and_changes_nothing(identity: Identity) -> None:
    known = identity.customer("a1")
    other = identity.customer("b1")
    before = list(identity.store.state.ledger)

    with pytest.raises(NotFound):
        run(identity.service.merge_customers([known, other, str(uuid.uuid4())], "x", "ann"))

    assert identity.store.state.ledger == before
    assert run(identity.service.lookup_by_id(other)).customer_id == other
    assert identity.commits == 0


def test_merging_ids_that_are_already_one_customer_is_refused(identity: Identity) -> None:
    first = identity.customer("a1", created_at=OLD)
    second = identity.customer("b1", created_at=NEW)
    run(identity.service.merge_customers([first, second], "same person", "ann"))

    with pytest.raises(InvalidArgument, match="already one customer"):
        run(identity.service.merge_customers([first, second], "again", "ann"))


@pytest.mark.parametrize(
    ("ids", "reason", "actor", "field"),
    [
        (["one"], "r", "ann", "customer_ids"),
        (["not-a-uuid", str(uuid.uuid4())], "r", "ann", "customer_ids[0]"),
        ([str(uuid.uuid4()), str(uuid.uuid4())], " ", "ann", "reason"),
        ([str(uuid.uuid4()), str(uuid.uuid4())], "r", "", "actor"),
    ],
)
def test_a_malformed_merge_is_refused_before_any_transaction(
    identity: Identity, ids: list[str], reason: str, actor: str, field: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        run(identity.service.merge_customers(ids, reason, actor))

    assert field in {v.field for v in refused.value.violations}
    assert identity.store.transactions == 0


# -- split ----------------------------------------------------------------------------------


def test_a_split_moves_the_named_records_to_a_new_customer(identity: Identity) -> None:
    source = identity.customer("a1", "a2", "a3")

    kept, target, _, redirected = run(
        identity.service.split_customer(source, [ref("a2"), ref("a3")], "", "two people", "ann")
    )

    assert kept == source and target != source and redirected == []
    assert run(identity.service.record_customer(ref("a1"))).customer_id == source
    assert run(identity.service.record_customer(ref("a2"))).customer_id == target
    assert run(identity.service.lookup_by_id(target)).record_count == 2
    assert run(identity.service.lookup_by_id(source)).record_count == 1
    assert identity.commits == 1


def test_a_split_keeps_the_two_apart_and_tells_the_ledger_and_every_peer(
    identity: Identity,
) -> None:
    source = identity.customer("a1", "a2")

    _, target, _, _ = run(
        identity.service.split_customer(source, [ref("a2")], "", "two people", "ann")
    )

    assert frozenset((source, target)) in identity.store.state.kept_apart
    (created,) = [
        e for e in identity.store.ledger_of(LedgerKind.CUSTOMER_CREATED) if e.customer_id == target
    ]
    assert created.actor == "ann"
    (split,) = identity.store.ledger_of(LedgerKind.CUSTOMER_SPLIT)
    assert (split.customer_id, split.other_customer_id) == (source, target)
    assert (split.actor, split.reason) == ("ann", "two people")
    (announced,) = identity.store.announced(SPLIT_TOPIC)
    assert announced["source_customer_id"] == source
    assert announced["target_customer_id"] == target
    assert announced["moved_records"] == [["web", "a2"]]
    assert announced["change_id"] == str(split.entry_id)
    # Ingestion looks again at events held for either side.
    assert identity.store.state.changed[-1] == sorted([source, target])


def test_a_split_moves_identifiers_only_the_moved_records_carry(identity: Identity) -> None:
    source = identity.store.add_customer()
    identity.store.add_record(source, "a1", identifiers=[("email", "a@x.org")])
    identity.store.add_record(
        source, "a2", identifiers=[("email", "a@x.org"), ("phone", "+441234567890")]
    )

    _, target, moved, _ = run(identity.service.split_customer(source, [ref("a2")], "", "r", "ann"))

    phone, email = IdentifierKey("phone", "+441234567890"), IdentifierKey("email", "a@x.org")
    assert moved == [phone]
    held = identity.store.state.identifiers
    assert held[phone].customer_id == target
    # Both sides' records carry the email: it stays with the source, shared with the target.
    assert held[email].customer_id == source and held[email].sharers == [target]


def test_a_split_into_an_existing_customer_makes_no_new_one(identity: Identity) -> None:
    source = identity.customer("a1", "a2")
    target = identity.customer("b1")

    _, into, _, _ = run(identity.service.split_customer(source, [ref("a2")], target, "r", "ann"))

    assert into == target
    assert run(identity.service.lookup_by_id(target)).record_count == 2
    assert identity.store.ledger_of(LedgerKind.CUSTOMER_CREATED)[-1].message_id == "b1"


def test_a_merged_away_id_follows_the_records_it_stood_for(identity: Identity) -> None:
    kept = identity.customer("a1", created_at=OLD)
    bridged = identity.customer("b1", "b2", created_at=NEW)
    run(identity.service.merge_customers([kept, bridged], "looked alike", "ann"))

    _, target, _, redirected = run(
        identity.service.split_customer(kept, [ref("b1"), ref("b2")], "", "undo", "ann")
    )

    assert redirected == [bridged]
    assert run(identity.service.lookup_by_id(bridged)).customer_id == target
    assert run(identity.service.lookup_by_id(kept)).merged_ids == ()


@pytest.mark.parametrize("moved", [["a1", "a2"], ["b1"]])
def test_a_split_refuses_records_it_cannot_move(identity: Identity, moved: list[str]) -> None:
    source = identity.customer("a1", "a2")
    identity.customer("b1")

    # Every record (nothing would be left) or another customer's record.
    with pytest.raises(FailedPrecondition):
        run(identity.service.split_customer(source, [ref(m) for m in moved], "", "r", "ann"))

    assert identity.store.ledger_of(LedgerKind.CUSTOMER_SPLIT) == []
    assert run(identity.service.lookup_by_id(source)).record_count == 2


def test_a_split_of_an_unknown_record_or_customer_is_not_found(identity: Identity) -> None:
    source = identity.customer("a1", "a2")

    with pytest.raises(NotFound):
        run(identity.service.split_customer(source, [ref("nowhere")], "", "r", "ann"))
    with pytest.raises(NotFound):
        run(identity.service.split_customer(str(uuid.uuid4()), [ref("a1")], "", "r", "ann"))


def test_a_split_into_the_customer_itself_is_refused(identity: Identity) -> None:
    kept = identity.customer("a1", "a2", created_at=OLD)
    alias = identity.customer("b1", created_at=NEW)
    run(identity.service.merge_customers([kept, alias], "same", "ann"))

    with pytest.raises(InvalidArgument, match="target_customer_id"):
        run(identity.service.split_customer(kept, [ref("a2")], alias, "r", "ann"))


# -- review decisions -----------------------------------------------------------------------


def _pair(identity: Identity) -> tuple[str, str, str]:
    """An open review item between a newer customer's record and an older one's."""
    older = identity.customer("a1", created_at=OLD)
    newer = identity.customer("b1", created_at=NEW)
    item = identity.store.add_review(ref("b1"), ref("a1"))
    return older, newer, item


def test_accepting_a_review_merges_into_the_older_customer(identity: Identity) -> None:
    older, newer, item = _pair(identity)

    survivor = run(identity.service.decide_review_item(item, True, "ann", "same person"))

    assert survivor == older
    assert run(identity.service.record_customer(ref("b1"))).customer_id == older
    (entry,) = identity.store.ledger_of(LedgerKind.REVIEW_ACCEPTED)
    assert entry.detail["review_item_id"] == item
    assert entry.detail["merged"] == [newer]
    assert (entry.source, entry.message_id) == ("web", "b1")
    assert [a["survivor"] for a in identity.store.announced(MERGED_TOPIC)] == [older]
    assert identity.store.state.reviews[item].state is ReviewState.ACCEPTED


def test_rejecting_a_review_keeps_the_two_apart(identity: Identity) -> None:
    older, newer, item = _pair(identity)

    kept = run(identity.service.decide_review_item(item, False, "ann", "different people"))

    assert kept == newer
    assert frozenset((older, newer)) in identity.store.state.kept_apart
    assert run(identity.service.record_customer(ref("b1"))).customer_id == newer
    (entry,) = identity.store.ledger_of(LedgerKind.REVIEW_REJECTED)
    assert (entry.customer_id, entry.other_customer_id) == (newer, older)
    assert identity.store.announced(MERGED_TOPIC) == []
    # Quality hears the pair is resolved (no longer a suspected duplicate).
    assert identity.store.state.quality[-1]["resolved"] == [(newer, older)]
    assert identity.store.state.reviews[item].decided_by == "ann"


@pytest.mark.parametrize("first", [True, False])
def test_a_review_is_decided_once(identity: Identity, first: bool) -> None:
    _, _, item = _pair(identity)
    run(identity.service.decide_review_item(item, first, "ann", "r"))

    for again in (True, False):
        with pytest.raises(FailedPrecondition, match="already"):
            run(identity.service.decide_review_item(item, again, "bob", "r"))

    decided = identity.store.state.reviews[item]
    assert decided.decided_by == "ann"


def test_accepting_a_review_of_customers_merged_since_merges_nothing(identity: Identity) -> None:
    older, newer, item = _pair(identity)
    run(identity.service.merge_customers([older, newer], "same", "ann"))

    assert run(identity.service.decide_review_item(item, True, "bob", "r")) == older

    assert len(identity.store.announced(MERGED_TOPIC)) == 1
    assert identity.store.ledger_of(LedgerKind.REVIEW_ACCEPTED) == []
    assert identity.store.state.reviews[item].state is ReviewState.ACCEPTED


def test_deciding_an_unknown_or_malformed_review_is_refused(identity: Identity) -> None:
    with pytest.raises(NotFound):
        run(identity.service.decide_review_item(str(uuid.uuid4()), True, "ann", "r"))
    with pytest.raises(InvalidArgument):
        run(identity.service.decide_review_item("nope", True, "ann", "r"))
    _, _, item = _pair(identity)
    with pytest.raises(InvalidArgument):
        run(identity.service.decide_review_item(item, True, " ", "r"))


def test_the_review_queue_shows_open_items_with_both_sides(identity: Identity) -> None:
    older = identity.store.add_customer(OLD)
    identity.store.add_record(older, "a1", first_name="Anna", last_name="Smith")
    newer = identity.store.add_customer(NEW)
    identity.store.add_record(newer, "b1", first_name="Ann", last_name="Smith")
    item = identity.store.add_review(ref("b1"), ref("a1"))

    (view,), token = run(identity.service.list_review_items(10, "", False))

    assert token == ""
    assert str(view.row.review_item_id) == item
    assert (view.record_side.customer_id, view.candidate_side.customer_id) == (newer, older)
    assert view.record_side.compared == ref("b1")
    assert view.candidate_side.first_names == ("Anna",)
    assert view.record_side.record_count == 1


def test_decided_items_leave_the_queue_but_stay_in_a_customers_history(
    identity: Identity,
) -> None:
    older, newer, item = _pair(identity)
    identity.customer("c1")
    open_item = identity.store.add_review(ref("c1"), ref("a1"))
    run(identity.service.decide_review_item(item, True, "ann", "r"))

    queue, _ = run(identity.service.list_review_items(10, "", False))
    assert [str(v.row.review_item_id) for v in queue] == [open_item]
    everything, _ = run(identity.service.list_review_items(10, "", True))
    assert len(everything) == 2
    # Asked by the merged-away id: its decided item too, the candidate shown as it is now.
    history, _ = run(identity.service.list_review_items(10, "", False, customer_id=newer))
    assert {str(v.row.review_item_id) for v in history} == {item, open_item}
    assert all(v.candidate_side.customer_id == older for v in history)


def test_the_review_queue_pages_in_order(identity: Identity) -> None:
    identity.customer("a1", created_at=OLD)
    items = []
    for n in range(3):
        identity.customer(f"b{n}")
        items.append(identity.store.add_review(ref(f"b{n}"), ref("a1")))

    first, token = run(identity.service.list_review_items(2, "", False))
    rest, end = run(identity.service.list_review_items(2, token, False))

    assert [str(v.row.review_item_id) for v in first + rest] == items
    assert token and end == ""
    with pytest.raises(NotFound):
        run(identity.service.list_review_items(2, "", False, customer_id=str(uuid.uuid4())))


# -- ledger ---------------------------------------------------------------------------------


def test_a_customers_ledger_includes_the_ids_merged_into_it(identity: Identity) -> None:
    kept = identity.customer("a1", created_at=OLD)
    merged = identity.customer("b1", created_at=NEW)
    stranger = identity.customer("c1")
    run(identity.service.merge_customers([kept, merged], "same", "ann"))

    rows, token = run(identity.service.ledger(merged, [], 0, ""))

    assert token == ""
    assert [(r.kind, r.message_id) for r in rows] == [
        (LedgerKind.CUSTOMER_CREATED, "a1"),
        (LedgerKind.CUSTOMER_CREATED, "b1"),
        (LedgerKind.MANUAL_MERGE, None),
    ]
    assert stranger not in {r.customer_id for r in rows}


def test_the_ledger_filters_by_kind_and_pages(identity: Identity) -> None:
    for n in range(3):
        identity.customer(f"a{n}")
    first = identity.customer("m1", created_at=OLD)
    second = identity.customer("m2", created_at=NEW)
    run(identity.service.merge_customers([first, second], "same", "ann"))

    merges, _ = run(identity.service.ledger("", ["manual_merge"], 0, ""))
    assert [r.kind for r in merges] == [LedgerKind.MANUAL_MERGE]
    page, token = run(identity.service.ledger("", [], 4, ""))
    rest, end = run(identity.service.ledger("", [], 4, token))
    assert [r.entry_id for r in page + rest] == [1, 2, 3, 4, 5, 6]
    assert token and end == ""


def test_the_ledger_refuses_unknown_kinds_customers_and_tokens(identity: Identity) -> None:
    with pytest.raises(InvalidArgument) as refused:
        run(identity.service.ledger("", ["customer_merged", "manual_merge"], 0, ""))
    assert [v.field for v in refused.value.violations] == ["kinds[0]"]
    with pytest.raises(NotFound):
        run(identity.service.ledger(str(uuid.uuid4()), [], 0, ""))
    with pytest.raises(InvalidArgument):
        run(identity.service.ledger("", [], 0, "not a token"))


# -- look-ups -------------------------------------------------------------------------------


def test_a_lookup_answers_with_the_customer_as_it_is_now(identity: Identity) -> None:
    source = identity.store.add_customer(OLD)
    identity.store.add_record(source, "a1", identifiers=[("email", "a@x.org")])

    view = run(identity.service.lookup_by_id(source))

    assert view.customer_id == source and view.created_at == OLD
    assert [key for key, *_ in view.identifiers] == [IdentifierKey("email", "a@x.org")]
    assert run(identity.service.record_customer(ref("a1"))) == view


def test_a_lookup_of_nobody_is_not_found(identity: Identity) -> None:
    with pytest.raises(NotFound):
        run(identity.service.lookup_by_id(str(uuid.uuid4())))
    with pytest.raises(InvalidArgument):
        run(identity.service.lookup_by_id("not-a-uuid"))
    with pytest.raises(NotFound, match="never reached identity"):
        run(identity.service.record_customer(ref("nowhere")))
