"""Asks the identity service who an identifier or an old customer id belongs to now."""

from __future__ import annotations

import datetime as dt

import grpc

from svod.common.v1 import common_pb2
from svod.identity.v1 import identity_pb2, identity_pb2_grpc
from svod_runtime.clients import peer_error
from svod_runtime.protoconv import enum_short_name, enum_value

_ID_TYPE = common_pb2.IdentifierType.DESCRIPTOR


class IdentityClient:
    def __init__(self, channel: grpc.aio.Channel, timeout_s: float) -> None:
        self.stub = identity_pb2_grpc.IdentityServiceStub(channel)
        self.timeout_s = timeout_s

    async def _lookup(self, request: identity_pb2.LookupCustomerRequest) -> str:
        return (await self._customer(request)).customer_id

    async def _customer(self, request: identity_pb2.LookupCustomerRequest) -> identity_pb2.Customer:
        try:
            customer = await self.stub.LookupCustomer(request, timeout=self.timeout_s)
        except grpc.aio.AioRpcError as error:
            # A shared or blocked identifier names nobody: passed on as identity said it.
            raise peer_error(
                error,
                "identity service",
                not_found="not found",
                invalid_field="identifier",
                preconditions=True,
            ) from None
        return customer

    async def identifiers_of(
        self, customer_id: str
    ) -> list[tuple[str, str, str, str, dt.datetime]]:
        """(type, value, namespace, first source, first seen) of a customer's identifiers."""
        customer = await self._customer(identity_pb2.LookupCustomerRequest(customer_id=customer_id))
        return [
            (
                enum_short_name(_ID_TYPE, linked.identifier.type, "IDENTIFIER_TYPE_"),
                linked.identifier.value,
                linked.identifier.namespace,
                linked.source,
                linked.first_seen_time.ToDatetime(tzinfo=dt.UTC),
            )
            for linked in customer.identifiers
        ]

    async def customer_for_identifier(self, id_type: str, value: str, namespace: str) -> str:
        identifier = common_pb2.Identifier(
            type=enum_value(common_pb2.IdentifierType, id_type, "IDENTIFIER_TYPE_"),
            value=value,
            namespace=namespace,
        )
        return await self._lookup(identity_pb2.LookupCustomerRequest(identifier=identifier))

    async def current_customer_id(self, customer_id: str) -> str:
        return await self._lookup(identity_pb2.LookupCustomerRequest(customer_id=customer_id))
