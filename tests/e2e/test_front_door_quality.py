"""The front door standardises every record through the quality service and enforces the
deployment's rules and declared custom attributes before anything is stored."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest

from svod.common.v1 import common_pb2
from svod.ingestion.v1 import ingestion_pb2
from svod.profile.v1 import profile_pb2
from svod.quality.v1 import quality_pb2
from tests.builders import PHONE, identify, random_phone, unique
from tests.e2e.test_identify_slice import field_violations
from tests.waiting import wait_until

T = 10.0


def test_full_name_in_one_field_is_split_and_stored_standardised(suite) -> None:
    phone = random_phone()
    request = identify(
        "call-centre", phones=(phone,), channel=common_pb2.SOURCE_CHANNEL_CALL_CENTER
    )
    request.record.name.full_name = "  смирнова   АННА петровна "
    suite.ingestion.Identify(request, timeout=T)
    suite.wait_processed(request.record_ref)
    profile = suite.profile.GetProfile(
        profile_pb2.GetProfileRequest(identifier=common_pb2.Identifier(type=PHONE, value=phone)),
        timeout=T,
    )
    assert (profile.last_name.value, profile.first_name.value, profile.middle_name.value) == (
        "Смирнова",
        "Анна",
        "Петровна",
    )
    assert profile.gender == common_pb2.GENDER_FEMALE


def test_a_reject_rule_of_the_source_refuses_the_record_naming_the_field(suite) -> None:
    source = unique("kiosk").lower()
    suite.quality.CreateValidationRule(
        quality_pb2.CreateValidationRuleRequest(
            rule=quality_pb2.ValidationRule(
                rule_id=unique("kid-check"),
                field="birth_date",
                source=source,
                action="reject",
                check="birth_date_plausible",
            )
        ),
        timeout=T,
    )
    request = identify(source, phones=(random_phone(),))
    request.record.birth_date.year, request.record.birth_date.month = 2022, 5
    request.record.birth_date.day = 1
    with pytest.raises(grpc.RpcError) as refused:
        suite.ingestion.Identify(request, timeout=T)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "record.birth_date" in field_violations(refused.value)
    with pytest.raises(grpc.RpcError) as never_stored:
        suite.ingestion.GetRecordStatus(
            ingestion_pb2.GetRecordStatusRequest(record_ref=request.record_ref), timeout=T
        )
    assert never_stored.value.code() == grpc.StatusCode.NOT_FOUND


def test_declared_custom_attributes_are_typed_and_reach_the_profile(suite) -> None:
    phone = random_phone()
    request = identify("webshop", phones=(phone,))
    request.record.attributes.update({"shoe_size": "38.5", "pets": "Барсик, Рекс"})
    suite.ingestion.Identify(request, timeout=T)
    suite.wait_processed(request.record_ref)
    profile = suite.profile.GetProfile(
        profile_pb2.GetProfileRequest(identifier=common_pb2.Identifier(type=PHONE, value=phone)),
        timeout=T,
    )
    assert profile.attributes["shoe_size"] == "38.5"

    wrong = identify("webshop", phones=(random_phone(),))
    wrong.record.attributes.update({"shoe_size": "large", "horoscope": "leo"})
    with pytest.raises(grpc.RpcError) as refused:
        suite.ingestion.Identify(wrong, timeout=T)
    assert set(field_violations(refused.value)) == {
        "record.attributes[shoe_size]",
        "record.attributes[horoscope]",
    }


def test_a_bounce_makes_the_email_an_undeliverable_contact_in_quality(suite) -> None:
    from tests.builders import EMAIL, at, track

    email = f"{unique('bounce')}@example.ru"
    # Confirmed a day ago; the bounce comes after it, so the e-mail no longer counts as valid.
    request = identify(
        "webshop",
        emails=(email,),
        observed=at(
            (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        ),
    )
    suite.ingestion.Identify(request, timeout=T)
    customer = suite.wait_processed(request.record_ref).customer_id
    who = common_pb2.Identifier(type=EMAIL, value=email)
    bounced = track(
        "mailer",
        common_pb2.EVENT_TYPE_CONTACT_FAILED,
        who,
        contact_channel="email",
        channel=common_pb2.SOURCE_CHANNEL_CAMPAIGN,
        occurred=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    suite.ingestion.Track(bounced, timeout=T)
    suite.wait_processed(bounced.record_ref)

    def reasons() -> list[str]:
        return list(
            suite.quality.GetProfileScore(
                quality_pb2.GetProfileScoreRequest(customer_id=customer), timeout=T
            ).reasons
        )

    # Delivered through profile's outbox, behind whatever other announcements are queued.
    # The e-mail was its only contact: once it bounced, no valid e-mail is left.
    wait_until(
        reasons,
        45,
        what="'no valid e-mail' among the score's reasons",
        interval_s=0.1,
        until=lambda seen: any("no valid e-mail" in reason for reason in seen),
    )
