"""The batch statement's blocking-key rows on real Postgres: each fetched key's stored size (up
to the cap) and the members whose rows were loaded (``StateLoader.load_state``), for blocks
over the cap, over the lone-key size and small ones."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from dataclasses import replace
from typing import Any

import psycopg

from svod_identity.adapters.storage import IdentityStore
from svod_identity.domain.candidates import LONE_KEY_MAX_BLOCK
from svod_identity.domain.engine import NAME_KEY_PREFIX, GraphState, person_from
from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.matching.blocking import MAX_BLOCK_SIZE, blocking_keys
from svod_identity.domain.matching.model import MatchModel, default_model
from svod_identity.domain.matching.scoring import score_pair
from svod_identity.domain.model import IncomingRecord, RecordRef
from svod_identity.domain.rules import default_rules
from svod_runtime.db import create_engine, libpq_url


def _store(
    conn: psycopg.Connection, attributes: dict[str, Any], keys: list[str]
) -> tuple[int, str]:
    """A stored record of a customer of its own with ``attributes``, under ``keys``; its pk
    and customer."""
    customer = str(uuid.uuid4())
    conn.execute("INSERT INTO customers (customer_id) VALUES (%s)", (customer,))
    (pk,) = conn.execute(
        "INSERT INTO records (source, message_id, customer_id, channel, observed_at, "
        "identifiers, attributes, outcome, rule, evidence) VALUES ('blocks', %s, %s, 'pos', "
        "now(), '[]', %s, 'created', 'new_customer', '{}') RETURNING record_pk",
        (uuid.uuid4().hex, customer, json.dumps(attributes)),
    ).fetchone()
    conn.execute(
        "INSERT INTO blocking_keys (key, record_pk) SELECT unnest(%s::text[]), %s", (keys, pk)
    )
    return int(pk), customer


def stored(conn: psycopg.Connection, keys: list[str]) -> int:
    """A stored record of a customer of its own, under ``keys``; its pk."""
    return _store(conn, {"first_name": "Стоян"}, keys)[0]


def stored_person(conn: psycopg.Connection, attributes: dict[str, Any]) -> tuple[int, str]:
    """A stored record of a customer of its own with ``attributes``, under its blocking keys;
    its pk and customer."""
    return _store(conn, attributes, sorted(blocking_keys(person_from("0", attributes, ()))))


def load(identity_url: str, record: IncomingRecord, model: MatchModel | None = None) -> GraphState:
    async def run() -> GraphState:
        engine = create_engine(identity_url, pool_size=1)
        try:
            async with IdentityStore(engine).transaction() as tx:
                return await tx.loader.load_state(
                    [record], default_rules(), candidates_for=[record.ref], model=model
                )
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_blocks_report_stored_sizes_and_only_the_members_worth_loading(suite_database) -> None:
    identity_url = suite_database.service_urls["identity"]
    tag = uuid.uuid4().hex[:8]
    record = IncomingRecord(
        ref=RecordRef("blocks", f"incoming-{tag}"),
        channel="pos",
        observed_at=dt.datetime.now(dt.UTC),
        identifiers=(IdentifierKey("email", f"{tag}@example.org"),),
        attributes={"first_name": "Стоян", "last_name": f"Блоков{tag}", "birth_date": "1970-01-02"},
    )
    keys = sorted(blocking_keys(person_from("0", record.attributes, record.identifiers)))
    name_keys = [k for k in keys if not k.startswith("e:")]
    huge, big, small = name_keys[:3]
    with psycopg.connect(libpq_url(identity_url), autocommit=True) as conn:
        # Over the cap: only counted (up to the cap), nothing loaded through it.
        for _ in range(MAX_BLOCK_SIZE + 5):
            stored(conn, [huge])
        # Over the lone-key size: its members are loaded only when they share a second key.
        lone_big = [stored(conn, [big]) for _ in range(LONE_KEY_MAX_BLOCK + 3)]
        both = stored(conn, [big, small])
        # A small block: every member is loaded.
        lone_small = [stored(conn, [small]) for _ in range(2)]

    state = load(identity_url, record)

    assert state.fetched_keys == set(keys)
    assert state.blocks[huge] == [] and state.unlisted[huge] == MAX_BLOCK_SIZE + 1
    assert state.comparable(huge) == []
    assert state.blocks[big] == [both] and state.unlisted[big] == len(lone_big)
    assert sorted(state.blocks[small]) == sorted([both, *lone_small])
    assert small not in state.unlisted
    for key in set(keys) - {huge, big, small}:
        assert state.blocks[key] == [] and key not in state.unlisted
    assert set(state.records) == {both, *lone_small}


def test_a_fitted_model_loads_every_holder_of_the_full_name(suite_database) -> None:
    """A namesake scoring "new" against the record (another city and birth date) is what the
    rare-name and login-year rules must see to call the record's other holder of the name the
    only one it can be: with a fitted model it is loaded with its customer, not dropped as not
    worth comparing (through the API the login-year rule missed 6 of its 24 links on
    households seed 7171 for want of it)."""
    identity_url = suite_database.service_urls["identity"]
    tag = uuid.uuid4().hex[:8]
    surname = f"Бориснов{tag}"
    record = IncomingRecord(
        ref=RecordRef("blocks", f"login-year-{tag}"),
        channel="webshop",
        observed_at=dt.datetime.now(dt.UTC),
        identifiers=(IdentifierKey("email", f"nikolay.borisnov{tag}72@mail.ru"),),
        attributes={"first_name": "Николай", "last_name": surname, "middle_name": "Ярославович"},
    )
    namesake = {
        "first_name": "Николай",
        "last_name": surname,
        "middle_name": "Елисеевич",
        "birth_date": "1961-03-04",
        "addresses": [{"city": "Уфа"}],
    }
    person = person_from("0", record.attributes, record.identifiers)
    full_names = [k for k in blocking_keys(person) if k.startswith(NAME_KEY_PREFIX)]
    assert full_names
    assert score_pair(person, person_from("1", namesake, ()), default_model()).decision == "new"
    with psycopg.connect(libpq_url(identity_url), autocommit=True) as conn:
        pk, customer = stored_person(conn, namesake)

    # The hand-set model: no rule asks who holds the name, the namesake is not worth loading.
    assert pk not in load(identity_url, record, default_model()).records

    state = load(identity_url, record, replace(default_model(), trained_pairs=1000))
    assert pk in state.records
    assert state.customers[customer].records == [pk]
    assert all(pk in state.blocks[key] and key not in state.unlisted for key in full_names)
