"""``svod deadletters ...``: messages a service's peers refused for good.

svod deadletters list --service S [--topic T] [--limit N] [--json]
svod deadletters show --service S ID [--json]
svod deadletters redrive --service S (ID ... | --topic T)

Ingestion, identity, profile and segmentation keep the announcements their peers refused
permanently, or failed after the attempt limit (SVOD_OUTBOX_MAX_ATTEMPTS), as dead letters.
``list`` prints them oldest first (id, topic, key, attempts, error, when); ``show`` one;
``redrive`` sends them again once the cause is fixed - the named ones, or every one of a topic;
receivers take them idempotently, so each has its effect exactly once. No payload is shown.
"""

from __future__ import annotations

import argparse
from typing import Any

from svod.common.v1 import common_pb2
from svod.identity.v1 import identity_pb2_grpc
from svod.ingestion.v1 import ingestion_pb2_grpc
from svod.profile.v1 import profile_pb2_grpc
from svod.segmentation.v1 import segmentation_pb2_grpc
from svod_cli.common import (
    EXIT_OK,
    UsageError,
    call,
    message_json,
    pages,
    print_json,
    print_table,
    refusals_reported,
    timestamp_text,
)

STUBS: dict[str, type] = {
    "ingestion": ingestion_pb2_grpc.IngestionServiceStub,
    "identity": identity_pb2_grpc.IdentityServiceStub,
    "profile": profile_pb2_grpc.ProfileServiceStub,
    "segmentation": segmentation_pb2_grpc.SegmentationServiceStub,
}
PAGE = 500


def _call(service: str, method: str, request: Any) -> Any:
    return call(service, STUBS[service], method, request)


@refusals_reported
def cmd_list(args: argparse.Namespace) -> int:
    total = 0

    def fetch(token: str) -> tuple[list[common_pb2.DeadLetter], str]:
        nonlocal total
        reply = _call(
            args.service,
            "ListDeadLetters",
            common_pb2.ListDeadLettersRequest(
                topic=args.topic or "", page_size=min(PAGE, max(1, args.limit)), page_token=token
            ),
        )
        total = reply.total_count
        return list(reply.dead_letters), reply.next_page_token

    found = list(pages(fetch, args.limit))
    if args.json:
        print_json({"total_count": total, "dead_letters": [message_json(d) for d in found]})
        return EXIT_OK
    print(f"dead letters of {args.service}: {total}")
    print_table(
        ("id", "topic", "key", "attempts", "failed", "error"),
        (
            (
                d.dead_letter_id,
                d.topic,
                d.key,
                d.attempts,
                timestamp_text(d.fail_time),
                d.last_error,
            )
            for d in found
        ),
    )
    if total > len(found):
        print(f"(showing {len(found)}; use --limit)")
    return EXIT_OK


@refusals_reported
def cmd_show(args: argparse.Namespace) -> int:
    dead = _call(
        args.service, "GetDeadLetter", common_pb2.GetDeadLetterRequest(dead_letter_id=args.id)
    )
    if args.json:
        print_json(dead)
        return EXIT_OK
    for name, value in (
        ("id", dead.dead_letter_id),
        ("topic", dead.topic),
        ("key", dead.key),
        ("attempts", dead.attempts),
        ("redrives", dead.redrive_count),
        ("created", timestamp_text(dead.create_time)),
        ("failed", timestamp_text(dead.fail_time)),
        ("error", dead.last_error),
    ):
        print(f"{name + ':':<10} {value}")
    return EXIT_OK


@refusals_reported
def cmd_redrive(args: argparse.Namespace) -> int:
    if not args.ids and not args.topic:
        raise UsageError("name dead letter ids, or --topic to send all of a topic again")
    reply = _call(
        args.service,
        "RedriveDeadLetters",
        common_pb2.RedriveDeadLettersRequest(dead_letter_ids=args.ids, topic=args.topic or ""),
    )
    print(f"{reply.redriven_count} dead letters of {args.service} sent again")
    return EXIT_OK


def add_deadletters_commands(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``svod deadletters ...`` to the ``svod`` command's subparsers."""
    group = subparsers.add_parser(
        "deadletters", help="messages refused for good: list, show, send again"
    ).add_subparsers(dest="deadletters_command", required=True)

    def service_arg(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--service", required=True, choices=sorted(STUBS))

    listing = group.add_parser("list", help="dead letters, oldest first")
    service_arg(listing)
    listing.add_argument("--topic", help="only this topic (e.g. record.track)")
    listing.add_argument("--limit", type=int, default=100, help="dead letters to show (100)")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=cmd_list)
    show = group.add_parser("show", help="one dead letter")
    service_arg(show)
    show.add_argument("id", type=int)
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=cmd_show)
    redrive = group.add_parser("redrive", help="send dead letters again (after a fix)")
    service_arg(redrive)
    redrive.add_argument("ids", type=int, nargs="*", help="dead letter ids")
    redrive.add_argument("--topic", help="every dead letter of this topic (or only of the ids)")
    redrive.set_defaults(func=cmd_redrive)
