"""What profile's change announcements carry of a profile (ApplyProfileChangeRequest.profile)
gives segmentation's read model exactly what the whole profile gave, and no more: profiles
built up by records of several sources (names, birth dates, gender, addresses, attributes,
identifiers of several types), events and consents are read as the relay reads them
(``announced_many``, ``announced_profile_proto``) and as GetProfile reads them
(``load_many``, ``profile_proto``); segmentation's own conversion of each
(``snapshot_from_proto``) must be equal, and the announced one carries no identifier value,
provenance or name variant. Real Postgres, the profile's storage adapter and use cases.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from google.type import date_pb2

from svod.common.v1 import common_pb2
from svod.profile.v1 import profile_pb2
from svod_profile.adapters.storage import ProfileStore
from svod_profile.domain.events import EventFact
from svod_profile.entrypoints.grpc_servicer import (
    announced_profile_proto,
    application,
    profile_proto,
)
from svod_profile.service_layer.use_cases import ProfileService
from svod_runtime.db import create_engine, libpq_url
from svod_segmentation.entrypoints.convert import snapshot_from_proto

NOW = dt.datetime(2026, 12, 5, 12, tzinfo=dt.UTC)


@pytest.fixture
def profile_url(profile_urls: Callable[[], str]) -> str:
    return profile_urls()


def _record(customer: str, n: int, source: str) -> profile_pb2.ApplyRequest:
    request = profile_pb2.ApplyRequest(
        customer_id=customer,
        record_ref=common_pb2.RecordRef(source=source, message_id=f"{customer}-{n}"),
        channel=common_pb2.SOURCE_CHANNEL_POS if n % 2 else common_pb2.SOURCE_CHANNEL_WEB,
    )
    request.observed_time.FromDatetime(NOW - dt.timedelta(days=n))
    request.identifiers.add(type=common_pb2.IDENTIFIER_TYPE_PHONE, value=f"+79160000{n:03d}")
    if n % 2:
        request.identifiers.add(type=common_pb2.IDENTIFIER_TYPE_EMAIL, value=f"p{n}@example.ru")
        request.identifiers.add(
            type=common_pb2.IDENTIFIER_TYPE_EXTERNAL_ID, value=f"crm-{n}", namespace="crm"
        )
    request.name.first_name = ["Мария", "Маша", "Maria"][n % 3]
    request.name.last_name = "Смирнова"
    request.name.middle_name = "Ивановна" if n else ""
    request.birth_date.CopyFrom(date_pb2.Date(year=1985, month=3, day=10 + n % 2))
    request.gender = common_pb2.GENDER_FEMALE
    request.addresses.add(country_code="RU", region="Москва", city="Москва", postal_code="101000")
    request.attributes["tier"] = "gold" if n % 2 else "silver"
    return request


async def _compare(url: str) -> None:
    store = ProfileStore(create_engine(url))
    service = ProfileService(store, directory=Any)
    rich, plain, bare = (str(uuid.uuid4()) for _ in range(3))
    requests = [_record(rich, n, s) for n, s in enumerate(["pos-msk", "webshop", "crm", "crm"])]
    requests.append(_record(plain, 7, "webshop"))
    applied = await service.apply_many([(application(r, NOW), {}) for r in requests])
    assert all(isinstance(a, tuple) and a[1] for a in applied), applied
    await service.apply_event(
        rich,
        EventFact(
            source="pos-msk",
            message_id="order-1",
            type="order_placed",
            occurred_at=NOW,
            channel="pos",
            currency="RUB",
            amount=Decimal("1234.50"),
            items=2,
        ),
    )
    # A profile with nothing but its metrics (created by an event).
    await service.apply_event(
        bare,
        EventFact(
            source="web", message_id="s-1", type="session_started", occurred_at=NOW, channel="web"
        ),
    )
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        for channel, status in [("email", "opted_in"), ("sms", "opted_out")]:
            conn.execute(
                "INSERT INTO consents (customer_id, channel, status, source, at, legal_basis, "
                "received_at) VALUES (%s, %s, %s, 'crm', %s, 'consent', %s)",
                (rich, channel, status, NOW, NOW),
            )
    customers = [rich, plain, bare]
    async with store.reader() as tx:
        whole = await tx.load_many(customers)
        announced = await tx.announced_many(customers)
    assert set(whole) == set(announced) == set(customers)
    for customer in customers:
        full = profile_proto(whole[customer], "RUB")
        sent = announced_profile_proto(announced[customer], "RUB")
        version = whole[customer].version
        assert snapshot_from_proto(customer, version, sent) == snapshot_from_proto(
            customer, version, full
        ), customer
        # Nothing segmentation does not keep: no identifier values, provenance, variants.
        assert all(not i.identifier.value and not i.identifier.namespace for i in sent.identifiers)
        assert not any(i.HasField("provenance") for i in sent.identifiers)
        assert not sent.first_name.HasField("provenance")
        assert not sent.name_variants
    # The comparison is about something: every kind of value read model keeps is there.
    snapshot = snapshot_from_proto(
        rich, whole[rich].version, full_rich := profile_proto(whole[rich], "RUB")
    )
    assert snapshot.identifier_types == ("email", "external_id", "phone")
    assert snapshot.sources == ("crm", "pos-msk", "webshop")
    assert snapshot.consents == {"email": "opted_in", "sms": "opted_out"}
    assert snapshot.order_count == 1 and snapshot.attributes == {"tier": "silver"}
    assert snapshot.first_name and snapshot.middle_name and snapshot.birth_date and snapshot.city
    assert full_rich.identifiers[0].identifier.value  # GetProfile's has them
    await store.engine.dispose()


def test_announced_profiles_give_segmentation_what_whole_profiles_gave(profile_url) -> None:
    asyncio.run(_compare(profile_url))
