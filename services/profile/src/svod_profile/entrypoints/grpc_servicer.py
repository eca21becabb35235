"""Thin gRPC adapter of the profile service."""

from __future__ import annotations

import datetime as dt
import json

import grpc

from svod.common.v1 import common_pb2
from svod.profile.v1 import profile_pb2, profile_pb2_grpc
from svod_profile.domain.model import (
    IdentifierObservation,
    ProfileView,
    Provenance,
    RecordApplication,
    TraitObservation,
)
from svod_profile.service_layer.use_cases import ProfileService
from svod_runtime.errors import FieldViolation, InvalidArgument
from svod_runtime.protoconv import (
    datetime_to_timestamp,
    enum_number,
    enum_short_name,
    proto_date_parts,
    timestamp_to_datetime,
)

_ID_TYPE = common_pb2.IdentifierType.DESCRIPTOR
_CHANNEL = common_pb2.SourceChannel.DESCRIPTOR
_GENDER = common_pb2.Gender.DESCRIPTOR
NAME_FIELDS = ("first_name", "last_name", "middle_name", "full_name")


def application(request: profile_pb2.ApplyRequest, now: dt.datetime) -> RecordApplication:
    provenance = Provenance(
        source=request.record_ref.source,
        channel=enum_short_name(_CHANNEL, request.channel, "SOURCE_CHANNEL_") or "unspecified",
        observed_at=timestamp_to_datetime(request.observed_time) or now,
    )
    traits: list[TraitObservation] = []
    for name in NAME_FIELDS:
        value = " ".join(getattr(request.name, name).split())
        if value:
            traits.append(TraitObservation(name, value, provenance))
    parts = proto_date_parts(request.birth_date)
    if parts is not None:
        try:
            traits.append(TraitObservation("birth_date", dt.date(*parts).isoformat(), provenance))
        except ValueError:
            raise InvalidArgument([FieldViolation("birth_date", "not a calendar date")]) from None
    gender = enum_short_name(_GENDER, request.gender, "GENDER_")
    if gender and gender != "unspecified":
        traits.append(TraitObservation("gender", gender, provenance))
    if request.addresses:
        addresses = [
            {
                "country_code": a.country_code,
                "postal_code": a.postal_code,
                "region": a.region,
                "city": a.city,
                "address_line": a.address_line,
            }
            for a in request.addresses
        ]
        traits.append(
            TraitObservation("addresses", json.dumps(addresses, ensure_ascii=False), provenance)
        )
    for key, value in sorted(request.attributes.items()):
        traits.append(TraitObservation(f"attributes.{key}", value, provenance))
    identifiers = tuple(
        IdentifierObservation(
            enum_short_name(_ID_TYPE, i.type, "IDENTIFIER_TYPE_"), i.value, i.namespace, provenance
        )
        for i in request.identifiers
    )
    return RecordApplication(
        customer_id=request.customer_id,
        source=request.record_ref.source,
        message_id=request.record_ref.message_id,
        provenance=provenance,
        traits=tuple(traits),
        identifiers=identifiers,
    )


def _provenance_proto(p: Provenance) -> common_pb2.Provenance:
    return common_pb2.Provenance(
        source=p.source,
        channel=enum_number(_CHANNEL, p.channel, "SOURCE_CHANNEL_"),  # type: ignore[arg-type]
        observed_time=datetime_to_timestamp(p.observed_at),
    )


def _trait(view: ProfileView, name: str) -> profile_pb2.TraitValue | None:
    obs = view.shown.get(name)
    if obs is None:
        return None
    return profile_pb2.TraitValue(value=obs.value, provenance=_provenance_proto(obs.provenance))


def profile_proto(view: ProfileView) -> profile_pb2.Profile:
    profile = profile_pb2.Profile(
        customer_id=view.customer_id,
        identifiers=[
            profile_pb2.ProfileIdentifier(
                identifier=common_pb2.Identifier(
                    type=enum_number(_ID_TYPE, i.type, "IDENTIFIER_TYPE_"),  # type: ignore[arg-type]
                    value=i.value,
                    namespace=i.namespace,
                ),
                provenance=_provenance_proto(i.provenance),
            )
            for i in view.identifiers
        ],
        sources=[
            profile_pb2.ProfileSource(
                source=s.source,
                channel=enum_number(_CHANNEL, s.channel, "SOURCE_CHANNEL_"),  # type: ignore[arg-type]
                first_seen_time=datetime_to_timestamp(s.first_seen),
                last_seen_time=datetime_to_timestamp(s.last_seen),
                record_count=s.record_count,
            )
            for s in view.sources
        ],
        create_time=datetime_to_timestamp(view.created_at),
        update_time=datetime_to_timestamp(view.updated_at),
        version=view.version,
    )
    for name in ("first_name", "last_name", "middle_name"):
        trait = _trait(view, name)
        if trait is not None:
            getattr(profile, name).CopyFrom(trait)
    if "birth_date" in view.shown:
        born = dt.date.fromisoformat(view.shown["birth_date"].value)
        profile.birth_date.year, profile.birth_date.month, profile.birth_date.day = (
            born.year,
            born.month,
            born.day,
        )
    if "gender" in view.shown:
        profile.gender = enum_number(_GENDER, view.shown["gender"].value, "GENDER_")  # type: ignore[assignment]
    if "addresses" in view.shown:
        for address in json.loads(view.shown["addresses"].value):
            profile.addresses.add(**address)
    for name, obs in view.shown.items():
        if name.startswith("attributes."):
            profile.attributes[name.removeprefix("attributes.")] = obs.value
    return profile


class ProfileServicer(profile_pb2_grpc.ProfileServiceServicer):
    def __init__(self, service: ProfileService) -> None:
        self.service = service

    async def Apply(
        self, request: profile_pb2.ApplyRequest, context: grpc.aio.ServicerContext
    ) -> profile_pb2.ApplyResponse:
        version, changed = await self.service.apply(application(request, dt.datetime.now(dt.UTC)))
        return profile_pb2.ApplyResponse(version=version, changed=changed)

    async def ApplyIdentityChange(
        self, request: profile_pb2.ApplyIdentityChangeRequest, context: grpc.aio.ServicerContext
    ) -> profile_pb2.ApplyIdentityChangeResponse:
        if request.WhichOneof("change") != "merge":
            raise InvalidArgument([FieldViolation("change", "only merges are supported yet")])
        await self.service.merge(
            request.change_id,
            request.merge.surviving_customer_id,
            list(request.merge.merged_customer_ids),
        )
        return profile_pb2.ApplyIdentityChangeResponse()

    async def GetProfile(
        self, request: profile_pb2.GetProfileRequest, context: grpc.aio.ServicerContext
    ) -> profile_pb2.Profile:
        key = request.WhichOneof("key")
        if key == "identifier":
            i = request.identifier
            view = await self.service.get_by_identifier(
                enum_short_name(_ID_TYPE, i.type, "IDENTIFIER_TYPE_"), i.value, i.namespace
            )
        elif key == "customer_id":
            view = await self.service.get_by_id(request.customer_id)
        else:
            raise InvalidArgument([FieldViolation("key", "give a customer_id or an identifier")])
        return profile_proto(view)
