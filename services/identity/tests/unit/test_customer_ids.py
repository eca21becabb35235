"""New customers' ids: UUIDs that sort by creation time."""

from __future__ import annotations

import uuid

from svod_identity.domain.model import new_customer_id


def test_customer_ids_are_version_7_uuids_carrying_their_millisecond() -> None:
    value = uuid.UUID(new_customer_id(1_763_856_000_123))
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert value.int >> 80 == 1_763_856_000_123


def test_later_customers_sort_after_earlier_ones_and_ids_do_not_repeat() -> None:
    ids = [new_customer_id(1_763_856_000_000 + step) for step in range(1000)]
    assert ids == sorted(ids)
    same_millisecond = {new_customer_id(1_763_856_000_000) for _ in range(1000)}
    assert len(same_millisecond) == 1000
