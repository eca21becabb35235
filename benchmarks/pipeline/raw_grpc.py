"""The raw gRPC ceilings: a grpc.aio server, in a process of its own, that

* answers IngestionService.TrackStream by reading and counting the messages (parsed into
  TrackRequest, nothing else): the benchmark sends it the same messages, the same way, as it
  sends the real ingestion service;
* answers ProfileService.GetProfile with a profile holding only the asked customer id, doing
  no work: the latency of a unary call on this machine under the same load, beside which the
  real GetProfile's latency during a bulk import is read.

    .venv/bin/python -m benchmarks.pipeline.raw_grpc PORT
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import grpc

from svod.ingestion.v1 import ingestion_pb2
from svod.profile.v1 import profile_pb2


async def _count(
    requests: AsyncIterator[ingestion_pb2.TrackRequest], context: grpc.aio.ServicerContext
) -> ingestion_pb2.BulkResponse:
    count = 0
    async for _ in requests:
        count += 1
    return ingestion_pb2.BulkResponse(accepted_count=count)


async def _profile(
    request: profile_pb2.GetProfileRequest, context: grpc.aio.ServicerContext
) -> profile_pb2.Profile:
    return profile_pb2.Profile(customer_id=request.customer_id)


async def serve(port: int) -> None:
    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        "svod.ingestion.v1.IngestionService",
        {
            "TrackStream": grpc.stream_unary_rpc_method_handler(
                _count,
                request_deserializer=ingestion_pb2.TrackRequest.FromString,
                response_serializer=ingestion_pb2.BulkResponse.SerializeToString,
            )
        },
    )
    profiles = grpc.method_handlers_generic_handler(
        "svod.profile.v1.ProfileService",
        {
            "GetProfile": grpc.unary_unary_rpc_method_handler(
                _profile,
                request_deserializer=profile_pb2.GetProfileRequest.FromString,
                response_serializer=profile_pb2.Profile.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((handler, profiles))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
