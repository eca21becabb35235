"""The raw gRPC ceiling of a stream of messages: a grpc.aio server, in a process of its own,
that answers IngestionService.TrackStream by reading and counting the messages (parsed into
TrackRequest, nothing else). The benchmark sends it the same messages, the same way, as it
sends the real ingestion service.

    .venv/bin/python -m benchmarks.pipeline.raw_grpc PORT
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import grpc

from svod.ingestion.v1 import ingestion_pb2


async def _count(
    requests: AsyncIterator[ingestion_pb2.TrackRequest], context: grpc.aio.ServicerContext
) -> ingestion_pb2.BulkResponse:
    count = 0
    async for _ in requests:
        count += 1
    return ingestion_pb2.BulkResponse(accepted_count=count)


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
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
