"""The shown name is the person's name: Маша at the till, Мария online and Masha in the app is
Мария Смирнова, every spelling is kept as history, and a search by any of them finds her."""

from __future__ import annotations

import time

from svod.common.v1 import common_pb2
from svod.profile.v1 import profile_pb2
from tests.builders import identify, random_phone, unique

T = 10.0


def _send(suite, request) -> str:
    suite.ingestion.Identify(request, timeout=T)
    return suite.wait_processed(request.record_ref).customer_id


def _search(suite, **filters: str) -> list[str]:
    reply = suite.profile.SearchProfiles(
        profile_pb2.SearchProfilesRequest(page_size=50, **filters), timeout=T
    )
    return [p.customer_id for p in reply.profiles]


def test_masha_maria_masha_is_maria_smirnova_and_found_by_every_spelling(suite) -> None:
    phone, email = random_phone(), f"{unique('maria')}@example.ru"
    till, web, app = unique("pos"), unique("web"), unique("app")
    customer = _send(
        suite,
        identify(
            till,
            channel=common_pb2.SOURCE_CHANNEL_POS,
            phones=(phone,),
            first_name="Маша",
            last_name="Смирнова",
        ),
    )
    assert (
        _send(
            suite,
            identify(
                web, phones=(phone,), emails=(email,), first_name="Мария", last_name="Смирнова"
            ),
        )
        == customer
    )
    time.sleep(0.01)  # the app's record is the latest
    assert (
        _send(
            suite,
            identify(
                app,
                channel=common_pb2.SOURCE_CHANNEL_APP,
                emails=(email,),
                first_name="Masha",
                last_name="Smirnova",
            ),
        )
        == customer
    )

    profile = suite.profile.GetProfile(
        profile_pb2.GetProfileRequest(customer_id=customer), timeout=T
    )
    assert (profile.first_name.value, profile.last_name.value) == ("Мария", "Смирнова")
    assert profile.first_name.provenance.source == web  # where the full form was written
    history = {(v.field, v.value): v for v in profile.name_variants}
    assert set(history) == {
        ("first_name", "Маша"),
        ("first_name", "Мария"),
        ("first_name", "Masha"),
        ("last_name", "Смирнова"),
        ("last_name", "Smirnova"),
    }
    assert history[("last_name", "Смирнова")].observation_count == 2
    assert history[("first_name", "Masha")].provenance.source == app

    for filters in (
        {"first_name": "Маша"},
        {"first_name": "Masha"},
        {"first_name": "мария"},
        {"last_name": "Смирнова"},
        {"last_name": "SMIRNOVA"},
        {"first_name": "Masha", "last_name": "Смирнова"},
    ):
        assert _search(suite, source=till, **filters) == [customer], filters
    assert _search(suite, source=till, first_name="Наташа") == []


def test_an_app_record_in_latin_letters_does_not_rename_dmitry(suite) -> None:
    phone = random_phone()
    pos = unique("pos")
    customer = _send(
        suite,
        identify(
            pos,
            channel=common_pb2.SOURCE_CHANNEL_POS,
            phones=(phone,),
            first_name="Дмитрий",
            last_name="Иванов",
        ),
    )
    _send(
        suite,
        identify(
            unique("app"),
            channel=common_pb2.SOURCE_CHANNEL_APP,
            phones=(phone,),
            first_name="Dmitry",
            last_name="Ivanov",
        ),
    )
    profile = suite.profile.GetProfile(
        profile_pb2.GetProfileRequest(customer_id=customer), timeout=T
    )
    assert (profile.first_name.value, profile.last_name.value) == ("Дмитрий", "Иванов")
    assert _search(suite, source=pos, first_name="Dmitry", last_name="Ivanov") == [customer]
