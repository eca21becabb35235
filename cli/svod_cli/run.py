"""``svod run`` (the whole suite, supervised) and ``svod db prepare``.

svod run [--demo] [--log-dir DIR]
svod db prepare

``svod run`` finds Postgres (``SVOD_DATABASE_URL``, else 127.0.0.1:5432, else a private
cluster under ``.data/``), prepares every schema, starts the five services as processes (see
``svod_cli.supervisor`` for what it promises on signals, dead services and taken ports),
optionally loads the demo data set, and prints how to look at it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import grpc

from svod.ingestion.v1 import ingestion_pb2_grpc
from svod_cli.common import EXIT_OK, EXIT_REFUSED, TIMEOUT_S, channel, metadata
from svod_cli.ingest import read_requests, wait_delivered
from svod_cli.supervisor import Stopping, SuiteFailed, SuitePlan, Supervisor, summary
from svod_runtime.config import SERVICES

TOP = Path(__file__).resolve().parents[2]
DEMO_FILE = Path(__file__).resolve().parent / "data" / "demo.jsonl"


def suite_database(admin_url: str) -> str:
    """SVOD_DATABASE_URL as given; else a database ``svod`` on the server we found."""
    from svod_cli.suite import create_database

    if os.environ.get("SVOD_DATABASE_URL"):
        return admin_url
    return create_database(admin_url, "svod")


def cmd_db_prepare(_: argparse.Namespace) -> int:
    from svod_cli.postgres import PostgresMissing, ensure_postgres
    from svod_cli.suite import prepare_database

    try:
        admin, _cluster = ensure_postgres(TOP)
    except PostgresMissing as missing:
        print(f"svod: {missing}", file=sys.stderr)
        return EXIT_REFUSED
    database = suite_database(admin)
    for service, url in prepare_database(database).items():
        print(f"{service:<13} migrated ({url.split('@')[-1]})")
    return EXIT_OK


def load_demo() -> None:
    """Sends the demo data set one message at a time (so each message's trace can be found
    with ``svod trace record``) and waits until it is resolved into profiles; a failure is
    reported, and the suite keeps running."""
    requests = read_requests(DEMO_FILE)
    accepted = duplicates = 0
    try:
        with channel("ingestion") as open_channel:
            stub = ingestion_pb2_grpc.IngestionServiceStub(open_channel)
            for method, messages in (
                (stub.Identify, requests.identifies),
                (stub.Track, requests.tracks),
            ):
                for message in messages:
                    reply = method(message, timeout=TIMEOUT_S, metadata=metadata())
                    duplicates += reply.duplicate
                    accepted += not reply.duplicate
        print(f"demo data: {accepted} records accepted, {duplicates} already there")
        delivery = wait_delivered(requests.refs, timeout_s=60)
    except grpc.RpcError as error:
        code = error.code().name
        print(f"demo data not loaded: {code}: {error.details()}")
        return
    if delivery.failed or delivery.pending:
        print(
            f"demo data: {len(delivery.failed)} failed, {len(delivery.pending)} still pending "
            "(see `svod record status`)"
        )
    else:
        print("demo data resolved into profiles")


def print_howto(plan: SuitePlan, traces_file: str) -> None:
    cli = os.path.relpath(Path(sys.executable).parent / "svod")
    profile = plan.endpoints["profile"].target
    lines = [
        "",
        "Try:",
        f"  {cli} status",
        f"  {cli} profile get --phone '+7 916 123-45-67'",
        f"  {cli} profile get --email maria.smirnova@example.ru",
        f"  {cli} trace record --source webshop --message-id web-0001",
        f"  grpcurl -plaintext {profile} list            (server reflection is on)",
    ]
    if traces_file:
        lines.append(f"Spans go to {traces_file} (`svod trace show TRACE_ID`).")
    lines.append("Press Ctrl-C (or send SIGTERM) to stop.")
    print("\n".join(lines), flush=True)


def shown_path(path: Path) -> str:
    """Relative to the working directory when inside it, else absolute."""
    resolved = path.resolve()
    return (
        str(resolved.relative_to(Path.cwd()))
        if resolved.is_relative_to(Path.cwd())
        else str(resolved)
    )


def rotate(path: str) -> None:
    """Keeps one previous traces file, so a new run starts with an empty one."""
    if path and os.path.exists(path):
        os.replace(path, path + ".previous")


def cmd_run(args: argparse.Namespace) -> int:  # noqa: C901
    from svod_cli.postgres import PostgresMissing, ensure_postgres
    from svod_cli.suite import prepare_database

    plan = SuitePlan.from_env(os.environ)
    taken = plan.taken_ports()
    if taken:
        for line in taken:
            print(f"svod: {line}", file=sys.stderr)
        print(
            "svod: nothing was started. Is another suite running (`svod status`)? Choose free "
            "ports with the variables named above.",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    supervisor = Supervisor(plan, Path(args.log_dir))
    supervisor.install_signal_handlers()
    started = time.monotonic()
    cluster = None
    failed = False
    cause = "stopped"
    try:
        admin, cluster = ensure_postgres(TOP)
        database = suite_database(admin)
        print(f"Postgres: {database.split('@')[-1]}", flush=True)
        prepare_database(database)
        # Per-request log lines would bury everything else; SVOD_LOG_LEVEL=INFO brings them back.
        os.environ.setdefault("SVOD_LOG_LEVEL", "WARNING")
        traces_file = os.environ.get("SVOD_TRACES_FILE", "")
        rotate(traces_file)
        supervisor.env = dict(os.environ)
        supervisor.start(database)
        print("All five services are SERVING:")
        for service in SERVICES:
            end = plan.endpoints[service]
            metrics = f"metrics :{end.metrics_port}" if end.metrics_port else "no metrics"
            log = shown_path(supervisor.children[service].log_path)
            print(f"  {service:<13} {end.target:<22} {metrics:<14} log {log}")
        if args.demo:
            load_demo()
        print_howto(plan, traces_file)
        dead = supervisor.watch()
        if dead is not None:
            failed = True
            cause = f"{dead.service} stopped unexpectedly"
            print(f"svod: {dead.describe_exit()}", file=sys.stderr)
            for line in supervisor.log_tail(dead):
                print(f"  | {line}", file=sys.stderr)
        else:
            cause = f"{supervisor.signal_received} received"
    except Stopping as stop:
        cause = f"{stop.signal_name} received while starting"
    except SuiteFailed as failure:
        failed = True
        cause = "the suite could not start"
        print(f"svod: {failure}", file=sys.stderr)
        dead = supervisor.first_dead()
        if dead is not None:
            for line in supervisor.log_tail(dead):
                print(f"  | {line}", file=sys.stderr)
    except PostgresMissing as missing:
        failed = True
        cause = "no PostgreSQL"
        print(f"svod: {missing}", file=sys.stderr)
    finally:
        codes = supervisor.stop()
        if cluster is not None:
            cluster.stop()
    line, clean = summary(codes, time.monotonic() - started, cause)
    print(line, flush=True)
    return EXIT_OK if clean and not failed else EXIT_REFUSED


def add_run_commands(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``svod run`` and ``svod db prepare``."""
    run = subparsers.add_parser("run", help="start all five services (Ctrl-C stops them)")
    run.add_argument("--demo", action="store_true", help="load the demo data set")
    run.add_argument(
        "--log-dir",
        default=str(TOP / ".data" / "logs"),
        help="where each service's log goes (default .data/logs)",
    )
    run.set_defaults(func=cmd_run)
    db = subparsers.add_parser("db", help="the database").add_subparsers(
        dest="db_command", required=True
    )
    db.add_parser("prepare", help="schemas, roles, migrations").set_defaults(func=cmd_db_prepare)
