"""ApplyBatch writes a chunk's records with set-based statements (the claims, traits,
identifiers and sources in one; the changed customers' values read in one; their shown values
written in one: docs/performance.md, "Profile and segmentation CPU per message"); a single
Apply writes its record with statements of its own. Both must give the same profiles: one
generated set of records (several per customer and source, in one chunk and across chunks,
name spellings, conflicting birth dates and times, records without traits, repeats) goes
through ApplyBatch's use case into one database and one Apply at a time into another; every
customer's profile, name keys and record counts must be the same. Real Postgres; the use
cases and the storage adapter as the app wires them, the records converted by the servicer's
own ``application``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import uuid
from dataclasses import replace
from typing import Any

import psycopg
from google.protobuf import text_format
from google.type import date_pb2

from svod.common.v1 import common_pb2
from svod.profile.v1 import profile_pb2
from svod_profile.adapters.storage import ProfileStore
from svod_profile.domain.model import Provenance
from svod_profile.entrypoints.grpc_servicer import application, profile_proto
from svod_profile.service_layer.use_cases import ProfileService
from svod_runtime.db import create_engine, libpq_url

NOW = dt.datetime(2026, 12, 5, 12, tzinfo=dt.UTC)
FIRST = ["Мария", "Маша", "Maria", "Александр", "Саша", "Sasha", "Женя"]
LAST = ["Смирнова", "Smirnova", "Иванов", "Ivanov"]
SOURCES = ["pos-msk", "webshop", "crm"]


def records(customers: list[str], seed: int) -> list[profile_pb2.ApplyRequest]:
    """1-5 records per customer, shuffled; a tenth of them sent twice."""
    rng = random.Random(seed)
    out: list[profile_pb2.ApplyRequest] = []
    for p, customer in enumerate(customers):
        for n in range(rng.randint(1, 5)):
            request = profile_pb2.ApplyRequest(
                customer_id=customer,
                record_ref=common_pb2.RecordRef(source=rng.choice(SOURCES), message_id=f"{p}-{n}"),
                channel=rng.choice([common_pb2.SOURCE_CHANNEL_POS, common_pb2.SOURCE_CHANNEL_WEB]),
            )
            # Times repeat on purpose (ties between a customer's records).
            request.observed_time.FromDatetime(NOW - dt.timedelta(days=rng.randint(0, 3)))
            request.identifiers.add(type=common_pb2.IDENTIFIER_TYPE_PHONE, value=f"+7916{p:07d}")
            if rng.random() < 0.5:
                request.identifiers.add(
                    type=common_pb2.IDENTIFIER_TYPE_EMAIL, value=f"p{p}@example.ru"
                )
            if rng.random() >= 0.15:  # else identifiers only
                request.name.first_name = rng.choice(FIRST)
                if rng.random() < 0.7:
                    request.name.last_name = rng.choice(LAST)
                if rng.random() < 0.6:
                    day = 1 + (p + rng.randint(0, 1)) % 28  # a till's typo now and then
                    request.birth_date.CopyFrom(date_pb2.Date(year=1980, month=5, day=day))
                request.gender = rng.choice([common_pb2.GENDER_FEMALE, common_pb2.GENDER_MALE])
                if rng.random() < 0.3:
                    request.attributes["tier"] = rng.choice(["gold", "silver"])
            out.append(request)
    rng.shuffle(out)
    return out + rng.sample(out, len(out) // 10)


async def profiles(store: ProfileStore, customers: list[str]) -> list[str]:
    """Every customer's GetProfile but for its version and times."""
    seen = []
    async with store.transaction() as tx:
        for customer in customers:
            view = await tx.load(customer)
            assert view is not None, customer
            proto = profile_proto(view)
            for name in ("version", "create_time", "update_time"):
                proto.ClearField(name)
            seen.append(text_format.MessageToString(proto, as_utf8=True))
    return seen


def stored(url: str) -> dict[str, Any]:
    """What GetProfile does not show: name keys, value rows, record counts."""
    with psycopg.connect(libpq_url(url)) as conn:
        return {
            "keys": sorted(
                (str(c), sorted(k))
                for c, k in conn.execute("SELECT customer_id, name_keys FROM profiles")
            ),
            "values": sorted(
                conn.execute(
                    "SELECT customer_id::text, field, value, source, channel, observed_at, "
                    "record_source, record_message_id FROM trait_values"
                ).fetchall()
            ),
            "records": conn.execute("SELECT count(*) FROM applied_records").fetchone(),
        }


async def _same_profiles(batch_url: str, single_url: str) -> None:
    customers = [str(uuid.uuid4()) for _ in range(40)]
    requests = records(customers, 20)
    apps = [application(r, NOW) for r in requests]
    batch_store = ProfileStore(create_engine(batch_url))
    batch = ProfileService(batch_store, directory=Any)
    answers: list[Any] = []
    for start in range(0, len(apps), 150):  # a customer's records span calls and chunks
        answers += await batch.apply_many([(a, {}) for a in apps[start : start + 150]])
    single_store = ProfileStore(create_engine(single_url))
    single = ProfileService(single_store, directory=Any)
    alone = [await single.apply(a) for a in apps]
    # The same records new, the same repeats not; one profile version per change.
    assert [a[1] for a in answers] == [a[1] for a in alone]
    assert sum(1 for a in alone if not a[1]) >= len(customers) // 10
    assert await profiles(batch_store, customers) == await profiles(single_store, customers)
    assert stored(batch_url) == stored(single_url)
    # The comparison is about something: several sources, names chosen among spellings.
    async with batch_store.transaction() as tx:
        views = [await tx.load(c) for c in customers]
    assert sum(1 for v in views if v and len(v.sources) > 1) > len(customers) // 3
    assert sum(1 for v in views if v and "first_name" in v.shown) > len(customers) // 2

    # A record one of whose values carries a provenance of its own (no servicer builds one:
    # the set-based claim stores the record's) is written as it says, beside a plain one.
    described = next(a for a in apps if a.traits)
    other = Provenance("crm", "web", NOW - dt.timedelta(days=9))
    odd = replace(
        described,
        message_id="odd",
        traits=(replace(described.traits[0], provenance=other), *described.traits[1:]),
    )
    plain = replace(described, message_id="plain")
    # (Versions differ: a chunk is one version of its customer's profile, a record each.)
    odd_answers = await batch.apply_many([(odd, {}), (plain, {})])
    assert [a[1] for a in odd_answers] == [True, True]
    assert [(await single.apply(a))[1] for a in (odd, plain)] == [True, True]
    assert await profiles(batch_store, customers) == await profiles(single_store, customers)
    assert stored(batch_url) == stored(single_url)
    await batch_store.engine.dispose()
    await single_store.engine.dispose()


def test_apply_batch_gives_the_profiles_single_applies_give(profile_urls) -> None:
    asyncio.run(_same_profiles(profile_urls(), profile_urls()))
