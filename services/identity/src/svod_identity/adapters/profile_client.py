"""Announces merges and splits to the profile service (outbox handlers of identity)."""

from __future__ import annotations

import json

import grpc

from svod.common.v1 import common_pb2
from svod.profile.v1 import profile_pb2, profile_pb2_grpc
from svod_runtime.clients import delivery_error
from svod_runtime.outbox import OutboxMessage


class ProfileAnnouncer:
    def __init__(self, channel: grpc.aio.Channel, timeout_s: float) -> None:
        self.stub = profile_pb2_grpc.ProfileServiceStub(channel)
        self.timeout_s = timeout_s

    async def _send(self, request: profile_pb2.ApplyIdentityChangeRequest) -> None:
        try:
            await self.stub.ApplyIdentityChange(request, timeout=self.timeout_s)
        except grpc.aio.AioRpcError as error:
            raise delivery_error(error) from None

    async def merged(self, message: OutboxMessage) -> None:
        change = json.loads(message.payload)
        await self._send(
            profile_pb2.ApplyIdentityChangeRequest(
                change_id=f"identity-ledger-{change['change_id']}",
                merge=profile_pb2.ApplyIdentityChangeRequest.Merge(
                    surviving_customer_id=change["survivor"],
                    merged_customer_ids=change["merged"],
                ),
            )
        )

    async def split(self, message: OutboxMessage) -> None:
        change = json.loads(message.payload)
        await self._send(
            profile_pb2.ApplyIdentityChangeRequest(
                change_id=f"identity-ledger-{change['change_id']}",
                split=profile_pb2.ApplyIdentityChangeRequest.Split(
                    source_customer_id=change["source_customer_id"],
                    target_customer_id=change["target_customer_id"],
                    moved_records=[
                        common_pb2.RecordRef(source=s, message_id=m)
                        for s, m in change["moved_records"]
                    ],
                ),
            )
        )
