"""Changes applied while no segment is defined skip the evaluation statement, yet a segment
another process defines meanwhile is evaluated against from the next change on (its own
database: the shared one has segments)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

from svod_runtime.db import create_engine
from svod_segmentation.adapters.storage import SegmentationStore
from svod_segmentation.domain.model import CustomerEvent, MetricsSnapshot, ProfileChange, Segment
from svod_segmentation.domain.rules import FieldCondition, SegmentDefinition
from svod_segmentation.service_layer.use_cases import SegmentationService


def _orders(customer_id: str, version: int) -> ProfileChange:
    at = dt.datetime.now(dt.UTC)
    metrics = MetricsSnapshot(
        customer_id=customer_id, profile_version=version, order_count=version, updated_at=at
    )
    event = CustomerEvent("shop", f"{customer_id}-{version}", "order_placed", at)
    return ProfileChange(customer_id, version, None, events=(event,), metrics=metrics)


async def _scenario(url: str) -> None:
    engines = [create_engine(url, pool_size=2), create_engine(url, pool_size=2)]
    here, replica = (SegmentationService(SegmentationStore(e)) for e in engines)
    try:
        customer = str(uuid.uuid4())
        first = await here.apply_changes([_orders(customer, 1)])
        assert first[0] == first[0].__class__(True, (), ())
        # Another process defines a segment (this one's compiled statement is of none).
        rule = FieldCondition("metrics.order_count", "ge", ("2",))
        await replica.create_segment(Segment(SegmentDefinition("repeat", rule)))
        second = await here.apply_changes([_orders(customer, 2)])
        assert second[0].entered == ("repeat",)
        async with here.store.transaction() as tx:
            members = await tx.members("repeat", "", 10)
        assert [m.customer_id for m in members] == [customer]
        # Its deletion ends every membership: no segment again, nothing to evaluate.
        await replica.delete_segment("repeat")
        third = await here.apply_changes([_orders(customer, 3)])
        assert third[0].entered == () and third[0].exited == ()
        async with here.store.transaction() as tx:
            assert await tx.customer_memberships(customer) == []
    finally:
        for engine in engines:
            await engine.dispose()


def test_a_segment_defined_elsewhere_is_evaluated_after_changes_with_none(
    own_segmentation_url: str,
) -> None:
    asyncio.run(_scenario(own_segmentation_url))
