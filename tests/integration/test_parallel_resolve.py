"""Parallel resolves carrying the same new identifier never create two customers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from svod.common.v1 import common_pb2
from svod.identity.v1 import identity_pb2
from tests.builders import PHONE, random_phone, unique


def test_parallel_resolves_of_one_new_phone_make_one_customer(suite) -> None:
    phone = random_phone()

    def resolve(i: int) -> str:
        reply = suite.identity.Resolve(
            identity_pb2.ResolveRequest(
                record_ref=common_pb2.RecordRef(source=f"till-{i % 4}", message_id=unique()),
                channel=common_pb2.SOURCE_CHANNEL_POS,
                identifiers=[common_pb2.Identifier(type=PHONE, value=phone)],
            ),
            timeout=10,
        )
        return reply.customer_id

    with ThreadPoolExecutor(max_workers=16) as pool:
        customers = set(pool.map(resolve, range(32)))
    assert len(customers) == 1
    customer = suite.identity.LookupCustomer(
        identity_pb2.LookupCustomerRequest(customer_id=customers.pop()), timeout=10
    )
    assert customer.record_count == 32


def test_resolve_rejects_unknown_type_and_absurd_values(suite) -> None:
    import grpc
    import pytest

    for identifier, field in [
        (
            common_pb2.Identifier(type=common_pb2.IDENTIFIER_TYPE_UNSPECIFIED, value="x"),
            "identifiers[0].type",
        ),
        (common_pb2.Identifier(type=PHONE, value=""), "identifiers[0].value"),
        (
            common_pb2.Identifier(type=common_pb2.IDENTIFIER_TYPE_EMAIL, value="a" * 300),
            "identifiers[0].value",
        ),
        (
            common_pb2.Identifier(type=common_pb2.IDENTIFIER_TYPE_EXTERNAL_ID, value="C-1"),
            "identifiers[0].namespace",
        ),
    ]:
        with pytest.raises(grpc.RpcError) as refused:
            suite.identity.Resolve(
                identity_pb2.ResolveRequest(
                    record_ref=common_pb2.RecordRef(source="pos", message_id=unique()),
                    identifiers=[identifier],
                ),
                timeout=10,
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in refused.value.details()
