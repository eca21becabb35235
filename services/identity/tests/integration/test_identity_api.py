"""Identity resolution through the public gRPC API: rules, fuzzy matching, review, merge/split,
explain, export, batch and preview, against the real servers and a real Postgres."""

from __future__ import annotations

import io
import json
import random
import secrets
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from svod.common.v1 import common_pb2
from svod.identity.v1 import identity_pb2
from svod_cli.identity import write_mapping_csv
from svod_identity.domain.matching.frequencies import (
    attribute_term_frequencies,
    first_name_birth_date_keys,
)
from svod_identity.service_layer import use_cases
from tests.builders import random_phone

T = 10.0
PHONE = common_pb2.IDENTIFIER_TYPE_PHONE
EMAIL = common_pb2.IDENTIFIER_TYPE_EMAIL
CARD = common_pb2.IDENTIFIER_TYPE_LOYALTY_CARD
CREATED = identity_pb2.RESOLUTION_OUTCOME_CREATED
EXACT = identity_pb2.RESOLUTION_OUTCOME_LINKED_EXACT
FUZZY = identity_pb2.RESOLUTION_OUTCOME_LINKED_FUZZY
SURNAMES = ("Тимирязев", "Корнилов", "Белозеров", "Мухортов", "Ясинский", "Остроумов")


def unique(prefix: str = "m") -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


def phone() -> str:
    """A mobile number nobody else in the run uses, never one read as a placeholder."""
    return random_phone()


def email() -> str:
    return f"{unique('p')}@example.ru"


def birth() -> tuple[int, int, int]:
    return (1950 + secrets.randbelow(50), 1 + secrets.randbelow(12), 1 + secrets.randbelow(28))


def surname(female: bool = False) -> str:
    base = SURNAMES[secrets.randbelow(len(SURNAMES))] + secrets.choice(("", "ов"))
    return base + ("а" if female and base.endswith("ов") else "")


def request(  # noqa: PLR0913
    *,
    source: str = "webshop",
    phones: tuple[str, ...] = (),
    emails: tuple[str, ...] = (),
    cards: tuple[str, ...] = (),
    first: str = "",
    last: str = "",
    middle: str = "",
    born: tuple[int, int, int] | None = None,
    city: str = "",
    address: str = "",
    message_id: str | None = None,
) -> identity_pb2.ResolveRequest:
    identifiers = [common_pb2.Identifier(type=PHONE, value=v) for v in phones]
    identifiers += [common_pb2.Identifier(type=EMAIL, value=v) for v in emails]
    identifiers += [common_pb2.Identifier(type=CARD, value=v) for v in cards]
    req = identity_pb2.ResolveRequest(
        record_ref=common_pb2.RecordRef(source=source, message_id=message_id or unique()),
        identifiers=identifiers,
        name=common_pb2.PersonName(first_name=first, last_name=last, middle_name=middle),
    )
    if born:
        req.birth_date.year, req.birth_date.month, req.birth_date.day = born
    if city or address:
        req.addresses.add(country_code="RU", city=city, address_line=address)
    return req


def resolve(suite, req: identity_pb2.ResolveRequest) -> identity_pb2.ResolveResponse:
    return suite.identity.Resolve(req, timeout=T)


def refused(call, *args) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as error:
        call(*args, timeout=T)
    return error.value


@pytest.fixture
def rules(suite):
    """The rules in force; whatever a test changes is put back afterwards."""
    before = suite.identity.GetRules(identity_pb2.GetRulesRequest(), timeout=T)
    yield before
    now = suite.identity.GetRules(identity_pb2.GetRulesRequest(), timeout=T)
    if now.version != before.version:
        suite.identity.UpdateRules(
            identity_pb2.UpdateRulesRequest(
                rules=before, expected_version=now.version, actor="test-restore"
            ),
            timeout=T,
        )


def update_rules(suite, rules: identity_pb2.Rules, version: int) -> identity_pb2.Rules:
    return suite.identity.UpdateRules(
        identity_pb2.UpdateRulesRequest(rules=rules, expected_version=version, actor="tester"),
        timeout=T,
    )


# -- rules ---------------------------------------------------------------------------------


def test_rules_are_versioned_data_and_stale_updates_fail(suite, rules) -> None:
    assert rules.auto_link_threshold > rules.review_threshold > 0
    assert {r.type for r in rules.identifier_rules} >= {PHONE, EMAIL, CARD}
    changed = identity_pb2.Rules()
    changed.CopyFrom(rules)
    blocked = phone()
    for rule in changed.identifier_rules:
        if rule.type == PHONE:
            rule.blocked_values.append(blocked)
    updated = update_rules(suite, changed, rules.version)
    assert updated.version == rules.version + 1 and updated.updated_by == "tester"
    stale = refused(
        suite.identity.UpdateRules,
        identity_pb2.UpdateRulesRequest(rules=changed, expected_version=rules.version, actor="x"),
    )
    assert stale.code() == grpc.StatusCode.FAILED_PRECONDITION

    # A blocked value never links: two records carrying it stay two customers.
    a = resolve(suite, request(phones=(blocked,), first="Олег"))
    b = resolve(suite, request(phones=(blocked,), first="Олег"))
    assert a.customer_id != b.customer_id
    assert [u.reason for u in b.unlinked_identifiers] == ["configured"]
    listed = suite.identity.ListBlockedIdentifiers(
        identity_pb2.ListBlockedIdentifiersRequest(), timeout=T
    )
    assert any(
        i.reason == "configured" and i.identifier.value.endswith(blocked[-7:].replace(" ", ""))
        for i in listed.identifiers
    )


def test_bad_rules_are_refused_with_field_paths(suite, rules) -> None:
    bad = identity_pb2.Rules(
        identifier_rules=[
            identity_pb2.IdentifierRule(type=common_pb2.IDENTIFIER_TYPE_UNSPECIFIED),
            identity_pb2.IdentifierRule(type=PHONE, blocked_values=["not a phone"]),
        ],
        auto_link_threshold=0.5,
        review_threshold=0.9,
    )
    error = refused(
        suite.identity.UpdateRules,
        identity_pb2.UpdateRulesRequest(rules=bad, expected_version=rules.version, actor="t"),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    for path in (
        "rules.identifier_rules[0].type",
        "rules.identifier_rules[1].blocked_values[0]",
        "rules.review_threshold",
    ):
        assert path in error.details()


def test_placeholder_phone_is_blocked_by_default(suite) -> None:
    first = resolve(suite, request(source="pos-1", phones=("+7 000 000-00-00",), first="Анна"))
    second = resolve(suite, request(source="pos-2", phones=("+7 000 000-00-00",), first="Анна"))
    assert first.customer_id != second.customer_id
    assert second.unlinked_identifiers[0].reason == "placeholder"


def test_value_limit_keeps_a_second_card_off_the_customer(suite, rules) -> None:
    changed = identity_pb2.Rules()
    changed.CopyFrom(rules)
    for rule in changed.identifier_rules:
        if rule.type == CARD:
            rule.max_values_per_customer = 1
    update_rules(suite, changed, rules.version)
    mobile, card1, card2 = phone(), unique("C"), unique("C")
    a = resolve(suite, request(phones=(mobile,), cards=(card1,), first="Юлия"))
    b = resolve(suite, request(phones=(mobile,), cards=(card2,), first="Юлия"))
    assert b.customer_id == a.customer_id
    assert [(u.identifier.value, u.reason) for u in b.unlinked_identifiers] == [
        (card2.upper().replace("-", ""), "limit")
    ]


# -- households, namesakes, frequency blocklist ----------------------------------------------


def test_household_sharing_a_phone_and_email_stays_apart(suite) -> None:
    family_phone, family_mail, last = phone(), email(), surname()
    husband = resolve(
        suite,
        request(
            phones=(family_phone,),
            emails=(family_mail,),
            first="Игорь",
            last=last,
            born=(1971, 3, 4),
            city="Тверь",
        ),
    )
    wife = resolve(
        suite,
        request(
            phones=(family_phone,),
            emails=(family_mail,),
            first="Ольга",
            last=last + "а",
            born=(1974, 8, 9),
            city="Тверь",
        ),
    )
    assert wife.customer_id != husband.customer_id
    assert {u.reason for u in wife.unlinked_identifiers} == {"conflict"}
    # The husband's next record still links by the phone.
    again = resolve(suite, request(phones=(family_phone,), first="Игорь", last=last))
    assert again.customer_id == husband.customer_id


def test_value_shared_by_many_different_people_gets_blocked_and_listed(suite) -> None:
    shop_mail = email()
    names = ("Антон", "Борис", "Вера", "Галина", "Денис")
    customers = [
        resolve(suite, request(emails=(shop_mail,), first=n, born=birth())).customer_id
        for n in names
    ]
    assert len(set(customers)) == len(names)
    late = resolve(suite, request(emails=(shop_mail,), first="Антон"))
    assert late.unlinked_identifiers[0].reason == "frequency"
    listed = suite.identity.ListBlockedIdentifiers(
        identity_pb2.ListBlockedIdentifiersRequest(page_size=1000), timeout=T
    )
    found = [i for i in listed.identifiers if i.identifier.value == shop_mail]
    assert found and found[0].reason == "frequency" and found[0].people_count > 3


def test_namesakes_in_one_city_are_not_merged(suite) -> None:
    last = surname()
    a = resolve(
        suite, request(phones=(phone(),), first="Иван", last=last, born=(1980, 1, 2), city="Москва")
    )
    b = resolve(
        suite, request(phones=(phone(),), first="Иван", last=last, born=(1975, 6, 7), city="Москва")
    )
    assert a.customer_id != b.customer_id
    assert b.outcome == CREATED


# -- fuzzy matching and the review queue ---------------------------------------------------


def test_masha_is_maria_by_name_and_birth_date(suite) -> None:
    last, born = surname(female=True), birth()
    maria = resolve(
        suite,
        request(
            source="webshop", phones=(phone(),), first="Мария", last=last, born=born, city="Казань"
        ),
    )
    masha = resolve(
        suite,
        request(
            source="pos-9", emails=(email(),), first="Маша", last=last, born=born, city="Казань"
        ),
    )
    assert masha.customer_id == maria.customer_id
    assert masha.outcome == FUZZY and masha.rule == "fuzzy" and masha.score > 0.9


def test_weak_match_goes_to_review_and_accepting_merges(suite) -> None:
    last = surname(female=True)
    first = resolve(
        suite,
        request(
            phones=(phone(),),
            first="Светлана",
            last=last,
            city="Пермь",
            address="ул. Ленина, д. 5, кв. 7",
        ),
    )
    second = resolve(
        suite,
        request(
            emails=(email(),),
            first="Света",
            last=last,
            city="Пермь",
            address="улица Ленина, дом 5, кв. 7",
        ),
    )
    assert second.customer_id != first.customer_id
    assert second.review_item_ids
    items = suite.identity.ListReviewItems(
        identity_pb2.ListReviewItemsRequest(page_size=1000), timeout=T
    ).items
    item = next(i for i in items if i.review_item_id == second.review_item_ids[0])
    assert item.candidate_customer_id == first.customer_id
    assert item.record_customer_id == second.customer_id
    assert "no_personal_evidence" in item.vetoes and item.feature_levels["first_name"]
    decided = suite.identity.DecideReviewItem(
        identity_pb2.DecideReviewItemRequest(
            review_item_id=item.review_item_id, accept=True, actor="analyst", reason="same"
        ),
        timeout=T,
    )
    assert decided.customer_id == first.customer_id
    again = refused(
        suite.identity.DecideReviewItem,
        identity_pb2.DecideReviewItemRequest(
            review_item_id=item.review_item_id, accept=False, actor="analyst"
        ),
    )
    assert again.code() == grpc.StatusCode.FAILED_PRECONDITION
    explained = suite.identity.Explain(
        identity_pb2.ExplainRequest(
            records=identity_pb2.RecordPair(first=first_ref(first), second=first_ref(second))
        ),
        timeout=T,
    )
    assert explained.same_customer and [s.kind for s in explained.steps] == ["review_accepted"]
    assert explained.steps[0].actor == "analyst"


_REFS: dict[str, common_pb2.RecordRef] = {}


def first_ref(response: identity_pb2.ResolveResponse) -> common_pb2.RecordRef:
    return _REFS[response.customer_id + "/" + ",".join(response.review_item_ids)]


@pytest.fixture(autouse=True)
def _remember_refs(suite, monkeypatch):
    """Lets tests find the ref of a response (Resolve answers do not repeat it)."""
    original = suite.identity.Resolve

    def remembering(req, **kwargs):
        reply = original(req, **kwargs)
        _REFS[reply.customer_id + "/" + ",".join(reply.review_item_ids)] = req.record_ref
        return reply

    monkeypatch.setattr(suite.identity, "Resolve", remembering)


# -- merge, split, explain, record look-up, export -----------------------------------------


def test_manual_merge_split_and_explain(suite, monkeypatch) -> None:
    p1, p2, mail = phone(), phone(), email()
    r1 = request(phones=(p1,), first="Павел")
    r2 = request(phones=(p1,), emails=(mail,), first="Павел")
    r3 = request(phones=(p2,), first="Павел", source="crm")
    a, b, c = (resolve(suite, r) for r in (r1, r2, r3))
    assert a.customer_id == b.customer_id != c.customer_id

    for bad, code in (
        ([a.customer_id, a.customer_id], grpc.StatusCode.INVALID_ARGUMENT),
        ([a.customer_id, "not-a-uuid"], grpc.StatusCode.INVALID_ARGUMENT),
        ([a.customer_id, "00000000-0000-4000-8000-000000000000"], grpc.StatusCode.NOT_FOUND),
    ):
        error = refused(
            suite.identity.MergeCustomers,
            identity_pb2.MergeCustomersRequest(customer_ids=bad, reason="r", actor="a"),
        )
        assert error.code() == code, bad
    merged = suite.identity.MergeCustomers(
        identity_pb2.MergeCustomersRequest(
            customer_ids=[c.customer_id, a.customer_id], reason="called them", actor="agent-7"
        ),
        timeout=T,
    )
    assert merged.surviving_customer_id == a.customer_id
    assert list(merged.merged_customer_ids) == [c.customer_id]

    why = suite.identity.Explain(
        identity_pb2.ExplainRequest(
            records=identity_pb2.RecordPair(first=r2.record_ref, second=r3.record_ref)
        ),
        timeout=T,
    )
    assert why.same_customer and why.customer_id == a.customer_id
    kinds = [s.kind for s in why.steps]
    assert kinds == ["shared_identifier", "manual_merge"]
    assert why.steps[0].identifier.type == PHONE and why.steps[1].actor == "agent-7"
    whole = suite.identity.Explain(
        identity_pb2.ExplainRequest(customer_id=c.customer_id), timeout=T
    )
    assert whole.customer_id == a.customer_id and len(whole.steps) == 4

    # Split the call-centre record back out; its phone goes with it, the others stay.
    error = refused(
        suite.identity.SplitCustomer,
        identity_pb2.SplitCustomerRequest(
            customer_id=a.customer_id,
            record_refs=[r1.record_ref, r2.record_ref, r3.record_ref],
            reason="r",
            actor="a",
        ),
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION  # would leave nothing behind
    error = refused(
        suite.identity.SplitCustomer,
        identity_pb2.SplitCustomerRequest(
            customer_id=a.customer_id,
            record_refs=[common_pb2.RecordRef(source="crm", message_id=unique())],
            reason="r",
            actor="a",
        ),
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
    split = suite.identity.SplitCustomer(
        identity_pb2.SplitCustomerRequest(
            customer_id=c.customer_id, record_refs=[r3.record_ref], reason="wrong", actor="a"
        ),
        timeout=T,
    )
    assert split.source_customer_id == a.customer_id
    assert split.target_customer_id not in (a.customer_id, c.customer_id)
    assert [i.value for i in split.moved_identifiers] == [p2.replace(" ", "")]
    owner = suite.identity.GetRecordCustomer(
        identity_pb2.GetRecordCustomerRequest(record_ref=r3.record_ref), timeout=T
    )
    assert owner.customer_id == split.target_customer_id and owner.record_count == 1
    # Kept apart: a record carrying both phones does not merge them again.
    bridge = resolve(suite, request(phones=(p1, p2), first="Павел"))
    assert bridge.customer_id in (a.customer_id, split.target_customer_id)
    assert [u.reason for u in bridge.unlinked_identifiers] == ["kept_apart"]
    missing = refused(
        suite.identity.GetRecordCustomer,
        identity_pb2.GetRecordCustomerRequest(
            record_ref=common_pb2.RecordRef(source="crm", message_id=unique())
        ),
    )
    assert missing.code() == grpc.StatusCode.NOT_FOUND

    out = io.StringIO()
    monkeypatch.setenv("SVOD_IDENTITY_TARGET", suite.suite.target("identity"))
    count = write_mapping_csv(out, timeout_s=T)
    lines = out.getvalue().splitlines()
    assert lines[0] == "source,message_id,customer_id,resolve_time,rule"
    assert count == len(lines) - 1
    assert f"crm,{r3.record_ref.message_id},{split.target_customer_id}," in out.getvalue()


# -- batch, preview, concurrency, model ----------------------------------------------------


def test_resolve_batch_resolves_in_order_and_refuses_bad_input_whole(suite) -> None:
    shared = phone()
    requests = [request(source="import", phones=(shared,), first="Кира") for _ in range(3)]
    requests.append(request(source="import", emails=(email(),), first="Лев"))
    requests.append(requests[0])  # a repeat inside the batch
    reply = suite.identity.ResolveBatch(iter(requests), timeout=T)
    results = reply.results
    assert [r.outcome for r in results] == [
        CREATED,
        EXACT,
        EXACT,
        CREATED,
        identity_pb2.RESOLUTION_OUTCOME_ALREADY_RESOLVED,
    ]
    assert len({r.customer_id for r in results[:3]}) == 1 and results[4].customer_id == (
        results[0].customer_id
    )
    fresh = request(source="import", phones=(phone(),))
    bad = request(source="import")
    error = refused(suite.identity.ResolveBatch, iter([fresh, bad]))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "requests[1].identifiers" in error.details()
    lost = refused(
        suite.identity.GetRecordCustomer,
        identity_pb2.GetRecordCustomerRequest(record_ref=fresh.record_ref),
    )
    assert lost.code() == grpc.StatusCode.NOT_FOUND  # nothing half-written


def test_preview_reports_what_a_rule_change_would_do_without_doing_it(suite, rules) -> None:
    shared = phone()
    a = resolve(suite, request(phones=(shared,), first="Тимур"))
    b = resolve(suite, request(phones=(shared,), first="Тимур"))
    assert a.customer_id == b.customer_id
    candidate = identity_pb2.Rules()
    candidate.CopyFrom(rules)
    for rule in candidate.identifier_rules:
        if rule.type == PHONE:
            rule.blocked_values.append(shared)
    preview = suite.identity.PreviewRules(
        identity_pb2.PreviewRulesRequest(rules=candidate), timeout=30
    )
    assert preview.would_split_count >= 1 and preview.records_evaluated > 0
    still = suite.identity.GetRules(identity_pb2.GetRulesRequest(), timeout=T)
    assert still.version == rules.version


def test_parallel_batches_with_one_new_identifier_make_one_customer(suite) -> None:
    shared = phone()

    def batch(i: int) -> set[str]:
        reqs = [request(source=f"till-{i}", phones=(shared,)) for _ in range(5)]
        return {r.customer_id for r in suite.identity.ResolveBatch(iter(reqs), timeout=T).results}

    with ThreadPoolExecutor(max_workers=8) as pool:
        customers = set().union(*pool.map(batch, range(8)))
    assert len(customers) == 1


def test_match_model_is_stored_json_and_refit_by_em(suite) -> None:
    model = suite.identity.GetMatchModel(identity_pb2.GetMatchModelRequest(), timeout=T)
    assert '"features"' in model.model_json
    dry = suite.identity.RefitMatchModel(
        identity_pb2.RefitMatchModelRequest(max_pairs=5000, dry_run=True), timeout=30
    )
    assert dry.version == 0 and '"trained_pairs"' in dry.model_json
    error = refused(suite.identity.RefitMatchModel, identity_pb2.RefitMatchModelRequest())
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


def _refit_frequencies(suite, feature: str) -> dict:
    """One term-frequency table of the model a dry-run refit estimates from the store."""
    refit = suite.identity.RefitMatchModel(
        identity_pb2.RefitMatchModelRequest(max_pairs=5000, dry_run=True), timeout=30
    )
    return json.loads(refit.model_json)["term_frequencies"][feature]


def _an_old_birth_date() -> tuple[tuple[int, int, int], str]:
    """A birth date from 1920-1940 (rarely another test's), as (year, month, day) and ISO."""
    born = (random.randint(1920, 1940), random.randint(1, 12), random.randint(1, 28))
    return born, f"{born[0]:04d}-{born[1]:02d}-{born[2]:02d}"


def test_a_refit_model_counts_names_and_cities_of_the_stored_records(suite) -> None:
    """Term frequencies come from every stored record: two more records in a town add two to
    its count, whatever pairs the refit sampled."""

    before = _refit_frequencies(suite, "city")
    for _ in range(2):
        resolve(suite, request(phones=(phone(),), first="Аглая", last=surname(), city="г. Кимры"))
    after = _refit_frequencies(suite, "city")
    assert after["total"] == before["total"] + 2
    assert after["counts"]["kimri"] == before["counts"].get("kimri", 0) + 2


def test_a_refit_model_counts_the_mailboxes_holding_each_login(suite) -> None:
    """Login frequencies come from every stored record's e-mail addresses: a login at two
    providers is held by two mailboxes, however many records each has."""
    login = unique("mariasmirnova").replace("-", "")
    for address in (f"{login}@mail.ru", f"{login}@mail.ru", f"{login}@gmail.com"):
        resolve(suite, request(emails=(address,), phones=(phone(),), first="Мария"))
    logins = _refit_frequencies(suite, "login")
    assert logins["counts"][login.lower()] == 2


def test_a_refit_model_counts_the_records_holding_each_birth_date(suite) -> None:
    """Birth-date frequencies come from every stored record, as comparisons read the dates: a
    placeholder date (01.01.1970) is never counted."""

    born, day = _an_old_birth_date()
    before = _refit_frequencies(suite, "birth_date")
    for when in (born, born, (1970, 1, 1)):
        resolve(suite, request(phones=(phone(),), first="Аглая", last=surname(), born=when))
    after = _refit_frequencies(suite, "birth_date")
    assert after["total"] == before["total"] + 2
    assert after["counts"][day] == before["counts"].get(day, 0) + 2
    assert "1970-01-01" not in after["counts"]


def test_a_refit_model_counts_the_records_holding_each_given_name_and_birth_date(suite) -> None:
    """The (given name, birth date) pair frequencies come from every stored record, under the
    passport name the given name stands for, as ``attribute_term_frequencies`` counts them
    offline: «Лена» and «Елена» born the same day are two records of one pair."""

    born, day = _an_old_birth_date()
    (key,) = first_name_birth_date_keys("Елена", day)
    before = _refit_frequencies(suite, "first_name_birth_date")
    for first in ("Елена", "Лена"):
        resolve(suite, request(phones=(phone(),), first=first, last=surname(), born=born))
    resolve(suite, request(phones=(phone(),), last=surname(), born=born))  # no given name
    after = _refit_frequencies(suite, "first_name_birth_date")
    assert after["total"] == before["total"] + 2
    assert after["counts"][key] == before["counts"].get(key, 0) + 2
    stored = [{"first_name": "Елена", "birth_date": day}, {"first_name": "Лена", "birth_date": day}]
    assert attribute_term_frequencies(stored)["first_name_birth_date"].counts == {key: 2}


def test_merge_is_announced_to_profile(suite) -> None:
    """The merge outbox reaches profile (delivered rows leave the outbox)."""
    p, m = phone(), email()
    a = resolve(suite, request(phones=(p,)))
    b = resolve(suite, request(emails=(m,)))
    bridge = resolve(suite, request(phones=(p,), emails=(m,)))
    assert list(bridge.merged_customer_ids) == [b.customer_id]
    assert bridge.customer_id == a.customer_id
    deadline = time.monotonic() + 10
    while True:
        view = suite.identity.LookupCustomer(
            identity_pb2.LookupCustomerRequest(customer_id=b.customer_id), timeout=T
        )
        if view.customer_id == a.customer_id:
            break
        assert time.monotonic() < deadline


def test_a_record_refused_by_its_phones_owner_still_finds_its_person_by_fuzzy_matching(
    suite,
) -> None:
    """The phone belongs to someone clearly different (the mother): the record falls back to
    fuzzy matching, whose candidates the service loads only then."""
    born = (random.randint(1950, 1999), random.randint(1, 12), random.randint(1, 28))
    home = {"city": "Москва", "address": "ул. Профсоюзная, д. 12, кв. 45"}
    daughter = resolve(
        suite, request(phones=(phone(),), first="Мария", last="Сидорова", born=born, **home)
    )
    mother_phone = phone()
    mother = resolve(
        suite,
        request(phones=(mother_phone,), first="Ольга", last="Сидорова", born=(1940, 1, 2), **home),
    )
    again = resolve(
        suite,
        request(phones=(mother_phone,), first="Мария", last="Сидорова", born=born, **home),
    )
    assert again.customer_id == daughter.customer_id != mother.customer_id
    assert again.outcome == identity_pb2.RESOLUTION_OUTCOME_LINKED_FUZZY


def test_a_model_fitted_elsewhere_can_be_installed_as_json(suite) -> None:
    current = suite.identity.GetMatchModel(identity_pb2.GetMatchModelRequest(), timeout=T)
    checked = suite.identity.RefitMatchModel(
        identity_pb2.RefitMatchModelRequest(model_json=current.model_json, dry_run=True),
        timeout=T,
    )
    assert json.loads(checked.model_json)["features"] == json.loads(current.model_json)["features"]
    error = refused(
        suite.identity.RefitMatchModel,
        identity_pb2.RefitMatchModelRequest(model_json='{"prior": 7}', dry_run=True),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_batch_in_chunks_places_records_as_one_after_the_other_would(suite, monkeypatch) -> None:
    """Chunks of a batch run side by side only when nothing in one can meet the other: a
    fuzzy duplicate or an exact one in the very next chunk still finds its person."""
    monkeypatch.setattr(use_cases, "BATCH_CHUNK", 1)
    last, born, shared = surname(female=True), birth(), phone()
    strangers = [
        request(source="import-c", emails=(email(),), first=name, last=surname(), born=birth())
        for name in ("Тамара", "Инна", "Зоя")
    ]
    requests = [
        request(source="import-c", phones=(phone(),), first="Мария", last=last, born=born),
        request(source="import-c", emails=(email(),), first="Маша", last=last, born=born),
        strangers[0],
        request(source="import-c", phones=(shared,), first="Ольга", last=last, born=birth()),
        request(source="import-c", phones=(shared,), first="Ольга", last=last),
        strangers[1],
        strangers[2],
    ]
    results = suite.identity.ResolveBatch(iter(requests), timeout=T).results
    assert [r.outcome for r in results] == [
        CREATED,
        FUZZY,
        CREATED,
        CREATED,
        EXACT,
        CREATED,
        CREATED,
    ]
    assert results[1].customer_id == results[0].customer_id
    assert results[4].customer_id == results[3].customer_id
    assert len({results[i].customer_id for i in (0, 2, 3, 5, 6)}) == 5
    for req, result in zip(requests, results, strict=True):
        found = suite.identity.GetRecordCustomer(
            identity_pb2.GetRecordCustomerRequest(record_ref=req.record_ref), timeout=T
        )
        assert found.customer_id == result.customer_id


def test_a_batch_whose_records_all_share_one_phone_makes_one_customer(suite, monkeypatch) -> None:
    """No chunk can run beside another here: each waits for the one before, none is lost."""
    monkeypatch.setattr(use_cases, "BATCH_CHUNK", 2)
    shared, born = phone(), birth()
    requests = [
        request(source="import-s", phones=(shared,), first="Кира", last="Лаврова", born=born)
        for _ in range(11)
    ]
    results = suite.identity.ResolveBatch(iter(requests), timeout=T).results
    assert [r.outcome for r in results] == [CREATED] + [EXACT] * 10
    assert len({r.customer_id for r in results}) == 1
