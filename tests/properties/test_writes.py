"""Write RPCs behind the front door (admin and service-to-service) under hostile input: a valid
request with a few fields spoilt (hypothesis ``near``).

Properties: every answer is OK or a precise refusal, and a refused request changes nothing - the
state it would have written reads the same before and after (through the public API).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from hypothesis import assume, given

from svod.common.v1 import common_pb2
from svod.identity.v1 import identity_pb2
from svod.profile.v1 import profile_pb2
from svod.quality.v1 import quality_pb2
from svod.segmentation.v1 import segmentation_pb2 as seg_pb
from tests.builders import PHONE, at, money
from tests.properties.harness import ALLOWED, MAX_SENT_BYTES, call, describe, methods
from tests.properties.strategies import near

pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
T = 15.0


def _read(fn: Callable[[], Any]) -> Any:
    """What a read answers, or its status code when it refuses."""
    try:
        return fn()
    except grpc.RpcError as error:
        return error.code().name


def _profile(suite, customer_id: str) -> Any:
    return _read(
        lambda: (
            suite.profile.GetProfile(
                profile_pb2.GetProfileRequest(customer_id=customer_id), timeout=T
            ).version
        )
    )


def _cases(suite, known) -> dict[str, tuple[str, Any, Callable[[Any], Any]]]:
    """method -> (service, valid template, what its refusal must leave unchanged)."""
    customer = known.customer_ids[0]
    ref = common_pb2.RecordRef(source=known.source, message_id="prop-write")
    phone = common_pb2.Identifier(type=PHONE, value=known.phones[1])
    event = common_pb2.Event(
        type=common_pb2.EVENT_TYPE_ORDER_PLACED,
        occurred_time=at("2026-02-01T09:30:00Z"),
        identifiers=[phone],
        total=money("250.00"),
        lines=[common_pb2.LineItem(category="hats", quantity=1, unit_price=money("250.00"))],
    )
    rule = seg_pb.RuleNode(
        field=seg_pb.FieldCondition(field="metrics.order_count", operator="ge", values=["2"])
    )
    rules = suite.identity.GetRules(identity_pb2.GetRulesRequest(), timeout=T)
    return {
        "CreateSegment": (
            "segmentation",
            seg_pb.CreateSegmentRequest(
                segment=seg_pb.Segment(segment_id="prop-new", display_name="P", rule=rule)
            ),
            lambda r: _read(
                lambda: (
                    suite.segmentation.GetSegment(
                        seg_pb.GetSegmentRequest(segment_id=r.segment.segment_id), timeout=T
                    ).version
                )
            ),
        ),
        "UpdateSegment": (
            "segmentation",
            seg_pb.UpdateSegmentRequest(
                segment=seg_pb.Segment(segment_id=known.segment_id, rule=rule)
            ),
            lambda r: _read(
                lambda: (
                    suite.segmentation.GetSegment(
                        seg_pb.GetSegmentRequest(segment_id=known.segment_id), timeout=T
                    ).version
                )
            ),
        ),
        "CreateValidationRule": (
            "quality",
            quality_pb2.CreateValidationRuleRequest(
                rule=quality_pb2.ValidationRule(
                    rule_id="prop.rule",
                    field="city",
                    source=known.source,
                    action="flag",
                    check="regex",
                    parameters={"pattern": "[А-Яа-я -]+"},
                )
            ),
            lambda r: sorted(
                x.rule_id
                for x in suite.quality.ListValidationRules(
                    quality_pb2.ListValidationRulesRequest(), timeout=T
                ).rules
            ),
        ),
        "UpdateRules": (
            "identity",
            identity_pb2.UpdateRulesRequest(
                rules=rules, expected_version=rules.version, actor="prop"
            ),
            lambda r: suite.identity.GetRules(identity_pb2.GetRulesRequest(), timeout=T).version,
        ),
        "Resolve": (
            "identity",
            identity_pb2.ResolveRequest(
                record_ref=ref,
                channel=common_pb2.SOURCE_CHANNEL_WEB,
                identifiers=[phone],
                name=common_pb2.PersonName(first_name="Анна"),
            ),
            lambda r: _read(
                lambda: (
                    suite.identity.GetRecordCustomer(
                        identity_pb2.GetRecordCustomerRequest(record_ref=r.record_ref), timeout=T
                    ).customer_id
                )
            ),
        ),
        "Apply": (
            "profile",
            profile_pb2.ApplyRequest(
                customer_id=customer,
                record_ref=ref,
                channel=common_pb2.SOURCE_CHANNEL_WEB,
                identifiers=[phone],
                name=common_pb2.PersonName(first_name="Анна"),
                attributes={"tier": "gold"},
            ),
            lambda r: _profile(suite, customer),
        ),
        "ApplyEvent": (
            "profile",
            profile_pb2.ApplyEventRequest(
                customer_id=customer,
                record_ref=ref,
                channel=common_pb2.SOURCE_CHANNEL_POS,
                event=event,
            ),
            lambda r: _profile(suite, customer),
        ),
        "UpdateConsent": (
            "profile",
            profile_pb2.UpdateConsentRequest(
                customer_id=customer,
                consent=profile_pb2.Consent(
                    channel=profile_pb2.CONSENT_CHANNEL_EMAIL,
                    status=profile_pb2.CONSENT_STATUS_OPTED_IN,
                    source=known.source,
                    time=at("2026-02-01T09:30:00Z"),
                ),
            ),
            lambda r: _profile(suite, customer),
        ),
        "ReportContactFailures": (
            "quality",
            quality_pb2.ReportContactFailuresRequest(
                failures=[quality_pb2.ContactFailure(identifier=phone)]
            ),
            lambda r: None,  # nothing readable changes; the property is the answer alone
        ),
    }


@pytest.mark.parametrize(
    "method",
    [
        "CreateSegment",
        "UpdateSegment",
        "CreateValidationRule",
        "UpdateRules",
        "Resolve",
        "Apply",
        "ApplyEvent",
        "UpdateConsent",
        "ReportContactFailures",
    ],
)
def test_a_refused_write_changes_nothing(suite, known, method) -> None:
    service, template, observe = _cases(suite, known)[method]
    descriptor = {m.name: m for m in methods(service)}[method]
    channel = suite.channels[service]

    @given(request=near(template, known.pools))
    def check(request) -> None:
        assume(request.ByteSize() < MAX_SENT_BYTES)
        _unique(request)
        before = observe(request)
        answer = call(channel, descriptor, request)
        assert answer.code in ALLOWED, describe(descriptor, request, answer)
        if not answer.ok:
            after = observe(request)
            assert after == before, f"refused {method} changed {before!r} -> {after!r}"

    check()


def _unique(request) -> None:
    """Fresh ids where the template's would collide across examples."""
    suffix = secrets.token_hex(4)
    if hasattr(request, "record_ref") and request.record_ref.message_id == "prop-write":
        request.record_ref.message_id = f"prop-write-{suffix}"
    if isinstance(request, seg_pb.CreateSegmentRequest) and (
        request.segment.segment_id == "prop-new"
    ):
        request.segment.segment_id = f"prop-new-{suffix}"
    if isinstance(request, quality_pb2.CreateValidationRuleRequest) and (
        request.rule.rule_id == "prop.rule"
    ):
        request.rule.rule_id = f"prop.rule.{suffix}"
