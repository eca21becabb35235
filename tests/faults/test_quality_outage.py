"""Ingestion never bypasses a reject rule (#15 item 6): a record accepted while quality was
unreachable is checked by quality before it is delivered.

The five services run as separate processes. Quality is killed; identify calls keep being
accepted (the front door stays open) but are marked unchecked and wait in ingestion's outbox.
When quality is back, the record a reject rule refuses ends FAILED with the rule's violation
and never reaches identity or profile; the others are delivered standardised by quality.
"""

from __future__ import annotations

import time

import grpc
import pytest

from svod.common.v1 import common_pb2
from svod.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from svod.profile.v1 import profile_pb2, profile_pb2_grpc
from svod.quality.v1 import quality_pb2, quality_pb2_grpc
from tests.builders import PHONE, identify, random_phone, unique
from tests.faults.harness import kill, process_suite, restart
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

T = 10.0
Status = ingestion_pb2.RecordStatus


def test_records_accepted_while_quality_is_down_are_checked_before_delivery(
    postgres_admin_url: str,
) -> None:
    with (
        process_suite(postgres_admin_url) as suite,
        grpc.insecure_channel(suite.target("ingestion")) as ingestion_channel,
        grpc.insecure_channel(suite.target("quality")) as quality_channel,
        grpc.insecure_channel(suite.target("profile")) as profile_channel,
    ):
        ingestion = ingestion_pb2_grpc.IngestionServiceStub(ingestion_channel)
        quality = quality_pb2_grpc.QualityServiceStub(quality_channel)
        profiles = profile_pb2_grpc.ProfileServiceStub(profile_channel)
        source = unique("kiosk").lower()
        quality.CreateValidationRule(
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

        kill(suite, "quality")
        kid_phone, adult_phone = random_phone(), random_phone()
        kid = identify(source, phones=(kid_phone,))
        kid.record.birth_date.year, kid.record.birth_date.month = 2022, 5
        kid.record.birth_date.day = 1
        adult = identify(source, phones=(adult_phone,))
        adult.record.name.full_name = "  смирнова   АННА петровна "
        started = time.monotonic()
        # Accepted at once: the front door does not wait for quality.
        ingestion.Identify(kid, timeout=T)
        ingestion.Identify(adult, timeout=T)
        assert time.monotonic() - started < 5.0

        def status(request: ingestion_pb2.IdentifyRequest) -> ingestion_pb2.RecordStatus:
            return ingestion.GetRecordStatus(
                ingestion_pb2.GetRecordStatusRequest(record_ref=request.record_ref), timeout=T
            )

        # Neither goes downstream unchecked while quality is down.
        time.sleep(4.0)
        for request in (kid, adult):
            waiting = status(request)
            assert waiting.state == Status.STATE_PENDING, waiting
            assert waiting.attempts >= 1 and "quality" in waiting.last_error, waiting
        with pytest.raises(grpc.RpcError) as unknown:
            profiles.GetProfile(
                profile_pb2.GetProfileRequest(
                    identifier=common_pb2.Identifier(type=PHONE, value=kid_phone)
                ),
                timeout=T,
            )
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND

        restart(suite, "quality")
        wait_until(
            lambda: (status(kid), status(adult)),
            90,
            "both records judged",
            0.3,
            until=lambda both: all(s.state != Status.STATE_PENDING for s in both),
        )

        refused = status(kid)
        assert refused.state == Status.STATE_FAILED, refused
        assert "INVALID_ARGUMENT" in refused.last_error
        assert "record.birth_date" in refused.last_error
        with pytest.raises(grpc.RpcError) as never_delivered:
            profiles.GetProfile(
                profile_pb2.GetProfileRequest(
                    identifier=common_pb2.Identifier(type=PHONE, value=kid_phone)
                ),
                timeout=T,
            )
        assert never_delivered.value.code() == grpc.StatusCode.NOT_FOUND

        assert status(adult).state == Status.STATE_DELIVERED
        profile = profiles.GetProfile(
            profile_pb2.GetProfileRequest(
                identifier=common_pb2.Identifier(type=PHONE, value=adult_phone)
            ),
            timeout=T,
        )
        # Delivered as quality standardised it, not as sent.
        assert (profile.last_name.value, profile.first_name.value) == ("Смирнова", "Анна")
