"""The other services that hold a person's data, asked to erase it (over gRPC)."""

from __future__ import annotations

import grpc

from svod.common.v1 import common_pb2
from svod.identity.v1 import identity_pb2, identity_pb2_grpc
from svod.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from svod.quality.v1 import quality_pb2, quality_pb2_grpc
from svod.segmentation.v1 import segmentation_pb2, segmentation_pb2_grpc
from svod_runtime.errors import NotFound, Unavailable
from svod_runtime.protoconv import enum_number


def _unavailable(service: str, error: grpc.aio.AioRpcError) -> Unavailable:
    return Unavailable(f"{service} could not erase: {error.code().name}")


class PeerEraser:
    def __init__(
        self,
        identity: grpc.aio.Channel,
        ingestion: grpc.aio.Channel,
        segmentation: grpc.aio.Channel,
        quality: grpc.aio.Channel,
        timeout_s: float,
    ) -> None:
        self.quality = quality_pb2_grpc.QualityServiceStub(quality)
        self.identity = identity_pb2_grpc.IdentityServiceStub(identity)
        self.ingestion = ingestion_pb2_grpc.IngestionServiceStub(ingestion)
        self.segmentation = segmentation_pb2_grpc.SegmentationServiceStub(segmentation)
        self.timeout_s = timeout_s

    async def erase_identity(
        self, customer_id: str, actor: str, reason: str
    ) -> tuple[list[tuple[str, str]], int]:
        try:
            reply = await self.identity.EraseCustomer(
                identity_pb2.EraseCustomerRequest(
                    customer_id=customer_id, actor=actor, reason=reason
                ),
                timeout=self.timeout_s,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                raise NotFound(f"customer {customer_id} not found") from None
            raise _unavailable("identity", error) from None
        refs = [(r.source, r.message_id) for r in reply.erased_records]
        return refs, reply.erased_identifier_count

    async def erase_payloads(self, refs: list[tuple[str, str]]) -> int:
        try:
            reply = await self.ingestion.ErasePayloads(
                ingestion_pb2.ErasePayloadsRequest(
                    record_refs=[common_pb2.RecordRef(source=s, message_id=m) for s, m in refs]
                ),
                timeout=self.timeout_s * 4,
            )
        except grpc.aio.AioRpcError as error:
            raise _unavailable("ingestion", error) from None
        return reply.erased_count

    async def erase_quality_facts(
        self, customer_id: str, identifiers: list[tuple[str, str, str]]
    ) -> int:
        try:
            reply = await self.quality.EraseCustomer(
                quality_pb2.EraseCustomerRequest(
                    customer_id=customer_id,
                    identifiers=[
                        common_pb2.Identifier(
                            type=enum_number(  # type: ignore[arg-type]
                                common_pb2.IdentifierType.DESCRIPTOR, t, "IDENTIFIER_TYPE_"
                            ),
                            value=v,
                            namespace=n,
                        )
                        for t, v, n in identifiers
                    ],
                ),
                timeout=self.timeout_s,
            )
        except grpc.aio.AioRpcError as error:
            raise _unavailable("quality", error) from None
        return reply.erased_count

    async def erase_memberships(self, customer_id: str) -> int | None:
        """None when segmentation does not hold memberships yet (its API is not live)."""
        try:
            reply = await self.segmentation.EraseCustomer(
                segmentation_pb2.EraseCustomerRequest(customer_id=customer_id),
                timeout=self.timeout_s,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.UNIMPLEMENTED:
                return None
            raise _unavailable("segmentation", error) from None
        return reply.erased_membership_count
