"""The other services that hold a person's data, asked to erase it (over gRPC)."""

from __future__ import annotations

import grpc

from svod.common.v1 import common_pb2
from svod.identity.v1 import identity_pb2, identity_pb2_grpc
from svod.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from svod.quality.v1 import quality_pb2, quality_pb2_grpc
from svod.segmentation.v1 import segmentation_pb2, segmentation_pb2_grpc
from svod_profile.service_layer.ports import IdentityErasure
from svod_runtime.errors import NotFound, Unavailable
from svod_runtime.protoconv import enum_number

# ErasePayloads takes at most 10,000 refs per call.
MAX_REFS_PER_CALL = 10_000


def _identifier(identifier: tuple[str, str, str]) -> common_pb2.Identifier:
    id_type, value, namespace = identifier
    return common_pb2.Identifier(
        type=enum_number(  # type: ignore[arg-type]
            common_pb2.IdentifierType.DESCRIPTOR, id_type, "IDENTIFIER_TYPE_"
        ),
        value=value,
        namespace=namespace,
    )


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

    async def erase_identity(self, customer_id: str, actor: str, reason: str) -> IdentityErasure:
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
        return IdentityErasure(
            refs=[(r.source, r.message_id) for r in reply.erased_records],
            identifier_count=reply.erased_identifier_count,
            customer_ids=list(reply.erased_customer_ids) or [customer_id],
        )

    async def erase_payloads(
        self, refs: list[tuple[str, str]], identifiers: list[tuple[str, str, str]]
    ) -> int:
        """Ingestion's stored requests: these records', and those not delivered yet that
        carry one of the identifiers (in calls of at most MAX_REFS_PER_CALL refs)."""
        if not refs and not identifiers:
            return 0
        erased = 0
        chunks = [refs[i : i + MAX_REFS_PER_CALL] for i in range(0, len(refs), MAX_REFS_PER_CALL)]
        for index, chunk in enumerate(chunks or [[]]):
            request = ingestion_pb2.ErasePayloadsRequest(
                record_refs=[common_pb2.RecordRef(source=s, message_id=m) for s, m in chunk],
                identifiers=[_identifier(i) for i in identifiers] if index == 0 else [],
            )
            try:
                reply = await self.ingestion.ErasePayloads(request, timeout=self.timeout_s * 4)
            except grpc.aio.AioRpcError as error:
                raise _unavailable("ingestion", error) from None
            erased += reply.erased_count
        return erased

    async def erase_quality_facts(
        self, customer_id: str, identifiers: list[tuple[str, str, str]]
    ) -> int:
        try:
            reply = await self.quality.EraseCustomer(
                quality_pb2.EraseCustomerRequest(
                    customer_id=customer_id,
                    identifiers=[_identifier(i) for i in identifiers],
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
