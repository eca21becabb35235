"""Declared custom attributes keep their type past the door: stored in canonical form and
compared by type in segments (the suite declares shoe_size number, vip bool, anniversary date,
pets list)."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from svod.common.v1 import common_pb2
from svod.profile.v1 import profile_pb2
from svod.segmentation.v1 import segmentation_pb2 as seg
from tests.builders import identify, random_phone, unique
from tests.waiting import wait_until

T = 10.0


def _violations(error: grpc.RpcError) -> dict[str, str]:
    for key, value in error.trailing_metadata() or ():  # type: ignore[attr-defined]
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                bad = error_details_pb2.BadRequest()
                if detail.Unpack(bad):
                    return {v.field: v.description for v in bad.field_violations}
    return {}


def _condition(name: str, operator: str, *values: str) -> seg.RuleNode:
    return seg.RuleNode(field=seg.FieldCondition(field=name, operator=operator, values=values))


def _segment(suite, source: str, *conditions: seg.RuleNode) -> str:
    segment_id = unique("typed")
    rule = seg.RuleNode(
        all=seg.RuleGroup(nodes=[_condition("sources", "contains", source), *conditions])
    )
    suite.segmentation.CreateSegment(
        seg.CreateSegmentRequest(segment=seg.Segment(segment_id=segment_id, rule=rule)),
        timeout=T,
    )
    return segment_id


def _members(suite, segment_id: str) -> set[str]:
    page = suite.segmentation.ListMembers(
        seg.ListMembersRequest(segment_id=segment_id, page_size=100), timeout=T
    )
    return {m.customer_id for m in page.members}


def _customer(suite, source: str, **attributes: str) -> str:
    request = identify(source, channel=common_pb2.SOURCE_CHANNEL_POS, phones=(random_phone(),))
    request.record.attributes.update(attributes)
    suite.ingestion.Identify(request, timeout=T)
    return suite.wait_processed(request.record_ref).customer_id


def test_attributes_are_stored_typed_and_segments_compare_by_type(suite) -> None:
    source = unique("shoes")
    masha = _customer(
        suite, source, shoe_size="38,5", vip="да", anniversary="01.06.2020", pets="Барсик,Рекс"
    )
    olga = _customer(suite, source, shoe_size="41", vip="no", anniversary="2023-03-08")

    profile = suite.profile.GetProfile(profile_pb2.GetProfileRequest(customer_id=masha), timeout=T)
    assert dict(profile.attributes) == {
        "shoe_size": "38.5",
        "vip": "true",
        "anniversary": "2020-06-01",
        "pets": "Барсик, Рекс",
    }

    # A value that is not of its type is refused at the door, naming the attribute.
    bad = identify(source, phones=(random_phone(),))
    bad.record.attributes.update({"shoe_size": "большой", "anniversary": "30.02.2020"})
    with pytest.raises(grpc.RpcError) as refused:
        suite.ingestion.Identify(bad, timeout=T)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(_violations(refused.value)) == {
        "record.attributes[shoe_size]",
        "record.attributes[anniversary]",
    }

    sizes = _segment(
        suite,
        source,
        _condition("attributes.shoe_size", "ge", "38"),
        _condition("attributes.shoe_size", "lt", "40"),
    )
    vips = _segment(suite, source, _condition("attributes.vip", "eq", "true"))
    not_vips = _segment(suite, source, _condition("attributes.vip", "eq", "нет"))
    early = _segment(suite, source, _condition("attributes.anniversary", "lt", "2021-01-01"))
    dogs = _segment(suite, source, _condition("attributes.pets", "contains", "Рекс"))
    wait_until(lambda: _members(suite, sizes) == {masha}, what="Маша alone in the sizes segment")
    assert _members(suite, vips) == {masha}
    assert _members(suite, not_vips) == {olga}
    assert _members(suite, early) == {masha}
    assert _members(suite, dogs) == {masha}

    # A rule value that is not of the attribute's type is refused, naming the node.
    with pytest.raises(grpc.RpcError) as refused:
        _segment(suite, source, _condition("attributes.shoe_size", "ge", "большой"))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "segment.rule.all.nodes[1].field.values[0]" in _violations(refused.value)
    with pytest.raises(grpc.RpcError) as refused:
        _segment(suite, source, _condition("attributes.vip", "gt", "true"))
    assert "segment.rule.all.nodes[1].field.operator" in _violations(refused.value)
