"""Builders for segmentation's tests: synthetic profiles and their change announcements.

The tests call ApplyProfileChange over gRPC, as the profile service does; every test tags its
customers with an attribute of its own so that rules can pick them out of the shared database.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

import grpc
from google.rpc import error_details_pb2, status_pb2
from google.type import money_pb2

from svod.common.v1 import common_pb2
from svod.profile.v1 import profile_pb2
from svod.segmentation.v1 import segmentation_pb2 as pb
from svod_runtime.protoconv import datetime_to_timestamp

T = 10.0


def rub(amount: float | Decimal) -> money_pb2.Money:
    value = Decimal(str(amount))
    units = int(value)
    return money_pb2.Money(
        currency_code="RUB", units=units, nanos=int((value - units) * 1_000_000_000)
    )


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def days_ago(days: float) -> dt.datetime:
    return now() - dt.timedelta(days=days)


def field_violations(error: grpc.RpcError) -> dict[str, str]:
    """google.rpc.BadRequest field violations carried in the status details, by field."""
    for key, value in error.trailing_metadata() or ():  # type: ignore[attr-defined]
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                bad = error_details_pb2.BadRequest()
                if detail.Unpack(bad):
                    return {v.field: v.description for v in bad.field_violations}
    return {}


@dataclass
class Customer:
    """A synthetic customer whose profile and events the test changes step by step."""

    tag: str
    customer_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    version: int = 0
    attributes: dict[str, str] = field(default_factory=dict)
    orders: list[tuple[dt.datetime, float, float]] = field(default_factory=list)
    consents: dict[int, int] = field(default_factory=dict)
    city: str = "Москва"

    def profile(self) -> profile_pb2.Profile:
        spent = sum(amount for _, amount, _ in self.orders)
        last = max((t for t, _, _ in self.orders), default=None)
        first = min((t for t, _, _ in self.orders), default=None)
        metrics = profile_pb2.Metrics(
            order_count=len(self.orders),
            total_spent=rub(spent),
            average_order_value=rub(round(spent / len(self.orders), 2) if self.orders else 0),
        )
        if last is not None:
            metrics.last_order_time.CopyFrom(datetime_to_timestamp(last))
            metrics.first_order_time.CopyFrom(datetime_to_timestamp(first))
        profile = profile_pb2.Profile(
            customer_id=self.customer_id,
            first_name=profile_pb2.TraitValue(value="Мария"),
            last_name=profile_pb2.TraitValue(value="Смирнова"),
            gender=common_pb2.GENDER_FEMALE,
            addresses=[common_pb2.PostalAddress(country_code="RU", city=self.city)],
            metrics=metrics,
            attributes={"test_tag": self.tag, **self.attributes},
            consents=[
                profile_pb2.Consent(channel=channel, status=status)  # type: ignore[arg-type]
                for channel, status in self.consents.items()
            ],
            version=self.version,
        )
        return profile

    def change(
        self, events: list[profile_pb2.TimelineEntry] | None = None, **kwargs: object
    ) -> pb.ApplyProfileChangeRequest:
        self.version += 1
        return pb.ApplyProfileChangeRequest(
            customer_id=self.customer_id,
            profile_version=self.version,
            profile=self.profile(),
            new_events=events or [],
            **kwargs,  # type: ignore[arg-type]
        )

    def order(
        self, at: dt.datetime, amount: float, discount: float = 0.0, category: str = "shoes"
    ) -> profile_pb2.TimelineEntry:
        self.orders.append((at, amount, discount))
        return event("order_placed", at, amount=amount, discount=discount, category=category)


def event(
    event_type: str,
    at: dt.datetime,
    *,
    amount: float | None = None,
    discount: float = 0.0,
    category: str = "",
    properties: dict[str, str] | None = None,
    message_id: str | None = None,
) -> profile_pb2.TimelineEntry:
    entry = profile_pb2.TimelineEntry(
        event_type=event_type,
        occurred_time=datetime_to_timestamp(at),
        source="webshop",
        channel=common_pb2.SOURCE_CHANNEL_WEB,
        record_ref=common_pb2.RecordRef(
            source="webshop", message_id=message_id or f"ev-{secrets.token_hex(8)}"
        ),
        categories=[category] if category else [],
        properties=properties or {},
    )
    if amount is not None:
        entry.amount.CopyFrom(rub(amount))
    if discount:
        entry.discount.CopyFrom(rub(discount))
    return entry


def tagged(tag: str) -> pb.RuleNode:
    return pb.RuleNode(
        field=pb.FieldCondition(field="attributes.test_tag", operator="eq", values=[tag])
    )


def all_of(*nodes: pb.RuleNode) -> pb.RuleNode:
    return pb.RuleNode(all=pb.RuleGroup(nodes=list(nodes)))


def field_node(name: str, operator: str, *values: str) -> pb.RuleNode:
    return pb.RuleNode(field=pb.FieldCondition(field=name, operator=operator, values=values))


def behavior(
    event_type: str,
    comparison: str,
    threshold: float,
    window_days: int,
    aggregate: str = "count",
    **filters: str,
) -> pb.RuleNode:
    return pb.RuleNode(
        behavior=pb.BehaviorCondition(
            event_type=event_type,
            aggregate=aggregate,
            comparison=comparison,
            threshold=threshold,
            window_days=window_days,
            filters={k.replace("__", "."): v for k, v in filters.items()},
        )
    )


def seg_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def member_ids(stub, segment_id: str) -> set[str]:
    out: set[str] = set()
    token = ""
    while True:
        page = stub.ListMembers(
            pb.ListMembersRequest(segment_id=segment_id, page_size=2, page_token=token), timeout=T
        )
        out.update(m.customer_id for m in page.members)
        token = page.next_page_token
        if not token:
            return out


def not_(node: pb.RuleNode) -> pb.RuleNode:
    return pb.RuleNode(**{"not": node})


def create(stub, segment_id: str, rule: pb.RuleNode | None = None, **kwargs: object) -> pb.Segment:
    segment = pb.Segment(segment_id=segment_id, **kwargs)  # type: ignore[arg-type]
    if rule is not None:
        segment.rule.CopyFrom(rule)
    return stub.CreateSegment(pb.CreateSegmentRequest(segment=segment), timeout=T)
