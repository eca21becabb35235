"""Reads profiles from the profile service (GetProfile, StreamProfiles) as domain snapshots."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import grpc

from svod.common.v1 import common_pb2
from svod.profile.v1 import profile_pb2, profile_pb2_grpc
from svod_quality.domain import Address, ObservedIdentifier, ProfileSnapshot
from svod_runtime.clients import peer_error
from svod_runtime.errors import (
    SvodError,
)
from svod_runtime.protoconv import enum_short_name, proto_date_parts, timestamp_to_datetime

_ID_TYPE = common_pb2.IdentifierType.DESCRIPTOR
_GENDER = common_pb2.Gender.DESCRIPTOR


def _birth_date(profile: profile_pb2.Profile) -> dt.date | None:
    parts = proto_date_parts(profile.birth_date)
    if parts is None:
        return None
    try:
        return dt.date(*parts)
    except ValueError:
        return None


def snapshot_from_proto(profile: profile_pb2.Profile) -> ProfileSnapshot:
    gender = enum_short_name(_GENDER, profile.gender, "GENDER_")
    return ProfileSnapshot(
        customer_id=profile.customer_id,
        identifiers=tuple(
            ObservedIdentifier(
                enum_short_name(_ID_TYPE, i.identifier.type, "IDENTIFIER_TYPE_"),
                i.identifier.value,
                i.identifier.namespace,
                timestamp_to_datetime(i.provenance.observed_time),
            )
            for i in profile.identifiers
        ),
        first_name=profile.first_name.value,
        last_name=profile.last_name.value,
        middle_name=profile.middle_name.value,
        birth_date=_birth_date(profile),
        gender=gender if gender in ("female", "male") else "unknown",
        addresses=tuple(
            Address(a.country_code, a.postal_code, a.region, a.city, a.address_line)
            for a in profile.addresses
        ),
        sources=tuple(dict.fromkeys(s.source for s in profile.sources)),
        attributes=dict(profile.attributes),
    )


def _error(error: grpc.aio.AioRpcError, method: str) -> SvodError:
    return peer_error(
        error,
        f"profile service {method}",
        not_found="no such profile",
        invalid_field="customer_id",
        unimplemented=f"the profile service does not offer {method} yet",
    )


class ProfileClient:
    def __init__(self, channel: grpc.aio.Channel, timeout_s: float, stream_timeout_s: float):
        self.stub = profile_pb2_grpc.ProfileServiceStub(channel)
        self.timeout_s = timeout_s
        # Reading the whole base takes longer than one peer call.
        self.stream_timeout_s = stream_timeout_s

    async def get(self, customer_id: str) -> ProfileSnapshot:
        try:
            profile = await self.stub.GetProfile(
                profile_pb2.GetProfileRequest(customer_id=customer_id), timeout=self.timeout_s
            )
        except grpc.aio.AioRpcError as error:
            raise _error(error, "GetProfile") from None
        return snapshot_from_proto(profile)

    async def stream(self) -> AsyncIterator[ProfileSnapshot]:
        """Every profile; raises when the stream breaks, so a partial read is never taken as
        the whole base."""
        call = self.stub.StreamProfiles(
            profile_pb2.StreamProfilesRequest(), timeout=self.stream_timeout_s
        )
        try:
            async for profile in call:
                yield snapshot_from_proto(profile)
        except grpc.aio.AioRpcError as error:
            raise _error(error, "StreamProfiles") from None
        finally:
            call.cancel()
