"""Fixtures of the property-based API tests: known-good values to draw from, and clean-up of
what hostile-but-valid requests leave in the shared suite (rules, segments, the match model)."""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from hypothesis import settings

from svod.common.v1 import common_pb2
from svod.identity.v1 import identity_pb2
from svod.quality.v1 import quality_pb2
from svod.segmentation.v1 import segmentation_pb2 as seg_pb
from tests.builders import PHONE, identify, random_phone, track

T = 15.0

# `make test` runs a few dozen examples per RPC group (seconds each); more can be asked for
# when hunting bugs: SVOD_PROPERTY_EXAMPLES=2000 pytest tests/properties.
# The rest of the settings are the root conftest.py's "svod" profile.
settings.register_profile(
    "svod-api",
    parent=settings.get_profile("svod"),
    max_examples=int(os.environ.get("SVOD_PROPERTY_EXAMPLES", "25")),
)
settings.load_profile("svod-api")


@dataclass
class Known:
    """Values that exist in the suite, for requests to reach past NOT_FOUND."""

    source: str
    customer_ids: list[str]
    refs: list[common_pb2.RecordRef]
    phones: list[str]
    segment_id: str
    pools: dict[str, list[str]] = field(default_factory=dict)


@pytest.fixture(scope="module")
def known(suite) -> Iterator[Known]:
    source = f"prop-{secrets.token_hex(3)}"
    phones = [random_phone() for _ in range(3)]
    refs = []
    for index, phone in enumerate(phones):
        request = identify(
            source,
            phones=(phone,),
            emails=(f"p{index}.{secrets.token_hex(3)}@example.ru",),
            first_name="Мария",
            last_name="Смирнова",
        )
        suite.ingestion.Identify(request, timeout=T)
        refs.append(request.record_ref)
    customers = [suite.wait_processed(ref).customer_id for ref in refs]
    order = track(
        source,
        common_pb2.EVENT_TYPE_ORDER_PLACED,
        common_pb2.Identifier(type=PHONE, value=phones[0]),
        total="1500.50",
        lines=(("shoes", 2, "700", "50.25"),),
    )
    suite.ingestion.Track(order, timeout=T)
    suite.wait_processed(order.record_ref)
    refs.append(order.record_ref)
    segment_id = f"prop-{secrets.token_hex(3)}"
    suite.segmentation.CreateSegment(
        seg_pb.CreateSegmentRequest(
            segment=seg_pb.Segment(
                segment_id=segment_id,
                rule=seg_pb.RuleNode(
                    field=seg_pb.FieldCondition(
                        field="metrics.order_count", operator="ge", values=["1"]
                    )
                ),
            )
        ),
        timeout=T,
    )
    rules_before = suite.identity.GetRules(identity_pb2.GetRulesRequest(), timeout=T)
    model_before = suite.identity.GetMatchModel(identity_pb2.GetMatchModelRequest(), timeout=T)
    rules_ids = _rule_ids(suite)
    segments = _segment_ids(suite)
    ids = [*customers, str(uuid.uuid4()), ""]
    pools = {
        name: ids
        for name in (
            "customer_id",
            "customer_ids",
            "merged_customer_ids",
            "surviving_customer_id",
            "source_customer_id",
            "target_customer_id",
            "first_customer_id",
            "second_customer_id",
            "candidate_customer_id",
        )
    }
    pools.update(
        source=[source, "webshop", "pos-msk-01"],
        message_id=[r.message_id for r in refs],
        segment_id=[segment_id, "rfm"],
        segment_ids=[segment_id],
        in_segment_id=[segment_id],
        value=[*phones, "+7 916 123-45-67", "maria@example.ru"],
        field=["email", "phone", "city", "first_name", "metrics.order_count", "attributes.tier"],
        operator=["eq", "ne", "gt", "in", "between", "within_last", "is_set", "contains"],
        event_type=["order_placed", "campaign_opened"],
        aggregate=["count", "sum"],
        comparison=["ge", "lt"],
        check=["required", "max_length", "regex", "phone_valid", "email_valid"],
        action=["flag", "reject"],
        builtin=["rfm", "abc", "temperature", "behavior_type"],
        currency_code=["RUB"],
        contact_channel=["email", "sms"],
        model_json=[model_before.model_json],
        rule_id=[f"prop.{secrets.token_hex(3)}"],
        actor=["prop-test"],
        reason=["property test"],
        change_id=[str(uuid.uuid4())],
    )
    known = Known(source, customers, refs, phones, segment_id, pools)
    try:
        yield known
    finally:
        _restore(suite, rules_before, model_before, rules_ids, segments)


def _rule_ids(suite) -> set[str]:
    reply = suite.quality.ListValidationRules(quality_pb2.ListValidationRulesRequest(), timeout=T)
    return {r.rule_id for r in reply.rules}


def _segment_ids(suite) -> set[str]:
    out: set[str] = set()
    token = ""
    while True:
        page = suite.segmentation.ListSegments(
            seg_pb.ListSegmentsRequest(page_size=1000, page_token=token), timeout=T
        )
        out.update(s.segment_id for s in page.segments)
        token = page.next_page_token
        if not token:
            return out


def _restore(
    suite,
    rules: identity_pb2.Rules,
    model: identity_pb2.MatchModel,
    rule_ids: set[str],
    segments: set[str],
) -> None:
    """Puts back what the hostile-but-valid requests changed for the tests that follow."""
    current = suite.identity.GetRules(identity_pb2.GetRulesRequest(), timeout=T)
    if current.version != rules.version:
        suite.identity.UpdateRules(
            identity_pb2.UpdateRulesRequest(
                rules=rules, expected_version=current.version, actor="prop-test restore"
            ),
            timeout=T,
        )
    now = suite.identity.GetMatchModel(identity_pb2.GetMatchModelRequest(), timeout=T)
    if now.version != model.version:
        suite.identity.RefitMatchModel(
            identity_pb2.RefitMatchModelRequest(model_json=model.model_json, actor="prop-test"),
            timeout=T,
        )
    for rule_id in _rule_ids(suite) - rule_ids:
        suite.quality.DeleteValidationRule(
            quality_pb2.DeleteValidationRuleRequest(rule_id=rule_id), timeout=T
        )
    # Segments the tests created, referrers first (a referred-to segment cannot be deleted).
    left = _segment_ids(suite) - segments
    for _ in range(10):
        for segment_id in sorted(left):
            try:
                suite.segmentation.DeleteSegment(
                    seg_pb.DeleteSegmentRequest(segment_id=segment_id), timeout=T
                )
                left.discard(segment_id)
            except Exception:  # noqa: BLE001 - still referred to; try again after the others
                continue
        if not left:
            break
