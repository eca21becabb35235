"""``svod ingest`` and ``svod record status``: sending records and following them.

svod ingest FILE.jsonl [--wait] [--timeout S] [--json]
svod record status --source S --message-id M [--json]

A line of FILE.jsonl is one IdentifyRequest, or one TrackRequest (a line with an ``event``),
in protobuf JSON. Identify calls go first (events name their customers by identifiers), in
streams of CHUNK messages; ``svod ingest`` reports what the front door accepted, then with
``--wait`` follows every accepted message until it is delivered downstream or has failed.
Long runs show progress with a rate and an ETA on a terminal.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf import json_format

from svod.common.v1 import common_pb2
from svod.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from svod_cli.common import (
    EXIT_OK,
    EXIT_REFUSED,
    TIMEOUT_S,
    Progress,
    UsageError,
    add_json_flag,
    call,
    channel,
    metadata,
    print_json,
    refusals_reported,
    timestamp_text,
)

Stub = ingestion_pb2_grpc.IngestionServiceStub
# Messages per stream call: a reply (and the progress line) every few seconds, and a retry
# of a failed call resends at most this many (they are idempotent by message id).
CHUNK = 2000
# Status look-ups in flight at once while waiting for delivery.
STATUS_WINDOW = 64
PENDING = ingestion_pb2.RecordStatus.STATE_PENDING
DELIVERED = ingestion_pb2.RecordStatus.STATE_DELIVERED


@dataclass
class Requests:
    identifies: list[ingestion_pb2.IdentifyRequest] = field(default_factory=list)
    tracks: list[ingestion_pb2.TrackRequest] = field(default_factory=list)
    # The file line of each message: identify calls first, then events.
    lines: list[int] = field(default_factory=list)

    @property
    def refs(self) -> list[common_pb2.RecordRef]:
        return [r.record_ref for r in self.identifies] + [r.record_ref for r in self.tracks]


def read_requests(path: Path) -> Requests:
    """The file's messages; a line that is neither message is a UsageError naming it."""
    requests = Requests()
    identify_lines: list[int] = []
    track_lines: list[int] = []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"{path}: {error.strerror}") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            if isinstance(raw, dict) and "event" in raw:
                requests.tracks.append(json_format.ParseDict(raw, ingestion_pb2.TrackRequest()))
                track_lines.append(number)
            else:
                requests.identifies.append(
                    json_format.ParseDict(raw, ingestion_pb2.IdentifyRequest())
                )
                identify_lines.append(number)
        except (json.JSONDecodeError, json_format.ParseError) as error:
            raise UsageError(
                f"{path}:{number}: not an IdentifyRequest or TrackRequest: {error}"
            ) from None
    requests.lines = identify_lines + track_lines
    return requests


def _chunks(items: Sequence[object], size: int) -> Iterator[tuple[int, Sequence[object]]]:
    for start in range(0, len(items), size):
        yield start, items[start : start + size]


def send(requests: Requests, progress: Progress | None = None) -> ingestion_pb2.BulkResponse:
    """Streams the messages to ingestion; each rejected message's ``index`` is its file line."""
    total = ingestion_pb2.BulkResponse()
    with channel("ingestion") as open_channel:
        stub = Stub(open_channel)
        offset = 0
        for method, messages in (
            (stub.IdentifyStream, requests.identifies),
            (stub.TrackStream, requests.tracks),
        ):
            for start, chunk in _chunks(messages, CHUNK):
                reply = method(
                    iter(chunk),
                    timeout=max(TIMEOUT_S, len(chunk) / 50),
                    metadata=metadata(),
                )
                total.accepted_count += reply.accepted_count
                total.duplicate_count += reply.duplicate_count
                total.rejected_count += reply.rejected_count
                for rejected in reply.rejected:
                    rejected.index = requests.lines[offset + start + rejected.index]
                    total.rejected.append(rejected)
                if progress is not None:
                    progress.advance(len(chunk))
            offset += len(messages)
    return total


@dataclass
class Delivery:
    delivered: int = 0
    failed: list[ingestion_pb2.RecordStatus] = field(default_factory=list)
    pending: list[common_pb2.RecordRef] = field(default_factory=list)
    # Messages the service does not know (refused ones beyond the 1,000 a reply lists).
    unknown: list[common_pb2.RecordRef] = field(default_factory=list)


def wait_delivered(
    refs: Sequence[common_pb2.RecordRef], timeout_s: float, progress: Progress | None = None
) -> Delivery:
    """Follows each message until it left PENDING (delivered or failed), STATUS_WINDOW
    look-ups at a time; what is still pending at the deadline is listed as such."""
    outcome = Delivery()
    deadline = time.monotonic() + timeout_s
    waiting = list(refs)
    with channel("ingestion") as open_channel:
        stub = Stub(open_channel)
        while waiting:
            still: list[common_pb2.RecordRef] = []
            for start in range(0, len(waiting), STATUS_WINDOW):
                window = waiting[start : start + STATUS_WINDOW]
                futures = [
                    stub.GetRecordStatus.future(
                        ingestion_pb2.GetRecordStatusRequest(record_ref=ref),
                        timeout=TIMEOUT_S,
                        metadata=metadata(),
                    )
                    for ref in window
                ]
                for ref, future in zip(window, futures, strict=True):
                    try:
                        status = future.result()
                    except grpc.RpcError as error:
                        if error.code() != grpc.StatusCode.NOT_FOUND:
                            raise
                        outcome.unknown.append(ref)
                        continue
                    if status.state == PENDING:
                        still.append(ref)
                        continue
                    if status.state == DELIVERED:
                        outcome.delivered += 1
                    else:
                        outcome.failed.append(status)
                    if progress is not None:
                        progress.advance()
                if still and still[0] is window[0]:
                    # The oldest waiting message is not through yet: later ones rarely are.
                    still.extend(waiting[start + len(window) :])
                    break
            waiting = still
            if waiting:
                if time.monotonic() > deadline:
                    outcome.pending = waiting
                    break
                time.sleep(0.2)
    return outcome


@refusals_reported
def cmd_ingest(args: argparse.Namespace) -> int:
    requests = read_requests(Path(args.file))
    count = len(requests.lines)
    sending = Progress("sent", count, force=args.progress)
    reply = send(requests, sending)
    sending.finish()
    delivery = None
    if args.wait:
        rejected_lines = {r.index for r in reply.rejected}
        accepted = [
            ref
            for ref, line in zip(requests.refs, requests.lines, strict=True)
            if line not in rejected_lines
        ]
        following = Progress("delivered", len(accepted), force=args.progress)
        delivery = wait_delivered(accepted, args.timeout, following)
        following.finish()
    if args.json:
        result = {
            "accepted": reply.accepted_count,
            "duplicates": reply.duplicate_count,
            "rejected_count": reply.rejected_count,
            "rejected": [
                {
                    "line": r.index,
                    "reason": r.reason,
                    "field_violations": [
                        {"field": v.field, "description": v.description} for v in r.field_violations
                    ],
                }
                for r in reply.rejected
            ],
        }
        if delivery is not None:
            result["delivered"] = delivery.delivered
            result["failed"] = [
                {
                    "source": s.record_ref.source,
                    "message_id": s.record_ref.message_id,
                    "last_error": s.last_error,
                }
                for s in delivery.failed
            ]
            result["pending"] = len(delivery.pending)
        print_json(result)
    else:
        print(
            f"accepted {reply.accepted_count}, duplicates {reply.duplicate_count}, "
            f"rejected {reply.rejected_count}"
        )
        for rejected in reply.rejected:
            fields = ", ".join(f"{v.field}: {v.description}" for v in rejected.field_violations)
            print(f"  line {rejected.index}: {rejected.reason} {fields}".rstrip())
        if delivery is not None:
            print(
                f"delivered {delivery.delivered}, failed {len(delivery.failed)}, "
                f"still pending {len(delivery.pending)}"
            )
            for status in delivery.failed:
                ref = status.record_ref
                print(f"  {ref.source}/{ref.message_id}: {status.last_error}")
    problems = reply.rejected_count or (
        delivery is not None and (delivery.failed or delivery.pending)
    )
    return EXIT_REFUSED if problems else EXIT_OK


@refusals_reported
def cmd_record_status(args: argparse.Namespace) -> int:
    status = call(
        "ingestion",
        Stub,
        "GetRecordStatus",
        ingestion_pb2.GetRecordStatusRequest(
            record_ref=common_pb2.RecordRef(source=args.source, message_id=args.message_id)
        ),
    )
    if args.json:
        print_json(status)
        return EXIT_OK
    state = ingestion_pb2.RecordStatus.State.Name(status.state).removeprefix("STATE_").lower()
    for label, value in (
        ("record", status.record_id),
        ("state", state),
        ("customer", status.customer_id),
        ("attempts", str(status.attempts)),
        ("last error", status.last_error),
        ("received", timestamp_text(status.received_time)),
        ("delivered", timestamp_text(status.delivered_time)),
    ):
        if value:
            print(f"{label:<10} {value}")
    return EXIT_OK


def add_ingest_commands(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``svod ingest`` and ``svod record status``."""
    ingest = subparsers.add_parser(
        "ingest", help="send identify calls and events from a JSONL file"
    )
    ingest.add_argument("file", help="one IdentifyRequest or TrackRequest (JSON) per line")
    ingest.add_argument(
        "--wait", action="store_true", help="then wait until every message is delivered"
    )
    ingest.add_argument(
        "--timeout", type=float, default=600.0, help="how long --wait waits (default 600 s)"
    )
    ingest.add_argument(
        "--progress", action="store_true", help="show progress even when not on a terminal"
    )
    add_json_flag(ingest)
    ingest.set_defaults(func=cmd_ingest)

    record = subparsers.add_parser("record", help="follow one message").add_subparsers(
        dest="record_command", required=True
    )
    status = record.add_parser("status", help="how far a message has got")
    status.add_argument("--source", required=True)
    status.add_argument("--message-id", required=True)
    add_json_flag(status)
    status.set_defaults(func=cmd_record_status)
