"""Ingestion's customer import reads identity's results in pages, and one a message from an
identity that has no pages yet (a rolling upgrade), over a real gRPC server on loopback."""

from __future__ import annotations

import asyncio

import grpc

from svod.common.v1 import common_pb2
from svod.identity.v1 import identity_pb2, identity_pb2_grpc
from svod_ingestion.adapters.downstream import GrpcDownstream
from svod_ingestion.adapters.import_peers import GrpcImportPeers

RESULTS = [
    identity_pb2.ImportRecordResult(
        sequence=n,
        record_ref=common_pb2.RecordRef(source="pos", message_id=f"m{n}"),
        customer_id=f"c{n % 3}",
    )
    for n in range(1, 8)
]


class _OldIdentity(identity_pb2_grpc.IdentityServiceServicer):
    """Results one a message only: ListImportResultPages stays UNIMPLEMENTED."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def ListImportResults(self, request, context):
        self.calls.append("ListImportResults")
        for result in RESULTS:
            if result.sequence > request.after_sequence:
                yield result


class _NewIdentity(_OldIdentity):
    async def ListImportResultPages(self, request, context):
        self.calls.append("ListImportResultPages")
        rest = [r for r in RESULTS if r.sequence > request.after_sequence]
        for start in range(0, len(rest), 3):
            yield identity_pb2.ImportResultPage(results=rest[start : start + 3])


async def _read(identity: _OldIdentity, after: int) -> tuple[list[tuple[int, str, str]], bool]:
    server = grpc.aio.server()
    identity_pb2_grpc.add_IdentityServiceServicer_to_server(identity, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            peers = GrpcImportPeers(channel, channel, GrpcDownstream(channel, channel, 5), 5)
            read: list[tuple[int, str, str]] = []
            for _ in range(2):  # the second read goes straight to what the first one learnt
                read = [
                    (r.sequence, r.message_id, r.customer_id)
                    async for r in peers.results("imp-1", after)
                ]
            return read, peers.result_pages
    finally:
        await server.stop(None)


def _expected(after: int) -> list[tuple[int, str, str]]:
    return [(r.sequence, f"m{r.sequence}", r.customer_id) for r in RESULTS if r.sequence > after]


def test_results_are_read_in_pages_from_an_identity_that_has_them() -> None:
    identity = _NewIdentity()
    read, pages = asyncio.run(_read(identity, after=2))
    assert read == _expected(2)
    assert pages is True
    assert identity.calls == ["ListImportResultPages"] * 2


def test_an_identity_without_pages_is_read_one_result_a_message() -> None:
    identity = _OldIdentity()
    read, pages = asyncio.run(_read(identity, after=0))
    assert read == _expected(0)
    assert pages is False
    # Asked for pages once, then only one result a message.
    assert identity.calls == ["ListImportResults"] * 2
