"""ApplyBatch's chunks: a customer's records together, in the order given."""

from __future__ import annotations

import datetime as dt

from svod_profile.domain.model import Provenance, RecordApplication
from svod_profile.service_layer.use_cases import _by_customer_chunks

WHEN = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _app(customer: str, n: int) -> RecordApplication:
    return RecordApplication(customer, "pos", f"m-{n}", Provenance("pos", "pos", WHEN), (), ())


def test_a_customers_records_share_a_chunk_in_order() -> None:
    customers = ["a", "b", "a", "c", "b", "a", "d", "e"]
    items = [(n, _app(c, n), {}) for n, c in enumerate(customers)]
    chunks = _by_customer_chunks(items, 3)
    assert sorted(i for chunk in chunks for i, _, _ in chunk) == list(range(len(customers)))
    for customer in set(customers):
        holding = [chunk for chunk in chunks if any(a.customer_id == customer for _, a, _ in chunk)]
        assert len(holding) == 1
        order = [i for i, a, _ in holding[0] if a.customer_id == customer]
        assert order == sorted(order)
    # A customer with more records than a chunk holds still gets one chunk, not split.
    big = _by_customer_chunks([(n, _app("x", n), {}) for n in range(5)], 2)
    assert [[i for i, _, _ in chunk] for chunk in big] == [[0, 1, 2, 3, 4]]
