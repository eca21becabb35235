"""``svod import customers|events FILE``: a file of history streamed to ingestion in bulk.

svod import customers FILE [--mapping MAP] [--format jsonl|csv|parquet] [--source S]
                           [--channel C] [--checkpoint PATH] [--restart] [--limit N]
                           [--wait] [--timeout S] [--progress] [--json]
svod import events FILE ...                                        (the same options)

FILE is JSON lines of the public messages (IdentifyRequest for customers, TrackRequest for
events, in proto JSON), CSV with a header (columns -> fields by a mapping file, see
``svod_cli.import_mapping``; without one each header is a field path), or Parquet (flat columns
with a mapping; without one, columns named and nested as the message's fields). The format
follows the file's suffix unless ``--format`` says.

Customers go by default through identity's set-based batch path (``--path batch``): ingestion's
``StageCustomerImport`` stores and stages CHUNK records per message, then ``CommitCustomerImport``
starts the import's job (identity resolves every record at once, ingestion folds them into the
profiles) and ``--wait`` follows it to its end. Events likewise go by default through profile's
set-based event fold: ``StageEventImport`` stores, attributes in bulk and stages them (those not
attributable now are handed to the streaming delivery), ``CommitEventImport`` folds them.
``--path stream`` sends the records over ``IdentifyStream`` / ``TrackStream`` in streams of CHUNK
messages, each resolved or attributed on its own. What makes a re-run safe:

- **Idempotent.** Every message has a (source, message id); a line without a message id gets
  ``imp-<first 20 hex digits of the file's SHA-256>-<line>``, so the same file always gives
  the same ids and a re-sent line is a duplicate, never a second record.
- **Resumable.** After every stream ingestion answered, the checkpoint file (``FILE.svod-import
  .json`` beside it, or ``--checkpoint``) records the last line acknowledged and the running
  totals; a re-run of the same file resumes after that line. A file changed since is refused
  (``--restart`` imports it anew); a finished import is not sent again without ``--restart``.
- **Retried.** A stream that fails in transit (UNAVAILABLE, DEADLINE_EXCEEDED, ...) is sent
  again with backoff, with the same message ids (stored ones come back as duplicates).
- **Per-line rejects.** A line that does not parse or convert, or that ingestion refuses, is
  reported with its line number, field and reason; the others are imported.

Progress (records sent, rate, ETA) goes to standard error on a terminal (``--progress`` forces
it); the summary to standard output (``--json`` for scripts). Exit code 1 when lines were
rejected (or, with ``--wait``, failed or stayed pending), 3 when ingestion could not be reached
(the checkpoint holds what was acknowledged: run the same command again).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import json
import os
import secrets
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import grpc
import orjson
from google.protobuf import json_format
from google.protobuf.message import Message

from svod.common.v1 import common_pb2
from svod.identity.v1 import identity_pb2
from svod.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from svod_cli.common import (
    EXIT_OK,
    EXIT_REFUSED,
    Progress,
    UsageError,
    add_json_flag,
    channel,
    metadata,
    print_json,
    refusals_reported,
    report_rpc_error,
)
from svod_cli.fast_json import build
from svod_cli.identity_bulk import automatic_reresolution, reresolution_json
from svod_cli.import_mapping import ColumnMapping, delimiter_of, load_mapping, read_mapping_file
from svod_cli.ingest import wait_delivered
from svod_runtime.own_random import own_random

Stub = ingestion_pb2_grpc.IngestionServiceStub

# Messages per stream: ingestion lists the first 1,000 refusals of a stream, so with 1,000 every
# rejected line is reported with its reason; a retry resends at most this many.
CHUNK = 1000
# Events per StageEventImport message (the batch path): ingestion's and profile's most. Each
# message costs fixed work in every process (ingestion's transactions, its look-up and
# staging calls, profile's COPY and savepoint), so fewer, larger messages cost less per
# event. Nothing of the rejects' report is lost: an answer lists up to 1,000 refused lines,
# and the command keeps the reasons of 1,000 lines in all (KEEP_REJECTED).
EVENT_IMPORT_CHUNK = 2000
# A message is sent before it grows past this many bytes (ingestion receives up to 16 MiB a
# message; two are in flight): large events make smaller messages.
CHUNK_BYTES = 4 * 1024 * 1024
# Streams in flight at once: while ingestion stores one, the next is read and sent.
STREAMS = 2
# Stream failures worth sending again (the service or the network, not the request).
RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
    }
)
# Retry jitter from a generator of the command's own (see svod_runtime.own_random).
_JITTER = own_random()


def _jittered(delay: float) -> float:
    """``delay`` give or take a quarter, so retrying commands spread out."""
    return delay * (0.75 + _JITTER.random() / 2)


BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
# Rejected lines kept with their reasons (all are counted): the checkpoint carries them and is
# rewritten after every stream, so a file of mostly bad lines must not make it megabytes.
KEEP_REJECTED = 1_000
# --wait follows every record a run sent up to this many, else an even sample of this many.
WAIT_FOLLOW = 20_000
CHECKPOINT_VERSION = 1
DEFAULT_CHANNEL = "SOURCE_CHANNEL_BACK_OFFICE"


class ImportPath(StrEnum):
    """How customers reach their profiles: identity's batch engine, or one by one."""

    BATCH = "batch"
    STREAM = "stream"


# How often --wait asks for a batch import's job.
JOB_POLL_S = 1.0


class FileFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"
    PARQUET = "parquet"


@dataclass(frozen=True)
class Kind:
    name: str  # customers | events
    message: type[Message]
    method: str


KINDS = {
    "customers": Kind("customers", ingestion_pb2.IdentifyRequest, "IdentifyStream"),
    "events": Kind("events", ingestion_pb2.TrackRequest, "TrackStream"),
}


@dataclass
class Row:
    """One record of the file: its line (row for Parquet) and its message dict, or why not."""

    line: int
    data: dict[str, Any] | None
    errors: list[tuple[str, str]] = field(default_factory=list)
    # The JSON line, when ``data`` is orjson's reading of it taken without looking for long
    # numbers (read_jsonl): read again exactly (json.loads) if the fast fill declines it.
    text: str | None = None


# -- reading -----------------------------------------------------------------------------------


def file_facts(path: Path, fmt: FileFormat) -> tuple[str, int]:
    """The file's SHA-256 and its record count (lines, rows) for progress, in one pass."""
    digest = hashlib.sha256()
    newlines = 0
    last = b"\n"
    try:
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
                newlines += block.count(b"\n")
                last = block[-1:]
    except OSError as error:
        raise UsageError(f"{path}: {error.strerror}") from None
    lines = newlines + (last != b"\n")
    if fmt is FileFormat.PARQUET:
        import pyarrow.parquet as pq

        try:
            records = int(pq.ParquetFile(path).metadata.num_rows)
        except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
            raise UsageError(f"{path}: not a Parquet file: {error}") from None
    else:
        records = lines - (1 if fmt is FileFormat.CSV else 0)
    return digest.hexdigest(), max(0, records)


def read_jsonl(path: Path) -> Iterator[Row]:
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                yield jsonl_row(number, line)


def jsonl_row(number: int, line: str) -> Row:
    """A JSON line's Row: orjson's reading, kept with the line (Row.text). It differs from
    json.loads' only in numbers - an integer beyond 64 bits becomes a float - and the fast
    fill declines every float, so build_message reads a line again exactly only when the
    fill declines it (tests/properties/test_fast_json.py holds the two ways equal). Looking
    for a run of 19 digits in every line before orjson read it was 2.8 us of the command's
    CPU an event (probe, 20,000 bench events, load 26). What orjson refuses, json.loads
    decides (NaN, lone surrogates) and words the refusal."""
    try:
        data = orjson.loads(line)
        text: str | None = line
    except orjson.JSONDecodeError:
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            return Row(number, None, [("", f"not JSON: {error.msg} at column {error.colno}")])
        text = None
    if not isinstance(data, dict):
        return Row(number, None, [("", "not a JSON object")])
    return Row(number, data, text=text)


def read_csv(path: Path, raw_mapping: dict[str, Any] | None, kind: Kind) -> Iterator[Row]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        tab = path.suffix.lower() == ".tsv" and not (raw_mapping or {}).get("delimiter")
        reader = csv.reader(handle, delimiter="\t" if tab else delimiter_of(raw_mapping))
        header = next(reader, None)
        if header is None:
            return
        mapping = load_mapping(raw_mapping, kind.message.DESCRIPTOR, header)
        missing = sorted(set(mapping.columns) - set(header))
        if missing:
            raise UsageError(f"{path}: no column {', '.join(missing)} (the mapping names it)")
        start = reader.line_num + 1
        for cells in reader:
            line, start = start, reader.line_num + 1
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                yield Row(line, None, [("", f"{len(cells)} cells, the header has {len(header)}")])
                continue
            data, errors = mapping.message_dict(dict(zip(header, cells, strict=True)))
            yield Row(line, None if errors else data, errors)


def read_parquet(path: Path, raw_mapping: dict[str, Any] | None, kind: Kind) -> Iterator[Row]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    columns = list(parquet.schema_arrow.names)
    mapping: ColumnMapping | None = None
    if raw_mapping is not None:
        mapping = load_mapping(raw_mapping, kind.message.DESCRIPTOR, columns)
        missing = sorted(set(mapping.columns) - set(columns))
        if missing:
            raise UsageError(f"{path}: no column {', '.join(missing)} (the mapping names it)")
    number = 0
    for batch in parquet.iter_batches(batch_size=CHUNK):
        for record in batch.to_pylist():
            number += 1
            if mapping is None:
                yield Row(number, _json_ready(record))
                continue
            data, errors = mapping.message_dict(record)
            yield Row(number, None if errors else data, errors)


def _json_ready(value: Any) -> Any:
    """A Parquet row as proto JSON: nulls left out, times as RFC 3339, dates as Date."""
    import datetime as dt
    from decimal import Decimal

    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_json_ready(v) for v in value if v is not None]
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return {"year": value.year, "month": value.month, "day": value.day}
    if isinstance(value, Decimal):
        return str(value)
    return value


def read_rows(path: Path, fmt: FileFormat, mapping: Path | None, kind: Kind) -> Iterator[Row]:
    if fmt is FileFormat.JSONL:
        if mapping is not None:
            raise UsageError("--mapping is for CSV and Parquet files; JSON lines are messages")
        return read_jsonl(path)
    raw = read_mapping_file(mapping) if mapping is not None else None
    if fmt is FileFormat.CSV:
        return read_csv(path, raw, kind)
    return read_parquet(path, raw, kind)


def format_of(path: Path, given: str | None) -> FileFormat:
    if given:
        return FileFormat(given)
    suffixes = [s.lower() for s in path.suffixes]
    for suffix in reversed(suffixes):
        if suffix in (".jsonl", ".ndjson", ".json"):
            return FileFormat.JSONL
        if suffix in (".csv", ".tsv"):
            return FileFormat.CSV
        if suffix in (".parquet", ".pq"):
            return FileFormat.PARQUET
    raise UsageError(f"{path}: say --format {'|'.join(FileFormat)} (the suffix does not tell)")


# -- messages ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Defaults:
    source: str
    channel: str
    id_prefix: str  # imp-<digest> for lines without a message id


def build_message(row: Row, kind: Kind, defaults: Defaults) -> Message:
    """The row's message with the import's defaults: source, channel, a derived message id.
    Raises json_format.ParseError for a dict that is not the message."""
    assert row.data is not None
    message = _message(row.data, row.line, kind, defaults, exact=row.text is None)
    if message is None:
        # The fast fill declined orjson's reading of the line: the line read exactly (as
        # json.loads reads it: an integer beyond 64 bits stays one), then the fill or ParseDict.
        assert row.text is not None
        row.data, row.text = json.loads(row.text), None
        message = _message(row.data, row.line, kind, defaults, exact=True)
        assert message is not None
    return message


def _message(
    data: dict[str, Any], line: int, kind: Kind, defaults: Defaults, *, exact: bool
) -> Message | None:
    """build_message's message from ``data``; None when the fast fill declines it and it is
    not ``exact`` (orjson's reading of a line: to be read again before ParseDict has it)."""
    ref = data.get("record_ref")
    if not (
        type(ref) is dict
        and ref.get("source")
        and ref.get("message_id")
        and "recordRef" not in data
        and data.get("channel")
    ):
        ref = data.get("record_ref", data.get("recordRef"))
        if not isinstance(ref, dict):
            ref = {}
        ref = dict(ref)
        if not ref.get("source") and defaults.source:
            ref["source"] = defaults.source
        if not ref.get("message_id") and not ref.get("messageId"):
            ref["message_id"] = f"{defaults.id_prefix}-{line}"
        data = {k: v for k, v in data.items() if k not in ("record_ref", "recordRef")}
        data["record_ref"] = ref
        if not data.get("channel"):
            data["channel"] = defaults.channel
    # (Nothing to fill in - the usual line: the dict as it is, not a copy of it.) The fast
    # fill when it vouches for the result; ParseDict (and its refusals) otherwise.
    fast = build(data, kind.message)
    if fast is not None or not exact:
        return fast
    return json_format.ParseDict(data, kind.message())


# -- the checkpoint ----------------------------------------------------------------------------


@dataclass
class Totals:
    accepted: int = 0
    duplicates: int = 0
    rejected_count: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def reject(self, line: int, reason: str, violations: list[tuple[str, str]]) -> None:
        self.rejected_count += 1
        if len(self.rejected) < KEEP_REJECTED:
            self.rejected.append(
                {
                    "line": line,
                    "reason": reason,
                    "field_violations": [{"field": f, "description": d} for f, d in violations],
                }
            )


@dataclass
class Checkpoint:
    path: Path
    file: str
    kind: str
    sha256: str
    last_line: int = 0
    records_done: int = 0
    complete: bool = False
    totals: Totals = field(default_factory=Totals)
    # The batch path's import (its id names it in ingestion and identity) and whether it was
    # committed; empty for the stream path.
    import_id: str = ""
    committed: bool = False

    def save(self) -> None:
        """Written to a temporary file and renamed: a crash leaves the old or the new one."""
        state = {
            "version": CHECKPOINT_VERSION,
            "file": self.file,
            "kind": self.kind,
            "sha256": self.sha256,
            "last_line": self.last_line,
            "records_done": self.records_done,
            "complete": self.complete,
            "accepted": self.totals.accepted,
            "duplicates": self.totals.duplicates,
            "rejected_count": self.totals.rejected_count,
            "rejected": self.totals.rejected,
            "import_id": self.import_id,
            "committed": self.committed,
        }
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps(state, ensure_ascii=False), encoding="utf-8")
        os.replace(temporary, self.path)

    @classmethod
    def load(cls, path: Path) -> Checkpoint | None:
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError) as error:
            raise UsageError(
                f"{path}: not a checkpoint ({error}); --restart to start over"
            ) from None
        if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
            raise UsageError(f"{path}: not a checkpoint of this svod; --restart to start over")
        try:
            return cls._from_state(path, state)
        except (KeyError, TypeError, ValueError):
            raise UsageError(f"{path}: a damaged checkpoint; --restart to start over") from None

    @classmethod
    def _from_state(cls, path: Path, state: dict[str, Any]) -> Checkpoint:
        return cls(
            path,
            str(state["file"]),
            str(state["kind"]),
            str(state["sha256"]),
            int(state["last_line"]),
            int(state["records_done"]),
            bool(state["complete"]),
            Totals(
                int(state["accepted"]),
                int(state["duplicates"]),
                int(state["rejected_count"]),
                list(state["rejected"]),
            ),
            str(state.get("import_id", "")),
            bool(state.get("committed", False)),
        )


# -- sending -----------------------------------------------------------------------------------


@dataclass
class Chunk:
    lines: list[int]  # the file line of each message
    messages: list[Message]
    size: int = 0  # the messages' bytes
    last_line: int = 0  # the chunk's last line read (a rejected one too)
    records: int = 0  # rows read into it, rejected ones too
    # Rows refused before sending (unreadable, not the message): counted when the chunk is
    # answered, so that the checkpoint and the totals move together.
    local_rejects: list[tuple[Row, str]] = field(default_factory=list)


class Sender:
    """Sends chunks over the kind's stream RPC, STREAMS at a time, each retried with backoff
    when the failure is in transit; answers come back in the chunks' order."""

    def __init__(self, kind: Kind, retries: int, quiet: bool, import_id: str = "") -> None:
        self.kind = kind
        self.retries = retries
        self.quiet = quiet
        # Set: the batch path, each chunk one StageCustomerImport message of this import.
        self.import_id = import_id
        # Records a chunk holds at most (rejected ones too).
        self.chunk = EVENT_IMPORT_CHUNK if import_id and kind.name == "events" else CHUNK
        self._channel = channel("ingestion")
        self._method = getattr(Stub(self._channel), kind.method)
        stub = Stub(self._channel)
        self._stage = (
            stub.StageCustomerImport if kind.name == "customers" else stub.StageEventImport
        )
        # Events of the batch path handed to the streaming delivery (not attributable now).
        self.handed_over = 0
        self._pool = ThreadPoolExecutor(max_workers=STREAMS, thread_name_prefix="svod-import")
        self.retried = 0
        # Set when the import stops (done, or Ctrl-C): streams in flight finish, none is
        # sent again, so an interrupted import exits promptly instead of retrying for minutes.
        self._stopping = threading.Event()

    def close(self) -> None:
        self._stopping.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._channel.close()

    def submit(self, chunk: Chunk) -> Future[ingestion_pb2.BulkResponse]:
        return self._pool.submit(self._send, chunk)

    def _send(self, chunk: Chunk) -> ingestion_pb2.BulkResponse:
        total = ingestion_pb2.BulkResponse()
        start = 0
        while start < len(chunk.messages):
            part = chunk.messages[start:]
            reply = self._send_retried(part, chunk)
            total.accepted_count += reply.accepted_count
            total.duplicate_count += reply.duplicate_count
            total.rejected_count += reply.rejected_count
            for rejected in reply.rejected:
                rejected.index += start
                total.rejected.append(rejected)
            if not reply.unread_from_index:
                break
            start += reply.unread_from_index  # the stream's limit: send the rest anew
        return total

    def _send_retried(self, messages: list[Message], chunk: Chunk) -> ingestion_pb2.BulkResponse:
        delay = BACKOFF_FIRST_S
        attempt = 1
        while True:
            try:
                if self.import_id:
                    return self._staged(messages)
                reply: ingestion_pb2.BulkResponse = self._method(
                    iter(messages), timeout=60.0 + len(messages) / 20, metadata=metadata()
                )
                return reply
            except grpc.RpcError as error:
                if (
                    error.code() not in RETRYABLE
                    or attempt > self.retries
                    or self._stopping.is_set()
                ):
                    raise
                self.retried += 1
                if not self.quiet:
                    print(
                        f"\nlines {chunk.lines[0]}-{chunk.last_line}: {error.code().name}; "
                        f"sending again in {delay:.1f} s (attempt {attempt + 1})",
                        file=sys.stderr,
                    )
                if self._stopping.wait(_jittered(delay)):
                    raise
                delay = min(delay * 2, BACKOFF_MAX_S)
                attempt += 1

    def _staged(self, messages: list[Message]) -> ingestion_pb2.BulkResponse:
        """The chunk as one StageCustomerImport (StageEventImport) message; its answer as a
        stream's."""
        request: ingestion_pb2.StageCustomerImportRequest | ingestion_pb2.StageEventImportRequest
        if self.kind.name == "customers":
            request = ingestion_pb2.StageCustomerImportRequest(
                import_id=self.import_id,
                records=messages,  # type: ignore[arg-type]
            )
        else:
            request = ingestion_pb2.StageEventImportRequest(
                import_id=self.import_id,
                events=messages,  # type: ignore[arg-type]
            )
        answers = list(
            self._stage(iter([request]), timeout=60.0 + len(messages) / 20, metadata=metadata())
        )
        if len(answers) != 1:
            raise RuntimeError(f"ingestion answered {len(answers)} times to one message")
        (answer,) = answers
        self.handed_over += getattr(answer, "handed_over_count", 0)
        return ingestion_pb2.BulkResponse(
            accepted_count=answer.accepted_count,
            duplicate_count=answer.duplicate_count,
            rejected=answer.rejected,
            rejected_count=answer.rejected_count,
        )


@dataclass
class Outcome:
    sent_records: int = 0  # rows read this run (rejected ones too)
    refs: list[tuple[str, str]] = field(default_factory=list)  # stored or duplicate, this run
    stopped_by_limit: bool = False
    elapsed_s: float = 0.0


def run_import(  # noqa: C901, PLR0915
    rows: Iterator[Row],
    kind: Kind,
    defaults: Defaults,
    checkpoint: Checkpoint,
    sender: Sender,
    progress: Progress,
    limit: int,
    keep_refs: bool,
) -> Outcome:
    """Reads, converts and sends every row after the checkpoint's line; the checkpoint moves
    on as each stream is answered, in file order."""
    outcome = Outcome()
    started = time.monotonic()
    in_flight: deque[tuple[Chunk, Future[ingestion_pb2.BulkResponse]]] = deque()

    def settle(chunk: Chunk, future: Future[ingestion_pb2.BulkResponse]) -> None:
        reply = future.result()
        totals = checkpoint.totals
        totals.accepted += reply.accepted_count
        totals.duplicates += reply.duplicate_count
        refused = {r.index for r in reply.rejected}
        rejects = [(row.line, reason, row.errors) for row, reason in chunk.local_rejects] + [
            (
                chunk.lines[r.index],
                r.reason,
                [(v.field, v.description) for v in r.field_violations],
            )
            for r in reply.rejected
        ]
        for line, reason, violations in sorted(rejects, key=lambda r: r[0]):
            totals.reject(line, reason, violations)
        # Refusals beyond those the answer lists (1,000: only in a chunk of more) are counted
        # alone.
        totals.rejected_count += reply.rejected_count - len(reply.rejected)
        if keep_refs:
            for index, message in enumerate(chunk.messages):
                if index not in refused:
                    ref = message.record_ref  # type: ignore[attr-defined]
                    outcome.refs.append((ref.source, ref.message_id))
        checkpoint.last_line = chunk.last_line
        checkpoint.records_done += chunk.records
        checkpoint.save()
        progress.advance(chunk.records)

    pending = Chunk([], [])

    def flush() -> None:
        nonlocal pending
        chunk, pending = pending, Chunk([], [])
        if chunk.records == 0:
            return
        while len(in_flight) >= STREAMS:
            settle(*in_flight.popleft())
        if chunk.messages:
            in_flight.append((chunk, sender.submit(chunk)))
        else:
            done: Future[ingestion_pb2.BulkResponse] = Future()
            done.set_result(ingestion_pb2.BulkResponse())
            in_flight.append((chunk, done))

    try:
        for row in rows:
            if row.line <= checkpoint.last_line:
                continue
            outcome.sent_records += 1
            pending.records += 1
            pending.last_line = row.line
            if row.data is None:
                pending.local_rejects.append((row, "; ".join(d for _, d in row.errors)))
            else:
                try:
                    message = build_message(row, kind, defaults)
                except json_format.ParseError as error:
                    row.errors = [("", str(error))]
                    pending.local_rejects.append((row, f"not a {kind.message.DESCRIPTOR.name}"))
                else:
                    pending.lines.append(row.line)
                    pending.messages.append(message)
                    pending.size += message.ByteSize()
            if pending.records >= sender.chunk or pending.size >= CHUNK_BYTES:
                flush()
            if limit and outcome.sent_records >= limit:
                # Stopped here even when this was the file's last line: a run with --limit
                # never commits a batch import (the commit starts its job); the next run
                # does. Before, a limit equal to the file's length committed, so whether a
                # run "stopped by --limit" had started the job depended on the file's size.
                outcome.stopped_by_limit = True
                break
        flush()
        while in_flight:
            settle(*in_flight.popleft())
    finally:
        for _, future in in_flight:
            future.cancel()
        outcome.elapsed_s = time.monotonic() - started
    return outcome


# -- the command -------------------------------------------------------------------------------


def _open_checkpoint(args: argparse.Namespace, path: Path, kind: Kind, sha: str) -> Checkpoint:
    where = (
        Path(args.checkpoint)
        if args.checkpoint
        else path.with_name(path.name + ".svod-import.json")
    )
    fresh = Checkpoint(where, str(path.resolve()), kind.name, sha)
    if args.restart:
        # A batch import staged and never committed goes on under its id: its records, stored
        # already, are staged again with it (under a new id they would be duplicates of an
        # import nobody commits, and never resolved).
        with contextlib.suppress(UsageError):
            saved = Checkpoint.load(where)
            if saved is not None and saved.sha256 == sha and not saved.committed:
                fresh.import_id = saved.import_id
        return fresh
    saved = Checkpoint.load(where)
    if saved is None:
        return fresh
    if saved.kind != kind.name:
        raise UsageError(
            f"{where} is the checkpoint of importing {saved.kind}, not {kind.name}; "
            "--checkpoint PATH for another, or --restart"
        )
    if saved.sha256 != sha:
        raise UsageError(
            f"{path} changed since {where} was written (another content): --restart to import "
            "it anew (lines without a message id then get other ids)"
        )
    return saved


def summary_json(
    path: Path, kind: Kind, checkpoint: Checkpoint, outcome: Outcome, resumed_from: int
) -> dict[str, Any]:
    totals = checkpoint.totals
    return {
        "file": str(path),
        "kind": kind.name,
        "checkpoint": str(checkpoint.path),
        "complete": checkpoint.complete,
        "resumed_after_line": resumed_from,
        "last_line": checkpoint.last_line,
        "records": checkpoint.records_done,
        "records_this_run": outcome.sent_records,
        "elapsed_s": round(outcome.elapsed_s, 3),
        "rate_per_s": round(outcome.sent_records / outcome.elapsed_s, 1)
        if outcome.elapsed_s
        else 0.0,
        "accepted": totals.accepted,
        "duplicates": totals.duplicates,
        "rejected_count": totals.rejected_count,
        "rejected": totals.rejected,
    }


def print_summary(result: dict[str, Any]) -> None:
    resumed = result["resumed_after_line"]
    head = f"{result['file']}: {result['records']:,} records"
    if resumed:
        head += f" (resumed after line {resumed:,})"
    print(
        f"{head}; this run {result['records_this_run']:,} in {result['elapsed_s']:.1f} s "
        f"({result['rate_per_s']:,.0f}/s)"
    )
    print(
        f"accepted {result['accepted']}, duplicates {result['duplicates']}, "
        f"rejected {result['rejected_count']}"
    )
    for rejected in result["rejected"]:
        violations = rejected["field_violations"]
        if not violations:
            print(f"  line {rejected['line']}: {rejected['reason']}")
        for violation in violations:
            where = f"{violation['field']}: " if violation["field"] else ""
            print(f"  line {rejected['line']}: {where}{violation['description']}")
    hidden = result["rejected_count"] - len(result["rejected"])
    if hidden > 0:
        print(f"  ... and {hidden:,} more rejected lines (counted, not listed)")


@refusals_reported
def cmd_import(args: argparse.Namespace) -> int:  # noqa: C901, PLR0912, PLR0915
    kind = KINDS[args.kind]
    path = Path(args.file)
    fmt = format_of(path, args.format)
    mapping = Path(args.mapping) if args.mapping else None
    sha, total = file_facts(path, fmt)
    checkpoint = _open_checkpoint(args, path, kind, sha)
    route = _route(args, kind)
    if route is ImportPath.BATCH and not checkpoint.import_id:
        # Its own id per import of the file (a --restart is a new import: its lines, stored
        # already, come back as duplicates and nothing is resolved twice).
        prefix = "cust" if kind.name == "customers" else "evt"
        checkpoint.import_id = f"{prefix}-{sha[:20]}-{secrets.token_hex(4)}"
    resumed_from = checkpoint.last_line
    try:  # now, not after the first stream: a folder we cannot write to is a usage error
        checkpoint.save()
    except OSError as error:
        raise UsageError(
            f"cannot write the checkpoint {checkpoint.path}: {error.strerror}; "
            "--checkpoint PATH puts it elsewhere"
        ) from None
    if checkpoint.complete:
        result = summary_json(path, kind, checkpoint, Outcome(), resumed_from)
        result["already_imported"] = True
        if checkpoint.import_id:
            result["import_id"] = checkpoint.import_id
        if args.json:
            print_json(result)
        else:
            print(
                f"{path} was imported already ({checkpoint.path}): accepted "
                f"{checkpoint.totals.accepted}, duplicates {checkpoint.totals.duplicates}, "
                f"rejected {checkpoint.totals.rejected_count}; --restart sends it again"
            )
        return EXIT_OK
    channel_name = _channel_name(args.channel)
    defaults = Defaults(args.source or "", channel_name, f"imp-{sha[:20]}")
    rows = read_rows(path, fmt, mapping, kind)
    # This run's records only, so that a resumed import's rate and ETA are its own.
    progress = Progress("sent", max(total - checkpoint.records_done, 1), force=args.progress)
    quiet = not (args.progress or sys.stderr.isatty())
    batch = route is ImportPath.BATCH
    sender = Sender(kind, args.retries, quiet, checkpoint.import_id if batch else "")
    outcome = Outcome()
    job: ImportJob | None = None
    try:
        try:
            outcome = run_import(
                rows,
                kind,
                defaults,
                checkpoint,
                sender,
                progress,
                args.limit,
                # Events of the batch path are followed one by one too, after the job: those
                # handed to the streaming delivery are delivered (or held) on their own.
                args.wait and (not batch or kind.name == "events"),
            )
            if batch and not outcome.stopped_by_limit:
                progress.finish()
                job = _commit(checkpoint, kind, args.retries, quiet)
        finally:
            sender.close()
    except grpc.RpcError as error:
        progress.finish()
        print(
            f"stopped after line {checkpoint.last_line:,} (acknowledged, in {checkpoint.path}); "
            "run the same command again to resume",
            file=sys.stderr,
        )
        return report_rpc_error(error)
    except KeyboardInterrupt:
        progress.finish()
        print(
            f"\ninterrupted after line {checkpoint.last_line:,} (acknowledged, in "
            f"{checkpoint.path}); run the same command again to resume",
            file=sys.stderr,
        )
        return 130
    if not batch:
        progress.finish()
    if not outcome.stopped_by_limit:
        checkpoint.complete = True
        checkpoint.save()
    result = summary_json(path, kind, checkpoint, outcome, resumed_from)
    result["retried_streams"] = sender.retried
    result["path"] = route.value
    if batch and kind.name == "events":
        result["handed_over"] = sender.handed_over
    if job is not None:
        result["import_id"] = checkpoint.import_id
        if args.wait:
            show = args.progress or sys.stderr.isatty()
            job = _follow_job(job, args.timeout, show)
            again = _reresolved_after(job, quiet=not show)
            if again is not None:
                result["reresolution"] = reresolution_json(again)
        result["import"] = job_json(job)
    delivery = None
    if args.wait and outcome.refs:
        refs = outcome.refs
        if len(refs) > WAIT_FOLLOW:
            step = len(refs) / WAIT_FOLLOW
            refs = [refs[int(i * step)] for i in range(WAIT_FOLLOW)] + [refs[-1]]
        following = Progress("delivered", len(refs), force=args.progress)
        delivery = wait_delivered(
            [common_pb2.RecordRef(source=s, message_id=m) for s, m in refs],
            args.timeout,
            following,
        )
        following.finish()
        result["followed"] = len(refs)
        result["followed_sample"] = len(refs) < len(outcome.refs)
        result["delivered"] = delivery.delivered
        result["failed"] = [
            {
                "source": s.record_ref.source,
                "message_id": s.record_ref.message_id,
                "state": ingestion_pb2.RecordStatus.State.Name(s.state),
                "last_error": s.last_error,
            }
            for s in delivery.failed
        ]
        result["pending"] = len(delivery.pending) + len(delivery.unknown)
    if args.json:
        print_json(result)
    else:
        print_summary(result)
        if outcome.stopped_by_limit:
            print(f"stopped after line {checkpoint.last_line:,} (--limit); run again to resume")
        if job is not None:
            print_job(result["import"], waited=args.wait)
        if (again := result.get("reresolution")) is not None:
            print(
                f"identity re-resolved the graph with the model it fitted on the import: job "
                f"{again['job_id']} {again['state']}, customers merged "
                f"{again['customers_merged']:,}, split {again['customers_split']:,}"
                + (f"; {again['error']}" if again["error"] else "")
            )
        if delivery is not None:
            sample = " (a sample)" if result["followed_sample"] else ""
            print(
                f"followed {result['followed']}{sample}: delivered {delivery.delivered}, "
                f"failed {len(delivery.failed)}, still pending {result['pending']}"
            )
            for failure in result["failed"]:
                print(
                    f"  {failure['source']}/{failure['message_id']}: "
                    f"{failure['state'].removeprefix('STATE_').lower()} {failure['last_error']}"
                )
    problems = checkpoint.totals.rejected_count or (
        delivery is not None and (delivery.failed or result["pending"])
    )
    if job is not None and args.wait:
        shown = result["import"]
        problems = problems or shown["state"] != "succeeded" or shown["failed"] or shown["pending"]
        again = result.get("reresolution")
        problems = problems or (again is not None and again["state"] != "succeeded")
    return EXIT_REFUSED if problems else EXIT_OK


def _route(args: argparse.Namespace, kind: Kind) -> ImportPath:
    return ImportPath(args.path or ImportPath.BATCH)


# A batch import's job: customers' or events'.
ImportJob = ingestion_pb2.CustomerImport | ingestion_pb2.EventImport


def _commit(checkpoint: Checkpoint, kind: Kind, retries: int, quiet: bool) -> ImportJob:
    """Commits the staged import (idempotent: a commit sent again returns the job as it is),
    retried with backoff when ingestion cannot be reached."""
    with channel("ingestion") as opened:
        stub = Stub(opened)
        delay = BACKOFF_FIRST_S
        attempt = 1
        while True:
            try:
                job: ImportJob
                if kind.name == "customers":
                    job = stub.CommitCustomerImport(
                        ingestion_pb2.CommitCustomerImportRequest(import_id=checkpoint.import_id),
                        timeout=60.0,
                        metadata=metadata(),
                    )
                else:
                    job = stub.CommitEventImport(
                        ingestion_pb2.CommitEventImportRequest(import_id=checkpoint.import_id),
                        timeout=60.0,
                        metadata=metadata(),
                    )
                break
            except grpc.RpcError as error:
                if error.code() not in RETRYABLE or attempt > retries:
                    raise
                if not quiet:
                    print(f"commit: {error.code().name}; again in {delay:.1f} s", file=sys.stderr)
                time.sleep(_jittered(delay))
                delay = min(delay * 2, BACKOFF_MAX_S)
                attempt += 1
    checkpoint.committed = True
    checkpoint.save()
    return job


# The two jobs' states share their numbers.
_DONE = (
    ingestion_pb2.CustomerImport.STATE_SUCCEEDED,
    ingestion_pb2.CustomerImport.STATE_FAILED,
)


def _names(job: ImportJob) -> tuple[str, str]:
    """The job's state and phase, lower-case short names."""
    if isinstance(job, ingestion_pb2.EventImport):
        state = ingestion_pb2.EventImport.State.Name(job.state)
        phase = ingestion_pb2.EventImport.Phase.Name(job.phase)
    else:
        state = ingestion_pb2.CustomerImport.State.Name(job.state)
        phase = ingestion_pb2.CustomerImport.Phase.Name(job.phase)
    return state.removeprefix("STATE_").lower(), phase.removeprefix("PHASE_").lower()


def _job_line(job: ImportJob) -> str:
    phase = _names(job)[1]
    if isinstance(job, ingestion_pb2.EventImport):
        detail = (
            f"{job.events_applied + job.events_duplicate:,}/{job.events_staged:,} events"
            if job.phase == ingestion_pb2.EventImport.PHASE_FOLDING
            else ""
        )
    elif job.phase == ingestion_pb2.CustomerImport.PHASE_RESOLVING:
        detail = job.resolution_phase or "queued"
        if job.records_total:
            detail += f" {job.records_resolved:,}/{job.records_total:,}"
    elif job.phase == ingestion_pb2.CustomerImport.PHASE_FOLDING:
        detail = f"{job.records_delivered:,}/{job.records_staged:,} profiles"
    else:
        detail = ""
    return f"import {job.import_id}: {phase} {detail}".rstrip()


def _follow_job(job: ImportJob, timeout_s: float, show: bool) -> ImportJob:
    """Polls the import's job until it ends (or ``timeout_s``), its phase and progress on
    standard error when ``show``; transient failures of the poll are waited out."""
    deadline = time.monotonic() + timeout_s
    shown = ""
    with channel("ingestion") as opened:
        stub = Stub(opened)
        while job.state not in _DONE and time.monotonic() < deadline:
            time.sleep(JOB_POLL_S)
            try:
                if isinstance(job, ingestion_pb2.EventImport):
                    job = stub.GetEventImport(
                        ingestion_pb2.GetEventImportRequest(import_id=job.import_id),
                        timeout=30.0,
                        metadata=metadata(),
                    )
                else:
                    job = stub.GetCustomerImport(
                        ingestion_pb2.GetCustomerImportRequest(import_id=job.import_id),
                        timeout=30.0,
                        metadata=metadata(),
                    )
            except grpc.RpcError as error:
                if error.code() not in RETRYABLE:
                    raise
                continue
            line = _job_line(job)
            if show and line != shown:
                sys.stderr.write("\r" + line.ljust(len(shown)))
                sys.stderr.flush()
                shown = line
    if show and shown:
        sys.stderr.write("\n")
    return job


def _reresolved_after(job: ImportJob, quiet: bool) -> identity_pb2.ResolutionJob | None:
    """Identity's re-resolution of the graph after a customer import whose fits changed the
    match model (``MatchModel.reresolution_job_id``), followed to its end: the import is
    done when the graph is."""
    if not isinstance(job, ingestion_pb2.CustomerImport) or job.state not in _DONE:
        return None
    if not job.HasField("commit_time"):
        return None
    return automatic_reresolution(job.commit_time.ToDatetime(), quiet)


def _seconds(job: ImportJob) -> float | None:
    if job.HasField("finish_time") and job.HasField("commit_time"):
        return round(
            (job.finish_time.ToDatetime() - job.commit_time.ToDatetime()).total_seconds(), 3
        )
    return None


def job_json(job: ImportJob) -> dict[str, Any]:
    settled = job.records_delivered + job.records_failed
    if isinstance(job, ingestion_pb2.EventImport):
        state, phase = _names(job)
        return {
            "import_id": job.import_id,
            "kind": "events",
            "state": state,
            "phase": phase,
            "events_staged": job.events_staged,
            "events_handed_over": job.events_handed_over,
            "events_applied": job.events_applied,
            "events_duplicate": job.events_duplicate,
            "events_erased": job.events_erased,
            "customers_changed": job.customers_changed,
            "delivered": job.records_delivered,
            "failed": job.records_failed,
            "pending": max(0, job.events_staged - settled) if job.state not in _DONE else 0,
            "error": job.error,
            "seconds": _seconds(job),
        }
    return {
        "import_id": job.import_id,
        "state": ingestion_pb2.CustomerImport.State.Name(job.state).removeprefix("STATE_").lower(),
        "phase": ingestion_pb2.CustomerImport.Phase.Name(job.phase).removeprefix("PHASE_").lower(),
        "records_staged": job.records_staged,
        "customers_created": job.customers_created,
        "records_linked": job.records_linked,
        "records_already_resolved": job.records_already_resolved,
        "customers_merged": job.customers_merged,
        "review_items_opened": job.review_items_opened,
        "delivered": job.records_delivered,
        "failed": job.records_failed,
        "pending": max(0, job.records_staged - settled) if job.state not in _DONE else 0,
        "error": job.error,
        "seconds": round(
            (job.finish_time.ToDatetime() - job.commit_time.ToDatetime()).total_seconds(), 3
        )
        if job.HasField("finish_time") and job.HasField("commit_time")
        else None,
    }


def print_job(job: dict[str, Any], *, waited: bool) -> None:
    kind = job.get("kind", "customers")
    if not waited:
        print(
            f"import {job['import_id']} committed ({job['state']}, {job['phase']}); "
            f"svod import {kind} FILE --wait follows it"
        )
        return
    if kind == "events":
        print(
            f"import {job['import_id']}: {job['state']}; events staged "
            f"{job['events_staged']:,}, applied {job['events_applied']:,}, already applied "
            f"{job['events_duplicate']:,}, of erased customers {job['events_erased']:,}; "
            f"customers changed {job['customers_changed']:,}"
        )
        print(
            f"events: delivered {job['delivered']}, failed {job['failed']}, still pending "
            f"{job['pending']}; handed to the streaming delivery (not attributable yet) "
            f"{job['events_handed_over']:,}"
        )
        if job["error"]:
            print(f"  {job['error']}")
        return
    print(
        f"import {job['import_id']}: {job['state']}; customers created "
        f"{job['customers_created']:,}, records linked {job['records_linked']:,}, "
        f"already resolved {job['records_already_resolved']:,}, customers merged "
        f"{job['customers_merged']:,}, review items {job['review_items_opened']:,}"
    )
    print(
        f"profiles: delivered {job['delivered']}, failed {job['failed']}, "
        f"still pending {job['pending']}"
    )
    if job["error"]:
        print(f"  {job['error']}")


def _channel_name(text: str) -> str:
    wanted = text.strip().upper().replace("-", "_")
    for candidate in (wanted, "SOURCE_CHANNEL_" + wanted):
        if candidate in common_pb2.SourceChannel.keys():  # noqa: SIM118 (an enum wrapper)
            return candidate
    names = ", ".join(
        n.removeprefix("SOURCE_CHANNEL_").lower()
        for n in common_pb2.SourceChannel.keys()  # noqa: SIM118 (an enum wrapper)
        if not n.endswith("UNSPECIFIED")
    )
    raise UsageError(f"--channel {text}: one of {names}")


def add_import_commands(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``svod import customers|events``."""
    group = subparsers.add_parser(
        "import", help="import customers or events from JSONL, CSV or Parquet, resumably"
    ).add_subparsers(dest="import_command", required=True)
    for name, what in (
        ("customers", "customer records (IdentifyRequest)"),
        ("events", "events such as past orders (TrackRequest)"),
    ):
        command = group.add_parser(name, help=f"import {what}")
        command.add_argument(
            "file",
            help=f"JSON lines of {what.split('(')[1][:-1]}, CSV with a header, or Parquet",
        )
        command.add_argument(
            "--format", choices=list(FileFormat), help="default: by the file's suffix"
        )
        command.add_argument(
            "--mapping",
            help="YAML or JSON: columns -> message fields (CSV, Parquet; docs/bulk-import.md)",
        )
        command.add_argument(
            "--source", help="the source of messages that name none (record_ref.source)"
        )
        command.add_argument(
            "--channel",
            default=DEFAULT_CHANNEL,
            help="the channel of messages that name none (default back_office)",
        )
        command.add_argument(
            "--checkpoint", help="where progress is kept (default FILE.svod-import.json)"
        )
        command.add_argument(
            "--restart", action="store_true", help="ignore the checkpoint: send the file anew"
        )
        command.add_argument(
            "--limit", type=int, default=0, help="stop after N records (resume later)"
        )
        command.add_argument(
            "--retries",
            type=int,
            default=8,
            help="attempts more for a stream that fails in transit (default 8, backoff to 30 s)",
        )
        command.add_argument(
            "--wait", action="store_true", help="then wait until the records are delivered"
        )
        command.add_argument(
            "--path",
            choices=list(ImportPath),
            default=None,
            help=(
                "batch (default): identity resolves the whole import at once; stream: "
                "each record on its own through IdentifyStream"
            )
            if name == "customers"
            else (
                "batch (default): attributed in bulk, folded set-based by profile; stream: "
                "each event on its own through TrackStream"
            ),
        )
        command.add_argument(
            "--timeout", type=float, default=600.0, help="how long --wait waits (default 600 s)"
        )
        command.add_argument(
            "--progress", action="store_true", help="show progress even when not on a terminal"
        )
        add_json_flag(command)
        command.set_defaults(func=cmd_import, kind=name)
