"""Shared bits of the quality service's integration tests."""

from __future__ import annotations

import secrets

import grpc
from google.rpc import error_details_pb2, status_pb2

from svod.common.v1 import common_pb2

T = 10.0
PHONE = common_pb2.IDENTIFIER_TYPE_PHONE
EMAIL = common_pb2.IDENTIFIER_TYPE_EMAIL
CARD = common_pb2.IDENTIFIER_TYPE_LOYALTY_CARD


def unique_source(prefix: str = "q") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def random_mobile() -> str:
    return f"+7916{secrets.randbelow(10**7):07d}"


def field_violations(error: grpc.RpcError) -> dict[str, str]:
    """The google.rpc.BadRequest field violations carried in the status details."""
    for key, value in error.trailing_metadata() or ():  # type: ignore[attr-defined]
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                bad_request = error_details_pb2.BadRequest()
                if detail.Unpack(bad_request):
                    return {v.field: v.description for v in bad_request.field_violations}
    return {}


def record(*identifiers: tuple[int, str], **name: str) -> common_pb2.CustomerRecord:
    return common_pb2.CustomerRecord(
        identifiers=[common_pb2.Identifier(type=t, value=v) for t, v in identifiers],
        name=common_pb2.PersonName(**name),
    )
