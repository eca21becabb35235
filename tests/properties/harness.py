"""Calling any RPC of the running suite with a drawn request, and judging its answer."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message

from svod.identity.v1 import identity_pb2
from svod.ingestion.v1 import ingestion_pb2
from svod.profile.v1 import profile_pb2
from svod.quality.v1 import quality_pb2
from svod.segmentation.v1 import segmentation_pb2

# What a hostile request may get back: OK or a precise refusal. INTERNAL and UNKNOWN are bugs;
# DEADLINE_EXCEEDED is a hang; UNAVAILABLE would be a crash or an outage nobody caused.
ALLOWED = frozenset(
    {
        grpc.StatusCode.OK,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.PERMISSION_DENIED,
    }
)
# A request larger than this is not sent: the servers receive at most 16 MiB in one message.
MAX_SENT_BYTES = 8 * 1024 * 1024
TIMEOUT_S = 30.0
# Server streams that wait for news once they have sent what there is.
ENDLESS = frozenset({"WatchMemberships"})
# RPCs that rewrite the whole graph under whatever rules the hostile requests left in force:
# drawn at random they would re-resolve every other test's customers. Their refusals are
# tested on a graph of their own (services/identity/tests/integration/test_bulk_equivalence.py).
GRAPH_REWRITES = frozenset({"ReresolveAll"})

MODULES = {
    "ingestion": ingestion_pb2,
    "identity": identity_pb2,
    "profile": profile_pb2,
    "quality": quality_pb2,
    "segmentation": segmentation_pb2,
}


def methods(service: str) -> list[MethodDescriptor]:
    (descriptor,) = MODULES[service].DESCRIPTOR.services_by_name.values()
    return [m for m in descriptor.methods if m.name not in GRAPH_REWRITES]


def request_class(method: MethodDescriptor) -> type[Message]:
    # By descriptor: a request may be defined in another file (svod.common.v1's dead letters).
    return message_factory.GetMessageClass(method.input_type)


@dataclass(frozen=True)
class Answer:
    code: grpc.StatusCode
    details: str
    reply: Any = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.code == grpc.StatusCode.OK


def call(
    channel: grpc.Channel, method: MethodDescriptor, requests: Message | Iterable[Message]
) -> Answer:
    """Calls ``method`` (any of the four kinds) and returns its status, never raising."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    cls = request_class(method)
    deserialize = message_factory.GetMessageClass(method.output_type).FromString
    serialize = cls.SerializeToString
    started = time.monotonic()
    timeout = 2.0 if method.name in ENDLESS else TIMEOUT_S
    try:
        if method.client_streaming:
            stub = channel.stream_unary(path, serialize, deserialize)
            reply = stub(iter(list(requests)), timeout=timeout)  # type: ignore[arg-type]
        elif method.server_streaming:
            stub = channel.unary_stream(path, serialize, deserialize)
            reply = list(stub(requests, timeout=timeout))
        else:
            stub = channel.unary_unary(path, serialize, deserialize)
            reply = stub(requests, timeout=timeout)
    except grpc.RpcError as error:
        code = error.code()  # type: ignore[attr-defined]
        if method.name in ENDLESS and code == grpc.StatusCode.DEADLINE_EXCEEDED:
            code = grpc.StatusCode.OK  # it kept waiting for events, as it should
        return Answer(code, error.details() or "", None, time.monotonic() - started)  # type: ignore[attr-defined]
    return Answer(grpc.StatusCode.OK, "", reply, time.monotonic() - started)


def describe(method: MethodDescriptor, request: Any, answer: Answer) -> str:
    shown = repr(request)
    if len(shown) > 1500:
        shown = shown[:1500] + "..."
    return f"{method.name} -> {answer.code.name}: {answer.details[:300]}\nrequest: {shown}"
