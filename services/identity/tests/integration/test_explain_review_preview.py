"""Identity's explanations, review queue, rule previews and ledger as a person uses them
(#16 item 9): why two records are kept apart, both sides of a suspected duplicate, previews that
keep a person's decisions and show identifiers changing hands, and the ledger.

The previews run on a graph of their own (a fresh database with identity alone), so their
counts are exact."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Iterator

import grpc
import psycopg
import pytest

from services.identity.tests.integration.test_identity_api import (
    CARD,
    T,
    email,
    phone,
    refused,
    request,
    resolve,
    surname,
    unique,
)
from svod.common.v1 import common_pb2
from svod.identity.v1 import identity_pb2, identity_pb2_grpc
from svod_cli.suite import InProcessSuite, create_database, drop_database, prepare_database
from svod_identity.adapters.storage import IdentityStore
from svod_identity.domain.batch import changes_dict
from svod_identity.entrypoints.grpc_servicer import preview_proto, rules_body
from svod_identity.service_layer.use_cases import IdentityService
from svod_runtime.db import create_engine, libpq_url

EPOCH_YEAR = 1970
# A town and houses of their own: other tests' Светланы live in Пермь.
CITY = "Кунгур"


def explain(stub, first, second) -> identity_pb2.ExplainResponse:
    return stub.Explain(
        identity_pb2.ExplainRequest(
            records=identity_pb2.RecordPair(first=first.record_ref, second=second.record_ref)
        ),
        timeout=T,
    )


def assert_real_times(steps) -> None:
    for step in steps:
        if step.HasField("time"):
            assert step.time.ToDatetime().year > EPOCH_YEAR, step


def test_explain_says_why_a_family_is_kept_apart(suite) -> None:
    flat = phone()
    mother = request(phones=(flat,), first="Мария", last="Смирнова", born=(1968, 3, 2))
    daughter = request(phones=(flat,), first="Анна", last="Смирнова", born=(1997, 7, 9))
    resolve(suite, mother)
    resolve(suite, daughter)
    why = explain(suite.identity, mother, daughter)
    assert not why.same_customer
    kinds = [s.kind for s in why.steps]
    assert kinds == ["identifier_refused", "conflict", "match_score"], kinds
    refused_phone, conflict, score = why.steps
    assert refused_phone.identifier.value == flat.replace(" ", "")
    assert list(conflict.disagreements) == ["first_name", "birth_date"]
    assert conflict.reason == "first_name and birth_date disagree"
    assert score.decision == "new" and "first_name_and_birth_date_disagree" in score.vetoes
    assert score.feature_levels["birth_date"] == "disagree"
    assert not score.HasField("time")  # computed now, not a moment in history
    assert_real_times(why.steps)


def test_explain_names_the_reviewer_who_kept_two_customers_apart(suite) -> None:
    last, house = surname(female=True), secrets.randbelow(10**6)
    first = request(
        phones=(phone(),),
        first="Светлана",
        last=last,
        city=CITY,
        address=f"ул. Садовая, д. {house}, кв. 7",
    )
    second = request(
        emails=(email(),),
        first="Света",
        last=last,
        city=CITY,
        address=f"улица Садовая, дом {house}, кв. 7",
    )
    resolve(suite, first)
    placed = resolve(suite, second)
    assert placed.review_item_ids
    pending = explain(suite.identity, first, second)
    assert pending.steps[0].kind == "review_open"
    assert pending.steps[0].score > 0 and pending.steps[0].feature_levels
    suite.identity.DecideReviewItem(
        identity_pb2.DecideReviewItemRequest(
            review_item_id=placed.review_item_ids[0],
            accept=False,
            actor="analyst-4",
            reason="different flats",
        ),
        timeout=T,
    )
    why = explain(suite.identity, first, second)
    kept = why.steps[0]
    assert kept.kind == "kept_apart" and kept.actor == "analyst-4"
    assert kept.reason == "a reviewer rejected the match: different flats"
    assert kept.time.ToDatetime().year >= 2026
    assert why.steps[-1].kind == "match_score"
    assert_real_times(why.steps)


def test_explain_of_one_customer_has_real_times(suite) -> None:
    shared = phone()
    a, b = request(phones=(shared,), first="Павел"), request(phones=(shared,), first="Павел")
    resolve(suite, a)
    resolve(suite, b)
    why = explain(suite.identity, a, b)
    assert why.same_customer and [s.kind for s in why.steps] == ["shared_identifier"]
    assert why.steps[0].time.ToDatetime().year >= 2026


def test_a_review_item_shows_both_sides_and_birth_dates_on_other_records(suite) -> None:
    last, mobile = surname(female=True), phone()
    address = f"ул. Садовая, д. {secrets.randbelow(10**6)}, кв. 40"
    compared = request(phones=(mobile,), first="Светлана", last=last, city=CITY, address=address)
    dated = request(phones=(mobile,), born=(1980, 2, 3), source="crm")
    newcomer = request(
        emails=(email(),),
        first="Света",
        last=last,
        city=CITY,
        address=address,
        born=(1985, 9, 10),
    )
    candidate = resolve(suite, compared)
    assert resolve(suite, dated).customer_id == candidate.customer_id
    placed = resolve(suite, newcomer)
    assert placed.customer_id != candidate.customer_id and placed.review_item_ids
    items = suite.identity.ListReviewItems(
        identity_pb2.ListReviewItemsRequest(page_size=1000), timeout=T
    ).items
    item = next(i for i in items if i.review_item_id == placed.review_item_ids[0])
    # The matcher compared the newcomer with the record that has no birth date ...
    assert item.feature_levels["birth_date"] == "missing"
    # ... but the reviewer sees both sides' birth dates, and that they differ.
    assert item.field_comparison["birth_date"] == "disagree"
    assert item.field_comparison["first_name"] == "equivalent"
    theirs, mine = item.candidate_side, item.record_side
    assert theirs.customer_id == candidate.customer_id and theirs.record_count == 2
    assert [(d.year, d.month, d.day) for d in theirs.birth_dates] == [(1980, 2, 3)]
    assert list(theirs.first_names) == ["Светлана"] and list(theirs.last_names) == [last]
    assert theirs.record_ref == compared.record_ref
    assert list(theirs.cities) == [CITY]
    assert [(d.year, d.month, d.day) for d in mine.birth_dates] == [(1985, 9, 10)]
    assert list(mine.first_names) == ["Света"] and mine.record_ref == newcomer.record_ref


def test_the_ledger_is_readable_by_customer_kind_and_page(suite) -> None:
    p1, p2 = phone(), phone()
    a = resolve(suite, request(phones=(p1,), first="Олег"))
    b = resolve(suite, request(phones=(p2,), first="Олег"))
    resolve(suite, request(phones=(p1,), first="Олег"))
    suite.identity.MergeCustomers(
        identity_pb2.MergeCustomersRequest(
            customer_ids=[a.customer_id, b.customer_id], reason="same man", actor="agent-9"
        ),
        timeout=T,
    )
    entries, token = [], ""
    while True:
        page = suite.identity.ListLedgerEntries(
            identity_pb2.ListLedgerEntriesRequest(
                customer_id=b.customer_id, page_size=2, page_token=token
            ),
            timeout=T,
        )
        entries += page.entries
        token = page.next_page_token
        if not token:
            break
    kinds = [e.kind for e in entries]
    assert kinds == ["customer_created", "customer_created", "record_linked", "manual_merge"]
    assert [e.entry_id for e in entries] == sorted(e.entry_id for e in entries)
    merge = entries[-1]
    assert merge.actor == "agent-9" and merge.reason == "same man"
    assert json.loads(merge.detail_json)["merged"] == [b.customer_id]
    assert all(e.time.ToDatetime().year >= 2026 for e in entries)
    assert p1.replace(" ", "") not in str(entries)  # never identifier values
    merges = suite.identity.ListLedgerEntries(
        identity_pb2.ListLedgerEntriesRequest(customer_id=a.customer_id, kinds=["manual_merge"]),
        timeout=T,
    ).entries
    assert [e.kind for e in merges] == ["manual_merge"]
    for bad, code in (
        (identity_pb2.ListLedgerEntriesRequest(kinds=["gossip"]), grpc.StatusCode.INVALID_ARGUMENT),
        (identity_pb2.ListLedgerEntriesRequest(customer_id="x"), grpc.StatusCode.INVALID_ARGUMENT),
        (identity_pb2.ListLedgerEntriesRequest(page_token="??"), grpc.StatusCode.INVALID_ARGUMENT),
        (
            identity_pb2.ListLedgerEntriesRequest(
                customer_id="00000000-0000-4000-8000-000000000000"
            ),
            grpc.StatusCode.NOT_FOUND,
        ),
    ):
        assert refused(suite.identity.ListLedgerEntries, bad).code() == code


# -- previews on a graph of their own ------------------------------------------------------


@pytest.fixture(scope="module")
def own_graph(postgres_admin_url) -> Iterator[tuple[identity_pb2_grpc.IdentityServiceStub, str]]:
    """Identity alone on a database of its own, and identity's database URL there."""
    name = f"svod_preview_{time.monotonic_ns()}"
    url = create_database(postgres_admin_url, name)
    running = None
    try:
        urls = prepare_database(url)
        running = InProcessSuite(url, services=("identity",)).start()
        with grpc.insecure_channel(running.target("identity")) as channel:
            yield identity_pb2_grpc.IdentityServiceStub(channel), urls["identity"]
    finally:
        if running is not None:
            running.stop()
        drop_database(postgres_admin_url, name)


@pytest.fixture(scope="module")
def own_identity(own_graph) -> identity_pb2_grpc.IdentityServiceStub:
    return own_graph[0]


def preview(stub, rules: identity_pb2.Rules) -> identity_pb2.PreviewRulesResponse:
    return stub.PreviewRules(identity_pb2.PreviewRulesRequest(rules=rules), timeout=30)


def test_previews_keep_a_persons_decisions_and_show_identifiers_changing_hands(
    own_identity,
) -> None:
    stub = own_identity
    last, house = surname(female=True), secrets.randbelow(10**6)
    # A reviewer accepts Света as Светлана.
    svetlana = request(
        phones=(phone(),),
        first="Светлана",
        last=last,
        city=CITY,
        address=f"ул. Садовая, д. {house}, кв. 7",
    )
    sveta = request(
        emails=(email(),),
        first="Света",
        last=last,
        city=CITY,
        address=f"улица Садовая, дом {house}, кв. 7",
    )
    stub.Resolve(svetlana, timeout=T)
    review = stub.Resolve(sveta, timeout=T).review_item_ids[0]
    stub.DecideReviewItem(
        identity_pb2.DecideReviewItemRequest(review_item_id=review, accept=True, actor="a"),
        timeout=T,
    )
    # An agent splits Павел's second record out: two brothers sharing a phone.
    home = phone()
    pavel = stub.Resolve(request(phones=(home,), first="Павел"), timeout=T)
    brother = request(phones=(home,), emails=(email(),), first="Павел")
    stub.Resolve(brother, timeout=T)
    stub.SplitCustomer(
        identity_pb2.SplitCustomerRequest(
            customer_id=pavel.customer_id, record_refs=[brother.record_ref], reason="r", actor="a"
        ),
        timeout=T,
    )
    # Юлия has two cards.
    mobile, first_card, second_card = phone(), unique("C"), unique("C")
    julia = stub.Resolve(request(phones=(mobile,), cards=(first_card,), first="Юлия"), timeout=T)
    stub.Resolve(request(phones=(mobile,), cards=(second_card,), first="Юлия"), timeout=T)

    rules = stub.GetRules(identity_pb2.GetRulesRequest(), timeout=T)
    same = preview(stub, rules)
    assert same.records_evaluated == 6
    assert (same.would_merge_count, same.would_split_count) == (0, 0), same
    assert same.identifier_change_count == 0, same.sample_identifier_changes
    assert same.customers_before == same.customers_after == 4

    one_card = identity_pb2.Rules()
    one_card.CopyFrom(rules)
    for rule in one_card.identifier_rules:
        if rule.type == CARD:
            rule.max_values_per_customer = 1
    limited = preview(stub, one_card)
    assert (limited.would_merge_count, limited.would_split_count) == (0, 0)
    assert limited.identifier_change_count == 1
    (change,) = limited.sample_identifier_changes
    assert change.identifier.value == second_card.upper().replace("-", "")
    assert change.current_customer_id == julia.customer_id
    assert (change.change, change.reason) == ("unlinked", "limit")


def in_process_preview(
    identity_url: str, rules: identity_pb2.Rules
) -> identity_pb2.PreviewRulesResponse:
    """PreviewRules as the service answered it before it ran in the batch worker: the whole
    graph placed in the service's own process (``IdentityService.preview_rules``)."""

    async def run() -> identity_pb2.PreviewRulesResponse:
        engine = create_engine(identity_url, pool_size=1)
        try:
            result = await IdentityService(IdentityStore(engine)).preview_rules(rules_body(rules))
        finally:
            await engine.dispose()
        return preview_proto(changes_dict(result))

    return asyncio.run(run())


def preview_jobs(identity_url: str) -> int:
    """PreviewRules jobs the batch worker finished."""
    with psycopg.connect(libpq_url(identity_url)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM resolution_jobs WHERE candidate_rules IS NOT NULL "
            "AND state = 'succeeded' AND dry_run"
        ).fetchone()
    assert row is not None
    return int(row[0])


def answer(response: identity_pb2.PreviewRulesResponse) -> dict[str, object]:
    return {
        "would_merge_count": response.would_merge_count,
        "would_split_count": response.would_split_count,
        "sample_merges": [
            [[p.first.source, p.first.message_id], [p.second.source, p.second.message_id]]
            for p in response.sample_merges
        ],
        "sample_splits": [
            [[p.first.source, p.first.message_id], [p.second.source, p.second.message_id]]
            for p in response.sample_splits
        ],
        "records": response.records_evaluated,
        "customers_before": response.customers_before,
        "customers_after": response.customers_after,
        "identifier_change_count": response.identifier_change_count,
        "sample_identifier_changes": [
            {
                "type": common_pb2.IdentifierType.Name(c.identifier.type),
                "value": c.identifier.value,
                "namespace": c.identifier.namespace,
                "current_customer_id": c.current_customer_id,
                "change": c.change,
                "proposed_customer_id": c.proposed_customer_id,
                "reason": c.reason,
            }
            for c in response.sample_identifier_changes
        ],
    }


def test_a_preview_run_by_the_batch_worker_answers_as_the_service_did(own_graph) -> None:
    """PreviewRules is a dry-run job of the batch worker (issue #22: no 200,000-record cap):
    what it says would merge, split and change hands is what the service's own placing said."""
    stub, identity_url = own_graph
    # Two records of one person by a shared phone, each with a card of hers.
    mobile, card, other_card = phone(), unique("C"), unique("C")
    stub.Resolve(request(phones=(mobile,), cards=(card,), first="Ксения"), timeout=T)
    stub.Resolve(request(phones=(mobile,), cards=(other_card,), first="Ксения"), timeout=T)
    rules = stub.GetRules(identity_pb2.GetRulesRequest(), timeout=T)
    # Rules letting a customer hold one card: her second one would be unlinked.
    one_card = identity_pb2.Rules()
    one_card.CopyFrom(rules)
    for rule in one_card.identifier_rules:
        if rule.type == CARD:
            rule.max_values_per_customer = 1
    jobs_before = preview_jobs(identity_url)
    answers = {}
    for name, candidate in (("same", rules), ("one_card", one_card)):
        answers[name] = answer(preview(stub, candidate))
        assert answers[name] == answer(in_process_preview(identity_url, candidate)), name
    # Each answer came from a job of the batch worker, not from the service's process.
    assert preview_jobs(identity_url) == jobs_before + 2
    assert answers["same"]["identifier_change_count"] == 0
    unlinked = answers["one_card"]["sample_identifier_changes"]
    assert other_card.upper().replace("-", "") in [c["value"] for c in unlinked]  # type: ignore[union-attr]
