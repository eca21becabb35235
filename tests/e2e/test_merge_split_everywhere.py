"""A bridge merge then a split leaves every service as if the two people had never been merged.

Two people (Анна at a till, Борис online) are merged by mistake, buy and unsubscribe while
merged, and are split again. The same two people, with the same events, are also loaded as a
clean run that was never merged. Every service's view of each side is compared with its clean
twin: profile metrics and consents, segmentation memberships (behaviour windows, temperature,
RFM after a recompute, a rule on metrics), the enter/exit events of a behaviour segment, and
quality's profile score.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from svod.common.v1 import common_pb2
from svod.identity.v1 import identity_pb2
from svod.profile.v1 import profile_pb2
from svod.quality.v1 import quality_pb2
from svod.segmentation.v1 import segmentation_pb2 as seg
from tests.builders import EMAIL, PHONE, identify, random_phone, track, unique
from tests.waiting import wait_until

T = 10.0
ORDER = common_pb2.EVENT_TYPE_ORDER_PLACED


# Both runs' events happen at the same moments.
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def _ago(days: float) -> str:
    return (NOW - dt.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class People:
    """One run's two people: their records, identifiers and customer ids."""

    anna: str
    boris: str
    anna_record: common_pb2.RecordRef
    boris_record: common_pb2.RecordRef
    anna_phone: common_pb2.Identifier
    boris_phone: common_pb2.Identifier
    boris_email: common_pb2.Identifier


def _identify_both(suite, pos: str, web: str) -> People:
    anna_phone, boris_phone = random_phone(), random_phone()
    boris_email = f"{unique('boris')}@example.ru"
    anna = identify(
        pos,
        channel=common_pb2.SOURCE_CHANNEL_POS,
        phones=(anna_phone,),
        first_name="Анна",
        last_name="Иванова",
    )
    boris = identify(
        web, phones=(boris_phone,), emails=(boris_email,), first_name="Борис", last_name="Петров"
    )
    ids = []
    for request in (anna, boris):
        suite.ingestion.Identify(request, timeout=T)
        ids.append(suite.wait_processed(request.record_ref).customer_id)
    assert ids[0] != ids[1]
    return People(
        ids[0],
        ids[1],
        anna.record_ref,
        boris.record_ref,
        common_pb2.Identifier(type=PHONE, value=anna_phone),
        common_pb2.Identifier(type=PHONE, value=boris_phone),
        common_pb2.Identifier(type=EMAIL, value=boris_email),
    )


def _events_before(people: People, pos: str, web: str) -> list:
    return [
        track(pos, ORDER, people.anna_phone, occurred=_ago(200), total="1000", order_id="a1"),
        track(web, ORDER, people.boris_phone, occurred=_ago(20), total="2500", order_id="b1"),
    ]


def _events_after(people: People, pos: str, web: str) -> list:
    return [
        track(pos, ORDER, people.anna_phone, occurred=_ago(5), total="3000", order_id="a2"),
        track(web, ORDER, people.boris_phone, occurred=_ago(10), total="2600", order_id="b2"),
        track(web, common_pb2.EVENT_TYPE_CART_ABANDONED, people.boris_phone, occurred=_ago(2)),
        track(
            web,
            common_pb2.EVENT_TYPE_CAMPAIGN_OPENED,
            people.boris_email,
            occurred=_ago(3),
            contact_channel="email",
        ),
        track(
            web,
            common_pb2.EVENT_TYPE_CAMPAIGN_UNSUBSCRIBED,
            people.boris_email,
            occurred=_ago(1),
            contact_channel="email",
        ),
    ]


def _send(suite, requests: list) -> None:
    for request in requests:
        suite.ingestion.Track(request, timeout=T)
    for request in requests:
        status = suite.wait_processed(request.record_ref)
        assert status.customer_id, status


def _create_segments(suite, pos: str, web: str) -> dict[str, str]:
    def create(name: str, **fields: object) -> str:
        segment_id = unique(name)
        suite.segmentation.CreateSegment(
            seg.CreateSegmentRequest(segment=seg.Segment(segment_id=segment_id, **fields)),
            timeout=T,
        )
        return segment_id

    population = create(
        "pop",
        rule=seg.RuleNode(
            field=seg.FieldCondition(field="sources", operator="contains", values=[pos, web])
        ),
    )
    in_population = seg.RuleNode(in_segment_id=population)

    def within_population(node: seg.RuleNode) -> seg.RuleNode:
        return seg.RuleNode(all=seg.RuleGroup(nodes=[in_population, node]))

    builtin = {"builtin_parameters": {"population": population}}
    return {
        "frequent": create(
            "frequent",
            rule=within_population(
                seg.RuleNode(
                    behavior=seg.BehaviorCondition(
                        event_type="order_placed",
                        aggregate="count",
                        comparison="ge",
                        threshold=2,
                        window_days=90,
                    )
                )
            ),
        ),
        "big": create(
            "big",
            rule=within_population(
                seg.RuleNode(
                    field=seg.FieldCondition(
                        field="metrics.total_spent", operator="ge", values=["5000"]
                    )
                )
            ),
        ),
        "temperature": create("temp", builtin="temperature", **builtin),
        "kinds": create("kinds", builtin="behavior_type", **builtin),
        "rfm": create("rfm", builtin="rfm", **builtin),
    }


def _profile(suite, customer: str) -> profile_pb2.Profile:
    return suite.profile.GetProfile(profile_pb2.GetProfileRequest(customer_id=customer), timeout=T)


def _view(suite, customer: str) -> dict[str, object]:
    """What every service shows of a customer, without what differs by nature (ids, record
    times, the identifiers' values)."""
    profile = _profile(suite, customer)
    segments = suite.segmentation.GetCustomerSegments(
        seg.GetCustomerSegmentsRequest(customer_id=customer), timeout=T
    )
    score = suite.quality.GetProfileScore(
        quality_pb2.GetProfileScoreRequest(customer_id=customer), timeout=T
    )
    return {
        "metrics": profile.metrics,
        "consents": sorted((c.channel, c.status, c.time.ToJsonString()) for c in profile.consents),
        "names": (profile.first_name.value, profile.last_name.value),
        "sources": sorted((s.source, s.record_count) for s in profile.sources),
        "identifier_types": sorted(i.identifier.type for i in profile.identifiers),
        "segments": sorted((m.segment_id, m.label) for m in segments.memberships),
        "quality": (score.score, sorted(score.reasons)),
    }


def _eventually_equal(
    got: Callable[[], dict[str, object]], want: Callable[[], dict[str, object]]
) -> None:
    wait_until(
        lambda: (got(), want()), 20, "the two views equal", 0.1, until=lambda p: p[0] == p[1]
    )


def _history(suite, segment_id: str, customers: set[str]) -> dict[str, list[str]]:
    """Enter/exit events of the segment for these customers, from the beginning of the feed."""
    kinds: dict[str, list[str]] = {c: [] for c in customers}
    stream = suite.segmentation.WatchMemberships(
        seg.WatchMembershipsRequest(segment_ids=[segment_id], resume_token="0.0"), timeout=2
    )
    try:
        for event in stream:
            if event.customer_id in customers:
                kinds[event.customer_id].append(seg.MembershipEvent.Kind.Name(event.kind))
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    return kinds


def test_merge_then_split_leaves_every_service_as_a_clean_run(suite) -> None:
    pos, web = unique("pos"), unique("web")
    segments = _create_segments(suite, pos, web)

    # The clean run: never merged.
    clean = _identify_both(suite, pos, web)
    _send(suite, _events_before(clean, pos, web) + _events_after(clean, pos, web))

    # The same two people, merged by mistake, buying and unsubscribing while merged.
    run = _identify_both(suite, pos, web)
    _send(suite, _events_before(run, pos, web))
    merged = suite.identity.MergeCustomers(
        identity_pb2.MergeCustomersRequest(
            customer_ids=[run.anna, run.boris], reason="same family phone", actor="operator"
        ),
        timeout=T,
    )
    assert merged.surviving_customer_id == run.anna
    _send(suite, _events_after(run, pos, web))
    both = _profile(suite, run.anna)
    assert both.metrics.order_count == 4

    def frequent_members() -> set[str]:
        page = suite.segmentation.ListMembers(
            seg.ListMembersRequest(segment_id=segments["frequent"], page_size=100), timeout=T
        )
        return {m.customer_id for m in page.members}

    wait_until(
        lambda: run.anna in frequent_members(), what="the merged customer among the frequent"
    )

    split = suite.identity.SplitCustomer(
        identity_pb2.SplitCustomerRequest(
            customer_id=run.anna,
            record_refs=[run.boris_record],
            reason="two people after all",
            actor="operator",
        ),
        timeout=T,
    )
    boris_now = split.target_customer_id
    assert split.source_customer_id == run.anna and boris_now != run.anna

    _eventually_equal(lambda: _view(suite, run.anna), lambda: _view(suite, clean.anna))
    _eventually_equal(lambda: _view(suite, boris_now), lambda: _view(suite, clean.boris))
    anna_view, boris_view = _view(suite, run.anna), _view(suite, boris_now)
    assert anna_view["metrics"].order_count == 2  # type: ignore[attr-defined]
    assert boris_view["metrics"].order_count == 2  # type: ignore[attr-defined]
    assert (segments["frequent"], "") in boris_view["segments"]  # type: ignore[operator]
    assert (segments["frequent"], "") not in anna_view["segments"]  # type: ignore[operator]
    assert boris_view["consents"] and not anna_view["consents"]  # the unsubscribe went along

    # Борис's old id answers for him again everywhere: identity, the profile's own redirects
    # (BatchGetProfiles) and segmentation's (GetCustomerSegments).
    assert list(split.redirected_customer_ids) == [run.boris]
    batch = suite.profile.BatchGetProfiles(
        profile_pb2.BatchGetProfilesRequest(customer_ids=[run.boris]), timeout=T
    )
    assert [p.customer_id for p in batch.profiles] == [boris_now]
    by_old_id = suite.segmentation.GetCustomerSegments(
        seg.GetCustomerSegmentsRequest(customer_id=run.boris), timeout=T
    )
    assert sorted((m.segment_id, m.label) for m in by_old_id.memberships) == boris_view["segments"]

    # Population-relative classes agree too once the cut-offs are computed over everyone.
    suite.segmentation.RecomputeSegments(
        seg.RecomputeSegmentsRequest(segment_ids=[segments["rfm"]]), timeout=T
    )
    assert _view(suite, run.anna) == _view(suite, clean.anna)
    assert _view(suite, boris_now) == _view(suite, clean.boris)

    # Enter/exit events: the merged customer entered "frequent" with the merge and left it with
    # the split, once each; the split-off side entered once - as Борис did in the clean run.
    history = _history(suite, segments["frequent"], {run.anna, boris_now, clean.anna, clean.boris})
    assert history[run.anna] == ["KIND_ENTERED", "KIND_EXITED"]
    assert history[boris_now] == ["KIND_ENTERED"] == history[clean.boris]
    assert history[clean.anna] == []
