"""``svod`` — the command line for people running Svod.

svod run [--demo]                     bring the whole suite up (Ctrl-C stops it cleanly)
svod status                           health of each service
svod ingest FILE.jsonl                send identify calls (protobuf JSON, one per line)
svod profile get --email/--phone/--card/--id VALUE
svod record status --source S --message-id M
svod unattributed list|recheck        events whose identifiers name no single customer
svod db prepare                       create schemas, roles and run migrations
svod keys create --principal NAME --scopes ...   a new API key and its key-file entry
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import grpc
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc

from svod.common.v1 import common_pb2
from svod.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from svod.profile.v1 import profile_pb2, profile_pb2_grpc
from svod_cli.campaign import add_campaign_commands
from svod_cli.common import TIMEOUT_S, channel, metadata, report_rpc_error, target
from svod_cli.destination import add_destination_commands
from svod_cli.keys import add_keys_commands
from svod_cli.quality import add_quality_commands
from svod_cli.unattributed import add_unattributed_commands
from svod_runtime.bounds import MAX_STREAM_MESSAGES
from svod_runtime.config import SERVICES

DEMO_FILE = Path(__file__).resolve().parent / "data" / "demo.jsonl"


def cmd_identity_export(args: argparse.Namespace) -> int:
    from svod_identity.entrypoints.cli_export import write_csv

    out = open(args.output, "w", newline="", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    try:
        count = write_csv(
            target("identity"),
            out,
            metadata=metadata(),
            timeout_s=3600,
            channel=channel("identity"),
        )
    finally:
        if args.output:
            out.close()
    print(f"{count} records", file=sys.stderr)
    return 0


def cmd_status(_: argparse.Namespace) -> int:
    worst = 0
    for service in SERVICES:
        with channel(service) as open_channel:
            try:
                reply = health_pb2_grpc.HealthStub(open_channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=2
                )
                state = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except grpc.RpcError as error:
                state = f"unreachable ({error.code().name})"  # type: ignore[attr-defined]
        if state != "SERVING":
            worst = 1
        print(f"{service:<13} {target(service):<22} {state}")
    return worst


def read_requests(
    path: Path,
) -> tuple[list[ingestion_pb2.IdentifyRequest], list[ingestion_pb2.TrackRequest], list[int]]:
    """Identify calls, events (lines with an ``event``), and the file line of each, identify
    calls first."""
    identifies, tracks = [], []
    identify_lines: list[int] = []
    track_lines: list[int] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            if "event" in raw:
                tracks.append(json_format.ParseDict(raw, ingestion_pb2.TrackRequest()))
                track_lines.append(number)
            else:
                identifies.append(json_format.ParseDict(raw, ingestion_pb2.IdentifyRequest()))
                identify_lines.append(number)
        except (json.JSONDecodeError, json_format.ParseError) as error:
            message = f"{path}:{number}: not an IdentifyRequest or TrackRequest: {error}"
            raise SystemExit(message) from None
    return identifies, tracks, identify_lines + track_lines


def ingest(path: Path) -> ingestion_pb2.BulkResponse:
    """Identify calls first (events name their customers by identifiers), then events.

    Each rejected message's ``index`` is its line in the file, from 1.
    """
    identifies, tracks, lines = read_requests(path)
    total = ingestion_pb2.BulkResponse()
    with channel("ingestion") as open_channel:
        stub = ingestion_pb2_grpc.IngestionServiceStub(open_channel)
        for method, requests, offset in (
            (stub.IdentifyStream, identifies, 0),
            (stub.TrackStream, tracks, len(identifies)),
        ):
            # One stream reads at most MAX_STREAM_MESSAGES: a longer file goes in several.
            for start in range(0, len(requests), MAX_STREAM_MESSAGES):
                part = requests[start : start + MAX_STREAM_MESSAGES]
                reply = method(
                    iter(part), timeout=max(TIMEOUT_S, len(part) / 100), metadata=metadata()
                )
                total.accepted_count += reply.accepted_count
                total.duplicate_count += reply.duplicate_count
                total.rejected_count += reply.rejected_count
                for rejected in reply.rejected:
                    rejected.index = lines[rejected.index + offset + start]
                    total.rejected.append(rejected)
    return total


def cmd_ingest(args: argparse.Namespace) -> int:
    reply = ingest(Path(args.file))
    print(
        f"accepted {reply.accepted_count}, duplicates {reply.duplicate_count}, "
        f"rejected {reply.rejected_count}"
    )
    for rejected in reply.rejected:
        fields = ", ".join(f"{v.field}: {v.description}" for v in rejected.field_violations)
        print(f"  line {rejected.index}: {rejected.reason} {fields}".rstrip())
    return 1 if reply.rejected_count else 0


def cmd_profile_get(args: argparse.Namespace) -> int:
    request = profile_pb2.GetProfileRequest()
    if args.id:
        request.customer_id = args.id
    else:
        kind, value = next(
            (k, v)
            for k, v in (("EMAIL", args.email), ("PHONE", args.phone), ("LOYALTY_CARD", args.card))
            if v
        )
        request.identifier.type = common_pb2.IdentifierType.Value(f"IDENTIFIER_TYPE_{kind}")
        request.identifier.value = value
    with channel("profile") as open_channel:
        try:
            profile = profile_pb2_grpc.ProfileServiceStub(open_channel).GetProfile(
                request, timeout=TIMEOUT_S, metadata=metadata()
            )
        except grpc.RpcError as error:
            return report_rpc_error(error)
    print(json_format.MessageToJson(profile, ensure_ascii=False, indent=2))
    return 0


def cmd_record_status(args: argparse.Namespace) -> int:
    with channel("ingestion") as open_channel:
        try:
            status = ingestion_pb2_grpc.IngestionServiceStub(open_channel).GetRecordStatus(
                ingestion_pb2.GetRecordStatusRequest(
                    record_ref=common_pb2.RecordRef(source=args.source, message_id=args.message_id)
                ),
                timeout=TIMEOUT_S,
                metadata=metadata(),
            )
        except grpc.RpcError as error:
            return report_rpc_error(error)
    print(json_format.MessageToJson(status, indent=2))
    return 0


def _suite_database(admin_url: str) -> str:
    """SVOD_DATABASE_URL as given; else a database ``svod`` on the server we found."""
    from svod_cli.suite import create_database

    if os.environ.get("SVOD_DATABASE_URL"):
        return admin_url
    return create_database(admin_url, "svod")


def cmd_db_prepare(_: argparse.Namespace) -> int:
    from svod_cli.postgres import ensure_postgres
    from svod_cli.suite import TOP, prepare_database

    admin, _cluster = ensure_postgres(TOP)
    database = _suite_database(admin)
    for service, url in prepare_database(database).items():
        print(f"{service:<13} migrated ({url.split('@')[-1]})")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from svod_cli.postgres import PostgresMissing, ensure_postgres
    from svod_cli.suite import TOP, ProcessSuite, prepare_database

    try:
        admin, cluster = ensure_postgres(TOP)
    except PostgresMissing as missing:
        print(missing, file=sys.stderr)
        return 2
    database = _suite_database(admin)
    print(f"Postgres: {database.split('@')[-1]}")
    prepare_database(database)
    # Per-request log lines would bury the instructions; SVOD_LOG_LEVEL=INFO brings them back.
    os.environ.setdefault("SVOD_LOG_LEVEL", "WARNING")
    suite = ProcessSuite(database).start()
    try:
        print("All five services are SERVING:")
        for service in SERVICES:
            print(f"  {service:<13} {suite.target(service)}")
        if args.demo:
            load_demo()
        print_howto()
        while all(p.poll() is None for p in suite.processes.values()):
            time.sleep(0.5)
        print("a service exited; stopping the suite", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping (draining in-flight requests) ...")
        return 0
    finally:
        codes = suite.stop()
        print("stopped: " + ", ".join(f"{s}={c}" for s, c in codes.items()))
        if cluster is not None:
            cluster.stop()


def load_demo() -> None:
    reply = ingest(DEMO_FILE)
    print(
        f"demo data: {reply.accepted_count} records accepted, {reply.duplicate_count} already there"
    )
    with channel("ingestion") as open_channel:
        stub = ingestion_pb2_grpc.IngestionServiceStub(open_channel)
        deadline = time.monotonic() + 30
        for request in read_requests(DEMO_FILE)[0]:
            while time.monotonic() < deadline:
                status = stub.GetRecordStatus(
                    ingestion_pb2.GetRecordStatusRequest(record_ref=request.record_ref),
                    timeout=TIMEOUT_S,
                    metadata=metadata(),
                )
                if status.state != ingestion_pb2.RecordStatus.STATE_PENDING:
                    break
                time.sleep(0.1)
    print("demo data resolved into profiles")


def print_howto() -> None:
    print(
        """
Try:
  .venv/bin/svod status
  .venv/bin/svod profile get --phone '+7 916 123-45-67'
  .venv/bin/svod profile get --email maria.smirnova@example.ru
  grpcurl -plaintext 127.0.0.1:50053 list            (server reflection is on)
Press Ctrl-C to stop.
"""
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="svod", description="Svod customer data platform")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start all services")
    run.add_argument("--demo", action="store_true", help="load the demo data set")
    run.set_defaults(func=cmd_run)
    sub.add_parser("status", help="health of each service").set_defaults(func=cmd_status)
    ing = sub.add_parser("ingest", help="send identify calls from a JSONL file")
    ing.add_argument("file")
    ing.set_defaults(func=cmd_ingest)
    profile = sub.add_parser("profile").add_subparsers(dest="profile_command", required=True)
    get = profile.add_parser("get", help="show one profile")
    key = get.add_mutually_exclusive_group(required=True)
    key.add_argument("--id")
    key.add_argument("--email")
    key.add_argument("--phone")
    key.add_argument("--card")
    get.set_defaults(func=cmd_profile_get)
    record = sub.add_parser("record").add_subparsers(dest="record_command", required=True)
    status = record.add_parser("status", help="how far a message has got")
    status.add_argument("--source", required=True)
    status.add_argument("--message-id", required=True)
    status.set_defaults(func=cmd_record_status)
    add_quality_commands(sub)
    add_destination_commands(sub)
    add_campaign_commands(sub)
    add_keys_commands(sub)
    add_unattributed_commands(sub)
    identity = sub.add_parser("identity").add_subparsers(dest="identity_command", required=True)
    export = identity.add_parser(
        "export-mapping", help="every record -> its customer now, as CSV (audit)"
    )
    export.add_argument("--output", help="file to write (default: standard output)")
    export.set_defaults(func=cmd_identity_export)
    db = sub.add_parser("db").add_subparsers(dest="db_command", required=True)
    db.add_parser("prepare", help="schemas, roles, migrations").set_defaults(func=cmd_db_prepare)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
