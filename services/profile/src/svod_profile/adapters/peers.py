"""The other services that hold a person's data, asked to erase it (over gRPC)."""

from __future__ import annotations

import datetime as dt

import grpc

from svod.common.v1 import common_pb2
from svod.identity.v1 import identity_pb2, identity_pb2_grpc
from svod.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from svod.quality.v1 import quality_pb2, quality_pb2_grpc
from svod.segmentation.v1 import segmentation_pb2, segmentation_pb2_grpc
from svod_profile.service_layer.ports import IdentityErasure, PeerExport
from svod_runtime.clients import peer_error
from svod_runtime.errors import NotFound
from svod_runtime.protoconv import enum_short_name, enum_value, timestamp_to_datetime

_ID_TYPE = common_pb2.IdentifierType.DESCRIPTOR


def _time(message: object, field: str) -> dt.datetime | None:
    return timestamp_to_datetime(getattr(message, field)) if message.HasField(field) else None  # type: ignore[attr-defined]


# ErasePayloads takes at most 10,000 refs per call.
MAX_REFS_PER_CALL = 10_000


def _identifier(identifier: tuple[str, str, str]) -> common_pb2.Identifier:
    id_type, value, namespace = identifier
    return common_pb2.Identifier(
        type=enum_value(common_pb2.IdentifierType, id_type, "IDENTIFIER_TYPE_"),
        value=value,
        namespace=namespace,
    )


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

    async def export(self, customer_id: str) -> PeerExport:
        """Identity's identifiers, merged ids and review items, segmentation's memberships and
        quality's score of the person (a service unreachable now: UNAVAILABLE, retry)."""
        try:
            customer = await self.identity.LookupCustomer(
                identity_pb2.LookupCustomerRequest(customer_id=customer_id),
                timeout=self.timeout_s,
            )
            reviews = await self._review_items(customer_id)
            segments = await self.segmentation.GetCustomerSegments(
                segmentation_pb2.GetCustomerSegmentsRequest(customer_id=customer_id),
                timeout=self.timeout_s,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                raise NotFound(f"customer {customer_id} not found") from None
            raise peer_error(error, "a peer could not erase") from None
        return PeerExport(
            merged_customer_ids=list(customer.merged_ids),
            identifiers=[
                (
                    enum_short_name(_ID_TYPE, i.identifier.type, "IDENTIFIER_TYPE_"),
                    i.identifier.value,
                    i.identifier.namespace,
                    i.source,
                    _time(i, "first_seen_time"),
                    _time(i, "last_seen_time"),
                )
                for i in customer.identifiers
            ],
            review_items=reviews,
            memberships=[
                (m.segment_id, m.label, _time(m, "enter_time")) for m in segments.memberships
            ],
            quality_score=await self._quality_score(customer_id),
        )

    async def _review_items(
        self, customer_id: str
    ) -> list[tuple[str, str, str, str, float, dt.datetime | None]]:
        items = []
        token = ""
        while True:
            page = await self.identity.ListReviewItems(
                identity_pb2.ListReviewItemsRequest(
                    customer_id=customer_id, page_size=1000, page_token=token
                ),
                timeout=self.timeout_s,
            )
            items += [
                (
                    r.review_item_id,
                    r.record_ref.source,
                    r.record_ref.message_id,
                    r.state,
                    r.score,
                    _time(r, "create_time"),
                )
                for r in page.items
            ]
            token = page.next_page_token
            if not token:
                return items

    async def _quality_score(
        self, customer_id: str
    ) -> tuple[int, list[str], dt.datetime | None] | None:
        try:
            score = await self.quality.GetProfileScore(
                quality_pb2.GetProfileScoreRequest(customer_id=customer_id),
                timeout=self.timeout_s,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise peer_error(error, "quality could not erase") from None
        return score.score, list(score.reasons), _time(score, "score_time")

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
            raise peer_error(error, "identity could not erase") from None
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
                raise peer_error(error, "ingestion could not erase") from None
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
            raise peer_error(error, "quality could not erase") from None
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
            raise peer_error(error, "segmentation could not erase") from None
        return reply.erased_membership_count
