"""Contact data of segment members, asked of the profile service when a delivery is made
(BatchGetProfiles); kept in memory for that delivery only, never stored or logged."""

from __future__ import annotations

import datetime as dt

import grpc

from svod.common.v1 import common_pb2
from svod.profile.v1 import profile_pb2, profile_pb2_grpc
from svod_runtime.clients import peer_error
from svod_runtime.protoconv import enum_short_name, timestamp_to_datetime
from svod_segmentation.domain.activation import Contact
from svod_segmentation.domain.fields import CONSENT_STATES, ConsentState

# BatchGetProfiles takes at most 1,000 ids per call.
BATCH = 1000
_CHANNEL = profile_pb2.ConsentChannel.DESCRIPTOR
_STATUS = profile_pb2.ConsentStatus.DESCRIPTOR
_EPOCH = dt.datetime.min.replace(tzinfo=dt.UTC)


def latest_consents(profile: profile_pb2.Profile) -> dict[str, str]:
    """Per channel, the latest answer; at equal times an opt-out wins."""
    best: dict[str, tuple[dt.datetime, int, str]] = {}
    for consent in profile.consents:
        channel = enum_short_name(_CHANNEL, consent.channel, "CONSENT_CHANNEL_")
        status = enum_short_name(_STATUS, consent.status, "CONSENT_STATUS_")
        if status not in CONSENT_STATES:
            continue
        key = (
            timestamp_to_datetime(consent.time) or _EPOCH,
            int(status == ConsentState.OPTED_OUT),
            status,
        )
        if channel not in best or key[:2] > best[channel][:2]:
            best[channel] = key
    return {channel: key[2] for channel, key in best.items()}


def _latest(profile: profile_pb2.Profile, kind: int) -> str:
    """The most recently observed identifier of a kind (e-mail, phone)."""
    found = [
        (timestamp_to_datetime(i.provenance.observed_time) or _EPOCH, i.identifier.value)
        for i in profile.identifiers
        if i.identifier.type == kind
    ]
    return max(found)[1] if found else ""


def contact_of(profile: profile_pb2.Profile) -> Contact:
    return Contact(
        customer_id=profile.customer_id,
        first_name=profile.first_name.value,
        last_name=profile.last_name.value,
        middle_name=profile.middle_name.value,
        email=_latest(profile, common_pb2.IDENTIFIER_TYPE_EMAIL),
        phone=_latest(profile, common_pb2.IDENTIFIER_TYPE_PHONE),
        consents=latest_consents(profile),
    )


class ProfileDirectory:
    def __init__(self, channel: grpc.aio.Channel, timeout_s: float) -> None:
        self.stub = profile_pb2_grpc.ProfileServiceStub(channel)
        self.timeout_s = timeout_s

    async def contacts(self, customer_ids: list[str]) -> dict[str, Contact]:
        """Contacts by the ids asked for (a merged-away id answers with its survivor's
        profile); ids the profile service does not know (erased) are missing."""
        out: dict[str, Contact] = {}
        for start in range(0, len(customer_ids), BATCH):
            chunk = customer_ids[start : start + BATCH]
            try:
                reply = await self.stub.BatchGetProfiles(
                    profile_pb2.BatchGetProfilesRequest(customer_ids=chunk),
                    timeout=self.timeout_s * 2,
                )
            except grpc.aio.AioRpcError as error:
                raise peer_error(error, "profile") from None
            by_id = {p.customer_id: p for p in reply.profiles}
            missing = set(reply.missing_customer_ids)
            found = [c for c in chunk if c not in missing]
            # Profiles come back in the order asked, merged-away ids answered by survivors.
            profiles = list(reply.profiles)
            for customer_id, profile in zip(found, profiles, strict=False):
                out[customer_id] = contact_of(by_id.get(customer_id, profile))
        return out
