"""The record -> customer mapping as CSV, for ``svod`` (and anyone auditing where records went).

from svod_identity.entrypoints.cli_export import write_csv
write_csv("127.0.0.1:50052", sys.stdout)
"""

from __future__ import annotations

import csv
from typing import TextIO

import grpc

from svod.identity.v1 import identity_pb2, identity_pb2_grpc

HEADER = ("source", "message_id", "customer_id", "resolve_time", "rule")


def write_csv(
    target: str,
    out: TextIO,
    *,
    metadata: tuple[tuple[str, str], ...] = (),
    timeout_s: float | None = None,
    channel: grpc.Channel | None = None,
) -> int:
    """Streams ExportRecordMapping from the identity service at ``target`` into ``out``.

    Returns the number of records written. ``metadata`` carries e.g. the API key
    (``(("authorization", "Bearer <key>"),)``); ``channel`` (e.g. a TLS one) replaces the
    plaintext channel to ``target``.
    """
    writer = csv.writer(out)
    writer.writerow(HEADER)
    count = 0
    with channel or grpc.insecure_channel(target) as open_channel:
        stub = identity_pb2_grpc.IdentityServiceStub(open_channel)
        for row in stub.ExportRecordMapping(
            identity_pb2.ExportRecordMappingRequest(), metadata=metadata, timeout=timeout_s
        ):
            writer.writerow(
                (
                    row.record_ref.source,
                    row.record_ref.message_id,
                    row.customer_id,
                    row.resolve_time.ToJsonString() if row.HasField("resolve_time") else "",
                    row.rule,
                )
            )
            count += 1
    return count
