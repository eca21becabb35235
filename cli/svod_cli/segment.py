"""``svod segment ...``: segments from the command line.

svod segment create ID --rule RULE.json [--name N] [--description D]
svod segment create ID --builtin rfm|abc|temperature|behavior_type [--param KEY=VALUE ...]
svod segment list | get ID | delete ID
svod segment preview --rule RULE.json [--sample N]   (count and sample, nothing saved)
svod segment members ID [--limit N]
svod segment export ID [--consent email] [--output FILE]   (CSV; --json: JSON lines)
svod segment watch [ID ...] [--from TOKEN] [--count N] [--timeout S]
svod segment rfm [--segment-id rfm] [--create]     (RFM classes, their sizes and cut-offs)
svod segment customer CUSTOMER_ID                   (the segments a customer is in)
svod segment recompute [ID ...]

A rule file holds a RuleNode as JSON, e.g.
{"all": {"nodes": [{"field": {"field": "city", "operator": "eq", "values": ["Москва"]}},
                   {"behavior": {"eventType": "order_placed", "aggregate": "count",
                                 "comparison": "ge", "threshold": 2, "windowDays": 90}}]}}
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import sys
import time
from typing import Any

import grpc

from svod.segmentation.v1 import segmentation_pb2, segmentation_pb2_grpc
from svod_cli.common import (
    EXIT_OK,
    UsageError,
    add_json_flag,
    call,
    channel,
    message_json,
    metadata,
    pages,
    print_json,
    print_table,
    read_json_message,
    refusals_reported,
    timestamp_text,
)

Stub = segmentation_pb2_grpc.SegmentationServiceStub
BUILTINS = ("rfm", "abc", "temperature", "behavior_type")
RFM_CLASSES = (
    "champions",
    "loyal",
    "new_customers",
    "potential_loyalists",
    "promising",
    "cant_lose",
    "at_risk",
    "hibernating",
    "lost",
)
EXPORT_TIMEOUT_S = 3600.0


def _parameters(items: list[str] | None) -> dict[str, str]:
    parameters = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--param takes KEY=VALUE, not {item!r}")
        parameters[key] = value
    return parameters


def segment_rows(segments: list[segmentation_pb2.Segment]) -> list[tuple[Any, ...]]:
    return [
        (
            s.segment_id,
            s.display_name,
            s.builtin or "rule",
            s.member_count,
            s.version,
            timestamp_text(s.update_time),
        )
        for s in segments
    ]


SEGMENT_HEADERS = ("segment", "name", "kind", "members", "version", "updated")


def _show(segment: segmentation_pb2.Segment, as_json: bool) -> None:
    if as_json:
        print_json(segment)
        return
    print_table(SEGMENT_HEADERS, segment_rows([segment]))
    if segment.description:
        print(f"\n{segment.description}")
    if segment.builtin_state:
        print(f"\nstate: {segment.builtin_state}")


@refusals_reported
def cmd_create(args: argparse.Namespace) -> int:
    segment = segmentation_pb2.Segment(
        segment_id=args.segment_id,
        display_name=args.name or "",
        description=args.description or "",
    )
    if args.rule:
        segment.rule.CopyFrom(read_json_message(args.rule, segmentation_pb2.RuleNode()))
    else:
        segment.builtin = args.builtin
        segment.builtin_parameters.update(_parameters(args.param))
    created = call(
        "segmentation",
        Stub,
        "CreateSegment",
        segmentation_pb2.CreateSegmentRequest(segment=segment),
        timeout=600.0,
    )
    _show(created, args.json)
    return EXIT_OK


@refusals_reported
def cmd_list(args: argparse.Namespace) -> int:
    def fetch(token: str) -> tuple[Any, str]:
        reply = call(
            "segmentation",
            Stub,
            "ListSegments",
            segmentation_pb2.ListSegmentsRequest(page_size=100, page_token=token),
        )
        return reply.segments, reply.next_page_token

    segments = list(pages(fetch))
    if args.json:
        print_json([message_json(s) for s in segments])
    else:
        print_table(SEGMENT_HEADERS, segment_rows(segments))
    return EXIT_OK


@refusals_reported
def cmd_get(args: argparse.Namespace) -> int:
    segment = call(
        "segmentation",
        Stub,
        "GetSegment",
        segmentation_pb2.GetSegmentRequest(segment_id=args.segment_id),
    )
    _show(segment, args.json)
    return EXIT_OK


@refusals_reported
def cmd_delete(args: argparse.Namespace) -> int:
    call(
        "segmentation",
        Stub,
        "DeleteSegment",
        segmentation_pb2.DeleteSegmentRequest(segment_id=args.segment_id),
        timeout=600.0,
    )
    print(f"deleted {args.segment_id}")
    return EXIT_OK


@refusals_reported
def cmd_preview(args: argparse.Namespace) -> int:
    rule = read_json_message(args.rule, segmentation_pb2.RuleNode())
    reply = call(
        "segmentation",
        Stub,
        "PreviewSegment",
        segmentation_pb2.PreviewSegmentRequest(rule=rule, sample_size=args.sample),
        timeout=600.0,
    )
    if args.json:
        print_json(reply)
        return EXIT_OK
    print(f"{reply.count} members")
    for customer_id in reply.sample_customer_ids:
        print(f"  {customer_id}")
    return EXIT_OK


@refusals_reported
def cmd_members(args: argparse.Namespace) -> int:
    def fetch(token: str) -> tuple[Any, str]:
        reply = call(
            "segmentation",
            Stub,
            "ListMembers",
            segmentation_pb2.ListMembersRequest(
                segment_id=args.segment_id, page_size=min(args.limit, 1000), page_token=token
            ),
        )
        return reply.members, reply.next_page_token

    members = list(pages(fetch, args.limit))
    if args.json:
        print_json([message_json(m) for m in members])
    else:
        print_table(
            ("customer", "label", "since"),
            [(m.customer_id, m.label, timestamp_text(m.enter_time)) for m in members],
        )
    return EXIT_OK


@refusals_reported
def cmd_export(args: argparse.Namespace) -> int:
    out = open(args.output, "w", newline="", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    count = 0
    try:
        writer = csv.writer(out)
        if not args.json:
            writer.writerow(("customer_id", "label", "enter_time"))
        with channel("segmentation") as open_channel:
            for member in Stub(open_channel).ExportMembers(
                segmentation_pb2.ExportMembersRequest(
                    segment_id=args.segment_id, consent_channel=args.consent or ""
                ),
                metadata=metadata(),
                timeout=EXPORT_TIMEOUT_S,
            ):
                if args.json:
                    out.write(json.dumps(message_json(member), ensure_ascii=False) + "\n")
                else:
                    writer.writerow(
                        (
                            member.customer_id,
                            member.label,
                            member.enter_time.ToJsonString() if member.enter_time.seconds else "",
                        )
                    )
                count += 1
    finally:
        if args.output:
            out.close()
    print(f"{count} members", file=sys.stderr)
    return EXIT_OK


@refusals_reported
def cmd_watch(args: argparse.Namespace) -> int:
    """Prints enter/exit events as they happen; ends after ``--count`` events, ``--timeout``
    seconds or Ctrl-C. The last line for people names the token to resume from."""
    request = segmentation_pb2.WatchMembershipsRequest(
        segment_ids=args.segment_ids, resume_token=args.resume_from or ""
    )
    seen, last_token = 0, ""
    with channel("segmentation") as open_channel:
        stream = Stub(open_channel).WatchMemberships(
            request, metadata=metadata(), timeout=args.timeout
        )
        try:
            for event in stream:
                seen += 1
                last_token = event.resume_token
                if args.json:
                    print(json.dumps(message_json(event), ensure_ascii=False), flush=True)
                else:
                    kind = "entered" if event.kind == event.KIND_ENTERED else "exited"
                    label = f" ({event.label})" if event.label else ""
                    print(
                        f"{timestamp_text(event.time)}  {event.customer_id} {kind} "
                        f"{event.segment_id}{label}",
                        flush=True,
                    )
                if args.count and seen >= args.count:
                    stream.cancel()
                    break
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                raise
        except KeyboardInterrupt:
            stream.cancel()
    if last_token and not args.json:
        print(f"{seen} events; resume with --from {last_token}", file=sys.stderr)
    return EXIT_OK


@refusals_reported
def cmd_rfm(args: argparse.Namespace) -> int:
    try:
        segment = call(
            "segmentation",
            Stub,
            "GetSegment",
            segmentation_pb2.GetSegmentRequest(segment_id=args.segment_id),
        )
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.NOT_FOUND or not args.create:
            raise
        segment = call(
            "segmentation",
            Stub,
            "CreateSegment",
            segmentation_pb2.CreateSegmentRequest(
                segment=segmentation_pb2.Segment(
                    segment_id=args.segment_id, display_name="RFM", builtin="rfm"
                )
            ),
            timeout=600.0,
        )
    if segment.builtin != "rfm":
        raise UsageError(f"{args.segment_id} is not an RFM segment ({segment.builtin or 'rule'})")
    counts: collections.Counter[str] = collections.Counter()
    with channel("segmentation") as open_channel:
        for member in Stub(open_channel).ExportMembers(
            segmentation_pb2.ExportMembersRequest(segment_id=args.segment_id),
            metadata=metadata(),
            timeout=EXPORT_TIMEOUT_S,
        ):
            counts[member.label] += 1
    total = sum(counts.values())
    state = json.loads(segment.builtin_state) if segment.builtin_state else {}
    if args.json:
        print_json({"segment_id": args.segment_id, "classes": dict(counts), "state": state})
        return EXIT_OK
    labels = [c for c in RFM_CLASSES if c in counts] + sorted(set(counts) - set(RFM_CLASSES))
    print_table(
        ("class", "customers", "share"),
        [(c, counts[c], f"{counts[c] / total:.1%}") for c in labels] + [("total", total, "")],
    )
    if state:
        print(f"\ncut-offs: {json.dumps(state, ensure_ascii=False)}")
    return EXIT_OK


@refusals_reported
def cmd_customer(args: argparse.Namespace) -> int:
    reply = call(
        "segmentation",
        Stub,
        "GetCustomerSegments",
        segmentation_pb2.GetCustomerSegmentsRequest(customer_id=args.customer_id),
    )
    if args.json:
        print_json(reply)
    else:
        print_table(
            ("segment", "label", "since"),
            [(m.segment_id, m.label, timestamp_text(m.enter_time)) for m in reply.memberships],
        )
    return EXIT_OK


@refusals_reported
def cmd_recompute(args: argparse.Namespace) -> int:
    started = time.monotonic()
    reply = call(
        "segmentation",
        Stub,
        "RecomputeSegments",
        segmentation_pb2.RecomputeSegmentsRequest(segment_ids=args.segment_ids),
        timeout=EXPORT_TIMEOUT_S,
    )
    if args.json:
        print_json(reply)
    else:
        print(
            f"recomputed in {time.monotonic() - started:.1f} s: {reply.entered_count} entered, "
            f"{reply.exited_count} exited"
        )
    return EXIT_OK


def add_segment_commands(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``svod segment ...`` to the ``svod`` command's subparsers."""
    segment = subparsers.add_parser(
        "segment", help="segments: create, preview, members, export, watch, RFM"
    ).add_subparsers(dest="segment_command", required=True)

    create = segment.add_parser("create", help="a rule segment or a built-in")
    create.add_argument("segment_id")
    kind = create.add_mutually_exclusive_group(required=True)
    kind.add_argument("--rule", metavar="FILE", help="the rule (RuleNode) as JSON; `-`: stdin")
    kind.add_argument("--builtin", choices=BUILTINS)
    create.add_argument("--param", action="append", metavar="KEY=VALUE", help="built-in setting")
    create.add_argument("--name", help="display name")
    create.add_argument("--description")
    add_json_flag(create)
    create.set_defaults(func=cmd_create)

    listing = segment.add_parser("list", help="every segment with its size")
    add_json_flag(listing)
    listing.set_defaults(func=cmd_list)

    get = segment.add_parser("get", help="one segment")
    get.add_argument("segment_id")
    add_json_flag(get)
    get.set_defaults(func=cmd_get)

    delete = segment.add_parser("delete", help="delete a segment (its members exit)")
    delete.add_argument("segment_id")
    delete.set_defaults(func=cmd_delete)

    preview = segment.add_parser("preview", help="how many a rule would hold, nothing saved")
    preview.add_argument("--rule", metavar="FILE", required=True, help="RuleNode JSON; `-`: stdin")
    preview.add_argument("--sample", type=int, default=10, help="sample ids to show (<= 100)")
    add_json_flag(preview)
    preview.set_defaults(func=cmd_preview)

    members = segment.add_parser("members", help="a segment's members")
    members.add_argument("segment_id")
    members.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    add_json_flag(members)
    members.set_defaults(func=cmd_members)

    export = segment.add_parser("export", help="every member, as CSV (--json: JSON lines)")
    export.add_argument("segment_id")
    export.add_argument("--csv", action="store_true", help="CSV (the default)")
    export.add_argument("--consent", metavar="CHANNEL", help="only members opted in to it")
    export.add_argument("--output", "-o", help="file to write (default: standard output)")
    add_json_flag(export)
    export.set_defaults(func=cmd_export)

    watch = segment.add_parser("watch", help="enter/exit events as they happen")
    watch.add_argument("segment_ids", nargs="*", metavar="SEGMENT_ID", help="default: all")
    watch.add_argument("--from", dest="resume_from", metavar="TOKEN", help="resume token")
    watch.add_argument("--count", type=int, default=0, help="stop after this many events")
    watch.add_argument("--timeout", type=float, default=None, help="stop after this many seconds")
    add_json_flag(watch)
    watch.set_defaults(func=cmd_watch)

    rfm = segment.add_parser("rfm", help="RFM classes: how many customers each holds")
    rfm.add_argument("--segment-id", default="rfm", help="the RFM segment (default rfm)")
    rfm.add_argument("--create", action="store_true", help="create it when it does not exist")
    add_json_flag(rfm)
    rfm.set_defaults(func=cmd_rfm)

    customer = segment.add_parser("customer", help="the segments a customer is in")
    customer.add_argument("customer_id")
    add_json_flag(customer)
    customer.set_defaults(func=cmd_customer)

    recompute = segment.add_parser("recompute", help="recompute segments fully (all by default)")
    recompute.add_argument("segment_ids", nargs="*", metavar="SEGMENT_ID")
    add_json_flag(recompute)
    recompute.set_defaults(func=cmd_recompute)
