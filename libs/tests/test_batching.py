"""The group-commit batcher: many requests, few transactions, every caller its own answer."""

from __future__ import annotations

import asyncio

import pytest

from svod_runtime.batching import GroupCommitBatcher


def test_concurrent_items_share_batches_and_each_caller_gets_its_answer() -> None:
    batches: list[list[int]] = []

    async def apply(items: list[int]) -> list[int]:
        batches.append(items)
        await asyncio.sleep(0.01)
        return [n * 10 for n in items]

    async def scenario() -> list[int]:
        batcher: GroupCommitBatcher[int, int] = GroupCommitBatcher(apply, max_batch=4, workers=2)
        return await asyncio.gather(*(batcher.submit(n) for n in range(10)))

    assert asyncio.run(scenario()) == [n * 10 for n in range(10)]
    assert len(batches) < 10 and all(len(b) <= 4 for b in batches)
    assert sorted(n for b in batches for n in b) == list(range(10))


def test_a_lone_item_goes_at_once() -> None:
    seen: list[int] = []

    async def apply(items: list[int]) -> list[int]:
        seen.append(len(items))
        return items

    async def scenario() -> None:
        batcher: GroupCommitBatcher[int, int] = GroupCommitBatcher(apply)
        for n in range(3):
            assert await asyncio.wait_for(batcher.submit(n), 1) == n

    asyncio.run(scenario())
    assert seen == [1, 1, 1]


def test_a_failed_batch_is_retried_one_by_one_so_a_bad_item_fails_alone() -> None:
    announced: list[int] = []
    alone: list[str] = []

    async def apply(items: list[str]) -> list[str]:
        if "bad" in items:
            raise ValueError("poisoned batch")
        return [i.upper() for i in items]

    async def apply_one(item: str) -> str:
        alone.append(item)
        if item == "bad":
            raise KeyError(item)
        return item.upper()

    async def scenario() -> list[str | Exception]:
        batcher: GroupCommitBatcher[str, str] = GroupCommitBatcher(
            apply, apply_one=apply_one, on_applied=lambda: announced.append(1)
        )
        return await batcher.submit_many(["a", "bad", "c"])

    outcomes = asyncio.run(scenario())
    assert outcomes[0] == "A" and outcomes[2] == "C"
    assert isinstance(outcomes[1], KeyError)
    assert alone == ["a", "bad", "c"]
    assert announced == []  # on_applied follows batches written whole only


def test_items_sharing_a_key_keep_their_order_and_never_meet_in_flight() -> None:
    applied: list[tuple[str, int]] = []
    in_flight: list[set[str]] = []

    async def apply(items: list[tuple[str, int]]) -> list[None]:
        keys = {k for k, _ in items}
        assert len(keys) == len(items)
        assert all(not other & keys for other in in_flight)
        in_flight.append(keys)
        await asyncio.sleep(0.005)
        applied.extend(items)
        in_flight.remove(keys)
        return [None for _ in items]

    async def scenario() -> None:
        batcher: GroupCommitBatcher[tuple[str, int], None] = GroupCommitBatcher(
            apply, keys=lambda item: [item[0]], max_batch=3, workers=2
        )
        items = [(key, n) for n in range(5) for key in "aabc"]
        await asyncio.gather(*(batcher.submit(item) for item in items))

    asyncio.run(scenario())
    for key in "abc":
        versions = [n for k, n in applied if k == key]
        assert versions == sorted(versions) and len(versions) == (10 if key == "a" else 5)


def test_a_large_submission_is_written_by_every_worker_at_once() -> None:
    most_at_once = 0
    at_once = 0

    async def apply(items: list[int]) -> list[int]:
        nonlocal most_at_once, at_once
        at_once += 1
        most_at_once = max(most_at_once, at_once)
        await asyncio.sleep(0.01)
        at_once -= 1
        return items

    async def scenario() -> list[int | Exception]:
        batcher: GroupCommitBatcher[int, int] = GroupCommitBatcher(apply, max_batch=10, workers=4)
        return await batcher.submit_many(list(range(100)))

    assert asyncio.run(scenario()) == list(range(100))
    assert most_at_once == 4


@pytest.mark.parametrize("workers", [1, 3])
def test_every_item_is_answered_under_load(workers: int) -> None:
    async def apply(items: list[int]) -> list[int]:
        await asyncio.sleep(0)
        return items

    async def scenario() -> list[int]:
        batcher: GroupCommitBatcher[int, int] = GroupCommitBatcher(
            apply, keys=lambda n: [f"k{n % 13}"], max_batch=7, workers=workers
        )
        return await asyncio.wait_for(asyncio.gather(*(batcher.submit(n) for n in range(300))), 5)

    assert asyncio.run(scenario()) == list(range(300))


def test_an_item_whose_caller_gave_up_is_not_written() -> None:
    written: list[str] = []

    async def scenario() -> None:
        gate = asyncio.Event()

        async def apply(items: list[str]) -> list[str]:
            written.extend(items)
            await gate.wait()
            return items

        batcher: GroupCommitBatcher[str, str] = GroupCommitBatcher(apply, workers=1)
        first = asyncio.create_task(batcher.submit("first"))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        impatient = asyncio.create_task(batcher.submit("impatient"))
        await asyncio.sleep(0)
        impatient.cancel()
        patient = asyncio.create_task(batcher.submit("patient"))
        await asyncio.sleep(0)
        gate.set()
        assert await first == "first" and await patient == "patient"

    asyncio.run(scenario())
    assert written == ["first", "patient"]


def test_with_repeated_keys_a_batch_takes_a_keys_items_together_in_order() -> None:
    """``repeat_keys``: one key's items may share a batch (in the order they came), batches in
    flight still never share a key, and a key held by a batch in flight waits, with every item
    of that key behind it."""
    batches: list[list[tuple[str, int]]] = []
    in_flight: list[set[str]] = []

    async def apply(items: list[tuple[str, int]]) -> list[None]:
        keys = {k for k, _ in items}
        assert all(not other & keys for other in in_flight)
        in_flight.append(keys)
        batches.append(items)
        await asyncio.sleep(0.005)
        in_flight.remove(keys)
        return [None for _ in items]

    async def scenario() -> None:
        batcher: GroupCommitBatcher[tuple[str, int], None] = GroupCommitBatcher(
            apply, keys=lambda item: [item[0]], max_batch=6, workers=2, repeat_keys=True
        )
        first = [("a", 0), ("a", 1), ("b", 2), ("a", 3), ("c", 4), ("b", 5)]
        started = asyncio.ensure_future(batcher.submit_many(first))
        await asyncio.sleep(0)  # the first batch is in flight: "a" and "b" are held
        later = [("a", 6), ("d", 7), ("a", 8)]
        await asyncio.gather(started, batcher.submit_many(later))

    asyncio.run(scenario())
    assert batches[0] == [("a", 0), ("a", 1), ("b", 2), ("a", 3), ("c", 4), ("b", 5)]
    assert batches[1] == [("d", 7)]  # "a" waits for the batch holding it
    assert batches[2] == [("a", 6), ("a", 8)]
