"""``svod unattributed ...``: events held because their identifiers name no single customer.

svod unattributed list [--issue ISSUE ...] [--waiting] [--limit N] [--json]
svod unattributed recheck (--all | --customer ID [--customer ID ...])

``list`` prints the counts per issue, then the held events oldest first (record, event type,
issue, candidate customers, looks taken, next look); ``--waiting`` adds the events still
waiting for identity or for their customer within the grace period. ``recheck`` asks ingestion
to look at them again now (after fixing rules or merging customers by hand). Nothing personal
is shown: records, customer ids and issues only.
"""

from __future__ import annotations

import argparse

import grpc

from svod.common.v1 import common_pb2
from svod.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from svod_cli.common import (
    EXIT_OK,
    TIMEOUT_S,
    channel,
    message_json,
    metadata,
    print_json,
    print_table,
    report_rpc_error,
)

_ISSUES = {
    name.removeprefix("ATTRIBUTION_ISSUE_").lower(): number
    for name, number in ingestion_pb2.AttributionIssue.items()
    if number != 0
}
_WAITING = ("identity_unavailable", "awaiting_customer")
PAGE = 1_000


def _issue_name(number: int) -> str:
    return (
        ingestion_pb2.AttributionIssue.Name(ingestion_pb2.AttributionIssue.ValueType(number))
        .removeprefix("ATTRIBUTION_ISSUE_")
        .lower()
    )


def _time(ts) -> str:
    return ts.ToJsonString() if ts.seconds else ""


def cmd_list(args: argparse.Namespace) -> int:
    issues = [_ISSUES[name] for name in args.issue or ()]
    if args.waiting:
        issues += [_ISSUES[name] for name in _ISSUES if not args.issue or name in _WAITING]
    events: list[ingestion_pb2.UnattributedEvent] = []
    token = ""
    try:
        with channel("ingestion") as open_channel:
            stub = ingestion_pb2_grpc.IngestionServiceStub(open_channel)
            while True:
                reply = stub.ListUnattributedEvents(
                    ingestion_pb2.ListUnattributedEventsRequest(
                        page_size=max(1, min(PAGE, args.limit - len(events))),
                        page_token=token,
                        issues=sorted(set(issues)),
                    ),
                    timeout=TIMEOUT_S,
                    metadata=metadata(),
                )
                events += reply.events
                token = reply.next_page_token
                if not token or len(events) >= args.limit:
                    break
    except grpc.RpcError as error:
        return report_rpc_error(error)
    counts = {_issue_name(c.issue): c.count for c in reply.counts}
    if args.json:
        print_json(
            {
                "counts": counts,
                "unattributed_count": reply.unattributed_count,
                "events": [message_json(e) for e in events],
                "more": bool(token),
            }
        )
        return EXIT_OK
    print(f"unattributed: {reply.unattributed_count}")
    for name, count in counts.items():
        print(f"  {name}: {count}")
    print()
    print_table(
        ("source", "message_id", "event", "issue", "candidates", "checks", "received", "next"),
        (
            (
                e.record_ref.source,
                e.record_ref.message_id,
                common_pb2.EventType.Name(e.event_type).removeprefix("EVENT_TYPE_").lower(),
                _issue_name(e.issue),
                ",".join(e.candidate_customer_ids),
                e.checks,
                _time(e.received_time),
                _time(e.next_check_time),
            )
            for e in events
        ),
    )
    if token:
        print(f"(more than {len(events)}; use --limit)")
    return EXIT_OK


def cmd_recheck(args: argparse.Namespace) -> int:
    try:
        with channel("ingestion") as open_channel:
            reply = ingestion_pb2_grpc.IngestionServiceStub(open_channel).RecheckUnattributedEvents(
                ingestion_pb2.RecheckUnattributedEventsRequest(
                    customer_ids=args.customer or [], all=args.all
                ),
                timeout=TIMEOUT_S,
                metadata=metadata(),
            )
    except grpc.RpcError as error:
        return report_rpc_error(error)
    print(f"{reply.scheduled_count} events scheduled for a look now")
    return EXIT_OK


def add_unattributed_commands(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``svod unattributed ...`` to the ``svod`` command's subparsers."""
    group = subparsers.add_parser(
        "unattributed", help="events whose identifiers name no single customer"
    ).add_subparsers(dest="unattributed_command", required=True)
    listing = group.add_parser("list", help="counts per issue and the held events")
    listing.add_argument("--issue", action="append", choices=sorted(_ISSUES), help="only these")
    listing.add_argument(
        "--waiting", action="store_true", help="also events still waiting for their customer"
    )
    listing.add_argument("--limit", type=int, default=100, help="events to show (default 100)")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=cmd_list)
    recheck = group.add_parser("recheck", help="look at held events again now")
    which = recheck.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every held event")
    which.add_argument("--customer", action="append", help="events that may be this customer's")
    recheck.set_defaults(func=cmd_recheck)
