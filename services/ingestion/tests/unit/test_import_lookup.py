"""An event import's look-up (adapters/import_peers.GrpcEventImportPeers.lookup: the payloads
parsed in one call, one Finding kept per decisive customer) answers exactly what the streaming
path's ``lookup_tracks`` answers, over the same identity answers: every kind of result (decisive,
shared with candidates, blocked, unknown, refused, an identity without states), events of none,
one and several identifiers, events over 16,383 bytes, and more identifiers than one call takes."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from google.rpc import status_pb2

from svod.common.v1 import common_pb2
from svod.identity.v1 import identity_pb2
from svod.ingestion.v1 import ingestion_pb2
from svod_ingestion.adapters import downstream as downstream_module
from svod_ingestion.adapters.downstream import GrpcDownstream
from svod_ingestion.adapters.import_peers import GrpcEventImportPeers

Result = identity_pb2.BatchLookupCustomersResponse.Result
CUSTOMERS = [f"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a{n:02x}" for n in range(6)]


def _answer(value: str) -> Result:
    """Identity's answer for an identifier value, decided by the value alone."""
    kind = sum(value.encode()) % 8
    customer = CUSTOMERS[len(value) % len(CUSTOMERS)]
    if kind == 0:
        return Result(error=status_pb2.Status(code=3, message="malformed"))
    if kind == 1:
        return Result(
            state=identity_pb2.IDENTIFIER_STATE_SHARED,
            candidate_customer_ids=[CUSTOMERS[0], CUSTOMERS[1]],
        )
    if kind == 2:
        return Result(state=identity_pb2.IDENTIFIER_STATE_BLOCKED)
    if kind == 3:
        return Result(state=identity_pb2.IDENTIFIER_STATE_UNKNOWN)
    if kind == 4:
        return Result(customer_id=customer)  # an identity without identifier states
    if kind == 5:
        return Result(state=identity_pb2.IDENTIFIER_STATE_DECISIVE, customer_id=customer)
    return Result(
        state=identity_pb2.IDENTIFIER_STATE_DECISIVE,
        customer_id=customer,
        candidate_customer_ids=[customer],
    )


class FakeIdentity:
    def __init__(self) -> None:
        self.calls = 0

    async def _answer(self, request: Any) -> identity_pb2.BatchLookupCustomersResponse:
        self.calls += 1
        return identity_pb2.BatchLookupCustomersResponse(
            results=[_answer(i.value) for i in request.identifiers]
        )

    def BatchLookupCustomers(self, request: Any, timeout: float) -> Any:
        return self._answer(request)


def _payloads(rng: random.Random, count: int) -> list[bytes]:
    out = []
    for n in range(count):
        request = ingestion_pb2.TrackRequest(
            record_ref=common_pb2.RecordRef(source="shop", message_id=f"o-{n}")
        )
        request.event.type = common_pb2.EVENT_TYPE_ORDER_PLACED
        for k in range(rng.choice([0, 1, 1, 1, 2, 3])):
            request.event.identifiers.add(
                type=common_pb2.IDENTIFIER_TYPE_PHONE, value=f"+7{rng.randrange(40)}{k}"
            )
        if rng.random() < 0.01:
            request.event.order_id = "x" * 20_000
        out.append(request.SerializeToString(deterministic=True))
    return out


def test_the_import_look_up_answers_as_the_streaming_path_s(monkeypatch: Any) -> None:
    monkeypatch.setattr(downstream_module, "LOOKUPS_PER_CALL", 97)
    import svod_ingestion.adapters.import_peers as import_peers

    monkeypatch.setattr(import_peers, "LOOKUPS_PER_CALL", 97)

    async def run() -> None:
        downstream = GrpcDownstream.__new__(GrpcDownstream)
        downstream.identity = FakeIdentity()  # type: ignore[assignment]
        downstream.timeout_s = 5.0
        peers = GrpcEventImportPeers.__new__(GrpcEventImportPeers)
        peers.downstream = downstream
        rng = random.Random(22)
        for count in (0, 1, 7, 400):
            payloads = _payloads(rng, count)
            assert await peers.lookup(payloads) == await downstream.lookup_tracks(payloads)

    asyncio.run(run())
