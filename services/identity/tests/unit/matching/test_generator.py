"""The benchmark generator: deterministic, labelled, and as messy as promised."""

from __future__ import annotations

import re
from collections import Counter, defaultdict

import pytest

pytest.importorskip("faker", reason="the benchmark generator needs Faker (bench.txt)")

from benchmarks.identity.generator import PLACEHOLDER_PHONES, SOURCES, generate

FIELDS = {
    "person_id", "source", "message_id", "identifiers", "first_name", "last_name",
    "middle_name", "birth_date", "gender", "city", "address_line", "observed_at",
}  # fmt: skip


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return generate(400, seed=3)


def test_same_seed_same_data_other_seed_other_data(records: list[dict]) -> None:
    assert generate(400, seed=3) == records
    assert generate(400, seed=4) != records


def test_records_have_the_promised_shape(records: list[dict]) -> None:
    assert len({r["person_id"] for r in records}) == 400
    assert len({r["message_id"] for r in records}) == len(records)
    assert {r["source"] for r in records} == set(SOURCES)
    for record in records:
        assert set(record) == FIELDS
        assert record["identifiers"]
        for identifier in record["identifiers"]:
            assert identifier["type"] in {"email", "phone", "loyalty_card", "external_id"}
    times = [r["observed_at"] for r in records]
    assert times == sorted(times)


def test_the_hard_cases_are_there(records: list[dict]) -> None:
    phones = [i["value"] for r in records for i in r["identifiers"] if i["type"] == "phone"]
    assert any(p in PLACEHOLDER_PHONES for p in phones)
    assert any(p.startswith("8") for p in phones) and any(p.startswith("+7") for p in phones)
    latin = [r for r in records if r["first_name"] and re.search(r"[A-Za-z]", r["first_name"])]
    assert latin
    nicknames = {"Маша", "Саша", "Дима", "Женя", "Катя", "Настя", "Ваня", "Лена", "Таня"}
    assert any(r["first_name"] in nicknames for r in records)
    # Households: different people at one address; namesakes: one full name, several people.
    people_at = defaultdict(set)
    people_named = defaultdict(set)
    for r in records:
        if r["address_line"]:
            people_at[r["address_line"]].add(r["person_id"])
        if r["first_name"] and r["last_name"]:
            people_named[(r["first_name"], r["last_name"])].add(r["person_id"])
    assert any(len(p) > 1 for p in people_at.values())
    assert any(len(p) > 1 for p in people_named.values())
    per_person = Counter(r["person_id"] for r in records)
    assert max(per_person.values()) >= 5


def test_one_login_at_two_providers_is_there(records: list[dict]) -> None:
    """People who keep their login at another provider: the same local part on two domains
    within one person's records."""
    domains: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in records:
        for i in r["identifiers"]:
            if i["type"] == "email":
                local, _, domain = i["value"].lower().partition("@")
                domains[(r["person_id"], local)].add("yandex.ru" if domain == "ya.ru" else domain)
    assert sum(len(d) > 1 for d in domains.values()) >= 5
