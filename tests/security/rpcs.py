"""Every RPC of the five services, callable generically (empty request) for access checks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor

from svod.identity.v1 import identity_pb2
from svod.ingestion.v1 import ingestion_pb2
from svod.profile.v1 import profile_pb2
from svod.quality.v1 import quality_pb2
from svod.segmentation.v1 import segmentation_pb2

MODULES = {
    "ingestion": (ingestion_pb2, "IngestionService"),
    "identity": (identity_pb2, "IdentityService"),
    "profile": (profile_pb2, "ProfileService"),
    "segmentation": (segmentation_pb2, "SegmentationService"),
    "quality": (quality_pb2, "QualityService"),
}


@dataclass(frozen=True)
class Rpc:
    service: str
    path: str
    method: MethodDescriptor

    def __str__(self) -> str:
        return self.path


def all_rpcs() -> Iterator[Rpc]:
    for service, (module, name) in MODULES.items():
        descriptor = module.DESCRIPTOR.services_by_name[name]
        for method in descriptor.methods:
            yield Rpc(service, f"/{descriptor.full_name}/{method.name}", method)


def call(
    channel: grpc.Channel,
    rpc: Rpc,
    metadata: tuple[tuple[str, str], ...] = (),
    request: object | None = None,
    timeout: float = 5.0,
) -> tuple[grpc.StatusCode, list[object]]:
    """Calls the RPC (an empty request unless given); returns the code and the answers."""
    method = rpc.method
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    request = request if request is not None else request_class()
    kinds = {
        (False, False): channel.unary_unary,
        (True, False): channel.stream_unary,
        (False, True): channel.unary_stream,
        (True, True): channel.stream_stream,
    }
    make = kinds[(method.client_streaming, method.server_streaming)]
    callable_ = make(
        rpc.path,
        request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString,
    )
    argument = iter([request]) if method.client_streaming else request
    answers: list[object] = []
    try:
        if method.server_streaming:
            stream = callable_(argument, timeout=timeout, metadata=metadata)
            for answer in stream:
                answers.append(answer)
                if len(answers) >= 50:
                    stream.cancel()
                    break
        else:
            answers.append(callable_(argument, timeout=timeout, metadata=metadata))
    except grpc.RpcError as error:
        return error.code(), answers  # type: ignore[attr-defined]
    return grpc.StatusCode.OK, answers
