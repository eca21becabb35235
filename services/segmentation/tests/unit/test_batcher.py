"""The batcher of profile changes: order per customer, disjoint batches, failures isolated."""

from __future__ import annotations

import asyncio

import pytest

from svod_segmentation.domain.model import ChangeOutcome, ProfileChange
from svod_segmentation.service_layer.use_cases import change_batcher


def change(customer: str, version: int, *merged: str) -> ProfileChange:
    return ProfileChange(customer, version, None, merged_customer_ids=merged)


def test_batches_keep_each_customers_order_and_isolate_a_bad_change() -> None:
    batches: list[list[tuple[str, int]]] = []
    applied: list[tuple[str, int]] = []
    in_flight: list[set[str]] = []

    async def apply(changes: list[ProfileChange]) -> list[ChangeOutcome]:
        ids = {c.customer_id for c in changes}
        ids |= {m for c in changes for m in c.merged_customer_ids}
        assert len(ids) == len(changes) + sum(len(c.merged_customer_ids) for c in changes)
        for other in in_flight:  # batches written at the same time share no customer
            assert not other & ids
        in_flight.append(ids)
        batches.append([(c.customer_id, c.profile_version) for c in changes])
        try:
            await asyncio.sleep(0.01)
            if any(c.customer_id == "bad" for c in changes):
                raise ValueError("poisoned")
            applied.extend((c.customer_id, c.profile_version) for c in changes)
            return [ChangeOutcome(True, (c.customer_id,)) for c in changes]
        finally:
            in_flight.remove(ids)

    async def scenario() -> list[object]:
        batcher = change_batcher(apply, max_batch=3, workers=2)
        changes = [
            change("a", 1),
            change("b", 1),
            change("a", 2),
            change("bad", 1),
            change("c", 1, "b"),  # merges b: waits behind b's change
            change("a", 3),
            change("d", 1),
            change("b", 2),  # b waits behind the merge that names it
        ]
        return await asyncio.gather(*(batcher.submit(c) for c in changes), return_exceptions=True)

    results = asyncio.run(scenario())
    assert isinstance(results[3], ValueError)
    assert all(isinstance(r, ChangeOutcome) for i, r in enumerate(results) if i != 3)
    assert [v for c, v in applied if c == "a"] == [1, 2, 3]
    order = [c for c, _ in applied]
    assert order.index("b") < order.index("c")
    assert [v for c, v in applied if c == "b"] == [1, 2]
    assert applied.index(("c", 1)) < applied.index(("b", 2))
    assert all(len(batch) <= 3 for batch in batches)
    # Concurrent changes shared a transaction; the bad one failed alone on the retry.
    assert any(len(batch) > 1 and ("bad", 1) in batch for batch in batches)


def test_a_lone_change_goes_at_once() -> None:
    seen: list[int] = []

    async def apply(changes: list[ProfileChange]) -> list[ChangeOutcome]:
        seen.append(len(changes))
        return [ChangeOutcome(True) for _ in changes]

    async def scenario() -> None:
        batcher = change_batcher(apply)
        for version in range(1, 4):
            outcome = await asyncio.wait_for(batcher.submit(change("a", version)), 1)
            assert outcome.profile_applied

    asyncio.run(scenario())
    assert seen == [1, 1, 1]


@pytest.mark.parametrize("workers", [1, 2])
def test_every_change_is_answered_under_load(workers: int) -> None:
    async def apply(changes: list[ProfileChange]) -> list[ChangeOutcome]:
        await asyncio.sleep(0)
        return [ChangeOutcome(True) for _ in changes]

    async def scenario() -> int:
        batcher = change_batcher(apply, max_batch=7, workers=workers)
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(batcher.submit(change(f"c{n % 13}", n)) for n in range(300))), 5
        )
        return len(outcomes)

    assert asyncio.run(scenario()) == 300
