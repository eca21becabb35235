"""Customer imports (issue 22): FoldCustomerImport's set-based fold gives exactly the profiles
ApplyBatch gives. One generated set of resolved records (several per customer from several
sources, name spellings and transliterations, conflicting birth dates, repeated identifiers,
equal times, records without traits, duplicates) goes through ApplyBatch's use case into one
database and through the fold into another (a prefix of it applied there by ApplyBatch
first); every customer's GetProfile must be identical but for its version and times.
Folding again changes nothing; erased customers' and bad records are refused alone; each
changed customer is announced once per import. Real Postgres; the use cases and the storage
adapter as the app wires them, the records converted by the servicer's own ``application``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
import uuid
from collections import Counter
from typing import Any

import psycopg
import pytest
from google.protobuf import text_format
from google.type import date_pb2
from psycopg import sql

from svod.common.v1 import common_pb2
from svod.profile.v1 import profile_pb2
from svod_profile.adapters.storage import ProfileStore
from svod_profile.domain.model import RecordApplication
from svod_profile.entrypoints.grpc_servicer import application, profile_proto
from svod_profile.service_layer.customer_import import CustomerImports
from svod_profile.service_layer.use_cases import ProfileService
from svod_runtime.custom_attributes import AttributeType
from svod_runtime.db import create_engine, libpq_url
from svod_runtime.errors import CustomerErased, InvalidArgument, SvodError

PERSONS = 60
SEED = 22
NOW = dt.datetime(2026, 12, 4, 12, tzinfo=dt.UTC)
FIRST = ["Мария", "Маша", "Maria", "Машенька", "Александр", "Саша", "Sasha", "Евгения", "Женя"]
LAST = ["Смирнова", "Smirnova", "Иванов", "Ivanov", "Петрова"]
MIDDLE = ["Ивановна", "Ivanovna", "Петрович", ""]
SOURCES = ["pos-msk", "webshop", "crm"]
CHANNELS = [
    common_pb2.SOURCE_CHANNEL_POS,
    common_pb2.SOURCE_CHANNEL_WEB,
    common_pb2.SOURCE_CHANNEL_APP,
]


def _describe(
    request: profile_pb2.ApplyRequest, rng: random.Random, birth: tuple[int, int, int]
) -> None:
    """A record's name, birth date, gender, address and attributes (some of them)."""
    request.name.first_name = rng.choice(FIRST)
    if rng.random() < 0.8:
        request.name.last_name = rng.choice(LAST)
    request.name.middle_name = rng.choice(MIDDLE)
    if rng.random() < 0.2:
        request.name.full_name = f"{request.name.first_name} {request.name.last_name}"
    if rng.random() < 0.7:
        year, month, day = birth
        if rng.random() < 0.2:  # a till's typo
            day = 1 + (day % 27)
        request.birth_date.CopyFrom(date_pb2.Date(year=year, month=month, day=day))
    request.gender = rng.choice(
        [common_pb2.GENDER_UNSPECIFIED, common_pb2.GENDER_FEMALE, common_pb2.GENDER_MALE]
    )
    if rng.random() < 0.4:
        request.addresses.add(
            country_code="RU", city=rng.choice(["Москва", "Казань"]), address_line="ул. 1"
        )
    if rng.random() < 0.4:
        request.attributes["tier"] = rng.choice(["gold", "silver"])
    if rng.random() < 0.2:
        request.attributes["shoe_size"] = str(rng.randint(35, 45))


def records(customers: list[str], seed: int) -> list[profile_pb2.ApplyRequest]:
    """1-6 records per customer, shuffled (the order an import's results come in)."""
    rng = random.Random(seed)
    out: list[profile_pb2.ApplyRequest] = []
    for p, customer in enumerate(customers):
        phone = f"+7916{p:07d}"
        email = f"person{p}@example.ru"
        birth = (1970 + p % 30, 1 + p % 12, 1 + p % 28)
        for n in range(rng.randint(1, 6)):
            source = rng.choice(SOURCES)
            request = profile_pb2.ApplyRequest(
                customer_id=customer,
                record_ref=common_pb2.RecordRef(source=source, message_id=f"{p}-{n}"),
                channel=rng.choice(CHANNELS),
            )
            # Times repeat on purpose (ties between records of a source).
            request.observed_time.FromDatetime(NOW - dt.timedelta(days=rng.randint(0, 5)))
            ids = [(common_pb2.IDENTIFIER_TYPE_PHONE, phone, "")]
            if rng.random() < 0.6:
                ids.append((common_pb2.IDENTIFIER_TYPE_EMAIL, email, ""))
            if rng.random() < 0.3:
                ids.append((common_pb2.IDENTIFIER_TYPE_EXTERNAL_ID, f"crm-{p}", "crm"))
            for kind, value, namespace in ids:
                request.identifiers.add(type=kind, value=value, namespace=namespace)
            if rng.random() >= 0.15:  # else identifiers only
                _describe(request, rng, birth)
            out.append(request)
    rng.shuffle(out)
    return out


def items(requests: list[profile_pb2.ApplyRequest]) -> list[tuple[RecordApplication, dict]]:
    return [(application(r, NOW), {}) for r in requests]


async def apply_batches(service: ProfileService, requests: list[profile_pb2.ApplyRequest]) -> None:
    """As ingestion's job delivers them: ApplyBatch calls of 500, in order."""
    for start in range(0, len(requests), 500):
        outcomes = await service.apply_many(items(requests[start : start + 500]))
        assert all(isinstance(o, tuple) for o in outcomes), outcomes


async def profiles(store: ProfileStore, customers: list[str]) -> list[str]:
    """Every customer's GetProfile, but for its version and times."""
    seen = []
    async with store.transaction() as tx:
        for customer in customers:
            view = await tx.load(customer)
            assert view is not None, customer
            proto = profile_proto(view)
            assert proto.version > 0
            proto.ClearField("version")
            proto.ClearField("create_time")
            proto.ClearField("update_time")
            seen.append(text_format.MessageToString(proto, as_utf8=True))
    return seen


def stored(url: str) -> dict[str, tuple[str, list[str], list[str]]]:
    """Each profile's shown values and name variants as stored (the JSON's text: its times
    as written; the variants in any order, as the profile reads them) and its name keys."""
    with psycopg.connect(libpq_url(url)) as conn:
        rows = conn.execute(
            "SELECT customer_id, shown::text, "
            "ARRAY(SELECT e::text FROM jsonb_array_elements(name_variants) AS e ORDER BY 1), "
            "name_keys FROM profiles"
        ).fetchall()
    return {str(c): (shown, variants, sorted(keys)) for c, shown, variants, keys in rows}


def announcements(url: str) -> Counter[str]:
    with psycopg.connect(libpq_url(url)) as conn:
        rows = conn.execute("SELECT key FROM outbox WHERE topic = 'profile.changed'").fetchall()
    return Counter(str(r[0]) for r in rows)


def wired(url: str) -> tuple[ProfileStore, ProfileService, CustomerImports]:
    store = ProfileStore(create_engine(url))
    service = ProfileService(store, directory=Any)  # type: ignore[arg-type]
    imports = CustomerImports(store, service.survivorship, service.checked, service.apply_many)
    return store, service, imports


async def _equivalence(stream_url: str, fold_url: str) -> None:
    customers = [str(uuid.uuid4()) for _ in range(PERSONS)]
    requests = records(customers, SEED)
    rng = random.Random(SEED)
    resent = rng.sample(requests, 25)

    store_s, service_s, _ = wired(stream_url)
    await apply_batches(service_s, requests + resent)

    store_f, service_f, imports = wired(fold_url)
    # A prefix of the import was applied here before by ApplyBatch (it must count once).
    early = len(requests) // 5
    await apply_batches(service_f, requests[:early])
    before = announcements(fold_url)
    answers = []
    mine = requests + resent
    for start in range(0, len(mine), 70):  # several calls: a customer's records span them
        answers += await imports.fold("imp-1", items(mine[start : start + 70]))
    assert all(isinstance(a, tuple) for a in answers), answers
    changed = [a[1] for a in answers if isinstance(a, tuple)]
    assert changed == [False] * early + [True] * (len(requests) - early) + [False] * len(resent)

    folded_profiles = await profiles(store_f, customers)
    streamed_profiles = await profiles(store_s, customers)
    assert folded_profiles == streamed_profiles
    # And what GetProfile does not show: the values as stored, with their times as written,
    # and the name keys SearchProfiles finds people by.
    assert stored(fold_url) == stored(stream_url)
    # The comparison is about something: names chosen among spellings, several sources.
    async with store_f.transaction() as tx:
        views = [await tx.load(c) for c in customers]
    assert sum(1 for v in views if v and len(v.sources) > 1) > PERSONS // 3
    assert sum(1 for v in views if v and "first_name" in v.shown) > PERSONS // 2

    # Nothing announced by the folds; Finish announces each changed customer once.
    assert announcements(fold_url) == before
    folded = {r.customer_id for r in requests[early:]}
    assert await imports.finish("imp-1") == len(folded)
    assert announcements(fold_url) - before == Counter(folded)
    assert await imports.finish("imp-1") == 0

    # The job's step done again (a crash before it recorded it): nothing changes.
    again = await imports.fold("imp-1", items(requests[:500]))
    assert all(isinstance(a, tuple) and not a[1] for a in again)
    assert await profiles(store_f, customers) == await profiles(store_s, customers)
    assert await imports.finish("imp-1") == 0
    assert announcements(fold_url) - before == Counter(folded)
    with psycopg.connect(libpq_url(fold_url)) as conn:
        assert conn.execute("SELECT count(*) FROM customer_import_changes").fetchone() == (0,)
    await store_s.engine.dispose()
    await store_f.engine.dispose()


def _in_zone(admin_url: str, url: str, zone: str) -> str:
    """``url``'s database with the server's TimeZone set to ``zone`` (its times read back in
    it, as a server configured so would)."""
    with psycopg.connect(libpq_url(url)) as conn:
        name = conn.info.dbname
    with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET timezone = {}").format(
                sql.Identifier(name), sql.Literal(zone)
            )
        )
    return url


@pytest.mark.parametrize("zone", ["UTC", "Europe/Moscow"])
def test_fold_gives_the_profiles_apply_batch_gives_and_announces_once(
    profile_urls, postgres_admin_url: str, zone: str
) -> None:
    # Outside UTC the shown values' times are written with the zone's offset, as ApplyBatch
    # reads them back; the fold gives new customers' values without reading them.
    stream_url, fold_url = (_in_zone(postgres_admin_url, profile_urls(), zone) for _ in range(2))
    asyncio.run(_equivalence(stream_url, fold_url))


async def _refusals(url: str) -> None:
    store, service, imports = wired(url)
    kept, erased, bad_attr = (str(uuid.uuid4()) for _ in range(3))
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO erased_customers (customer_id, receipt_id) VALUES (%s, %s)",
            (erased, str(uuid.uuid4())),
        )
    requests = records([kept, erased], 5)
    no_source = profile_pb2.ApplyRequest(customer_id=kept)
    no_source.record_ref.message_id = "no-source"
    bad_id = profile_pb2.ApplyRequest(
        customer_id="not-a-uuid", record_ref=common_pb2.RecordRef(source="crm", message_id="x")
    )
    typed = CustomerImports(
        store,
        service.survivorship,
        ProfileService(
            store,
            directory=Any,  # type: ignore[arg-type]
            attribute_types={"shoe_size": AttributeType.NUMBER},
        ).checked,
        service.apply_many,
    )
    bad_number = profile_pb2.ApplyRequest(
        customer_id=bad_attr, record_ref=common_pb2.RecordRef(source="crm", message_id="size")
    )
    bad_number.attributes["shoe_size"] = "large"
    mixed = [*requests, bad_id, bad_number]
    outcomes = await typed.fold("imp-2", items(mixed))
    for request, outcome in zip(mixed, outcomes, strict=True):
        if request.customer_id == erased:
            assert isinstance(outcome, CustomerErased), outcome
        elif request.customer_id == kept:
            assert isinstance(outcome, tuple) and outcome[1], outcome
        else:
            assert isinstance(outcome, InvalidArgument), outcome
    with pytest.raises(SvodError):  # no source: refused where the servicer converts it
        application(no_source, NOW)
    async with store.transaction() as tx:
        assert await tx.load(erased) is None
        assert await tx.load(bad_attr) is None
        assert await tx.load(kept) is not None
    assert await imports.finish("imp-2") == 1
    with pytest.raises(InvalidArgument):
        await imports.fold("bad id!", items(requests[:1]))
    with pytest.raises(InvalidArgument):
        await imports.fold("imp-2", [])
    await store.engine.dispose()


def test_erased_customers_and_bad_records_are_refused_alone(profile_urls) -> None:
    asyncio.run(_refusals(profile_urls()))


# A fold makes a new customer's profile whole in one INSERT, where ApplyBatch inserts it empty
# and updates it. A fold and an ApplyBatch creating the same customer's profile at the same
# moment - either inserting the row first, the other waiting on it - must give the customer
# ApplyBatch alone gives all its records; a fold of new customers updates no profile row.


def _records(customer: str, at_least: int) -> list[profile_pb2.ApplyRequest]:
    """One customer's generated records (at least ``at_least``), each with a name."""
    for seed in range(100):
        found = [r for r in records([customer], seed) if r.HasField("name")]
        if len(found) >= at_least:
            return found
    raise AssertionError("no seed gives enough records")


def _hold(url: str, request: profile_pb2.ApplyRequest) -> psycopg.Connection:
    """A connection whose open transaction holds ``request``'s claim: whoever claims the same
    record next waits until it rolls back (and then claims it)."""
    conn = psycopg.connect(libpq_url(url))
    conn.execute(
        "INSERT INTO applied_records (source, message_id, customer_id) VALUES (%s, %s, %s)",
        (request.record_ref.source, request.record_ref.message_id, request.customer_id),
    )
    return conn


async def _waiting(url: str, count: int) -> None:
    """Until ``count`` backends of the database wait for a lock."""
    deadline = time.monotonic() + 20
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).fetchone()
            if row is not None and row[0] >= count:
                return
            await asyncio.sleep(0.05)
    raise AssertionError(f"{count} waiting backends expected")


async def _race(stream_url: str, fold_url: str, fold_first: bool) -> None:
    customer = str(uuid.uuid4())
    mine = _records(customer, 3)
    streamed, folded = mine[:1], mine[1:]

    # ApplyBatch alone, in the order the two store their values (a tie between equal times
    # goes to the value stored first).
    store_s, service_s, _ = wired(stream_url)
    await apply_batches(service_s, folded + streamed if fold_first else mine)

    store_f, service_f, imports = wired(fold_url)
    # The one who goes first creates the profile, then waits at its claim for a held record;
    # the other then meets the uncommitted profile row and waits for it.
    held = _hold(fold_url, folded[0] if fold_first else streamed[0])

    async def fold() -> list:
        return await imports.fold("imp-race", items(folded))

    async def apply() -> list:
        return await service_f.apply_many(items(streamed))

    run_first, run_second = (fold, apply) if fold_first else (apply, fold)
    task_first = asyncio.create_task(run_first())
    await _waiting(fold_url, 1)
    task_second = asyncio.create_task(run_second())
    await _waiting(fold_url, 2)
    held.rollback()
    held.close()
    answers = await task_first + await task_second
    assert all(isinstance(a, tuple) and a[1] for a in answers), answers

    assert await profiles(store_f, [customer]) == await profiles(store_s, [customer])
    assert stored(fold_url) == stored(stream_url)
    async with store_f.transaction() as tx:
        view = await tx.load(customer)
    assert view is not None and len(view.sources) >= 1
    await store_s.engine.dispose()
    await store_f.engine.dispose()


@pytest.mark.parametrize("fold_first", [True, False], ids=["fold-inserts-first", "apply-first"])
def test_a_fold_and_apply_batch_creating_one_profile_give_one_correct_profile(
    profile_urls, fold_first: bool
) -> None:
    asyncio.run(_race(profile_urls(), profile_urls(), fold_first))


async def _new_customers(url: str, stream_url: str) -> list[str]:
    customers = [str(uuid.uuid4()) for _ in range(30)]
    requests = records(customers, 7)
    store, _, imports = wired(url)
    # A record twice in the call: its customer's profile is made from a record stored once.
    answers = await imports.fold("imp-new", items([*requests, requests[0]]))
    assert answers == [(1, True)] * len(requests) + [(1, False)], answers
    store_s, service_s, _ = wired(stream_url)
    await apply_batches(service_s, requests)
    assert await profiles(store, customers) == await profiles(store_s, customers)
    assert stored(url) == stored(stream_url)
    await store_s.engine.dispose()
    await store.engine.dispose()  # its backends' statistics reported as they end
    return customers


def test_a_fold_of_new_customers_updates_no_profile_row(profile_urls) -> None:
    url = profile_urls()
    customers = asyncio.run(_new_customers(url, profile_urls()))
    deadline = time.monotonic() + 20
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        while True:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            row = conn.execute(
                "SELECT n_tup_ins, n_tup_upd FROM pg_stat_user_tables WHERE relname = 'profiles'"
            ).fetchone()
            assert row is not None
            if row[0] >= len(customers) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    # Only the customer made of a record that came twice is set back and updated.
    assert row == (len(customers), 2)
