"""``svod destination ...``: where segments go (files, webhooks, ad audiences) and how.

svod destination create ID --webhook URL --consent sms [--secret S] [--max-attempts N]
svod destination create ID --file csv|jsonl --consent email
svod destination create ID --ad-audience vk_ads|yandex_audiences|meta --consent CHANNEL
svod destination list | get ID | delete ID
svod destination bind ID --segment SEG [--live | --every SECONDS]
svod destination bindings [--segment SEG] [--destination ID] | unbind BINDING
svod destination sync BINDING [--wait]           a full sync now
svod destination deliveries ID [--dead] [--json]
svod destination redrive ID [DELIVERY ...]       dead letters sent again (all when none named)

Talks to the segmentation service (``SVOD_SEGMENTATION_TARGET``). A webhook's generated
secret is printed once, on create.
"""

from __future__ import annotations

import argparse
import time

import grpc
from google.protobuf.message import Message

from svod.segmentation.v1 import segmentation_pb2 as pb
from svod.segmentation.v1 import segmentation_pb2_grpc
from svod_cli.common import (
    EXIT_OK,
    EXIT_REFUSED,
    TIMEOUT_S,
    channel,
    metadata,
    print_json,
    print_table,
    report_rpc_error,
)

FORMATS = {"csv": pb.FileSettings.FORMAT_CSV, "jsonl": pb.FileSettings.FORMAT_JSONL}
PLATFORMS = {
    "vk_ads": pb.AdAudienceSettings.PLATFORM_VK_ADS,
    "yandex_audiences": pb.AdAudienceSettings.PLATFORM_YANDEX_AUDIENCES,
    "meta": pb.AdAudienceSettings.PLATFORM_META,
}
WAIT_S = 600.0


def _call(method: str, request: Message) -> Message:
    with channel("segmentation") as open_channel:
        stub = segmentation_pb2_grpc.SegmentationServiceStub(open_channel)
        return getattr(stub, method)(request, timeout=TIMEOUT_S, metadata=metadata())


def _run(method: str, request: Message) -> int:
    try:
        print_json(_call(method, request))
    except grpc.RpcError as error:
        return report_rpc_error(error)
    return EXIT_OK


def cmd_create(args: argparse.Namespace) -> int:
    destination = pb.Destination(
        destination_id=args.id, display_name=args.name or "", consent_channel=args.consent
    )
    if args.webhook:
        destination.kind = pb.Destination.KIND_WEBHOOK
        destination.webhook.CopyFrom(
            pb.WebhookSettings(
                url=args.webhook, secret=args.secret or "", max_attempts=args.max_attempts
            )
        )
    elif args.file:
        destination.kind = pb.Destination.KIND_FILE
        destination.file.format = FORMATS[args.file]
    else:
        destination.kind = pb.Destination.KIND_AD_AUDIENCE
        destination.ad_audience.platform = PLATFORMS[args.ad_audience]
    return _run("CreateDestination", pb.CreateDestinationRequest(destination=destination))


def cmd_list(args: argparse.Namespace) -> int:
    try:
        found: list[pb.Destination] = []
        token = ""
        while True:
            page = _call("ListDestinations", pb.ListDestinationsRequest(page_token=token))
            found.extend(page.destinations)  # type: ignore[attr-defined]
            token = page.next_page_token  # type: ignore[attr-defined]
            if not token:
                break
    except grpc.RpcError as error:
        return report_rpc_error(error)
    kinds = {
        v.number: v.name.removeprefix("KIND_").lower()
        for v in pb.Destination.Kind.DESCRIPTOR.values
    }
    print_table(
        ("destination", "kind", "consent", "where"),
        (
            (
                d.destination_id,
                kinds[d.kind],
                d.consent_channel,
                d.webhook.url
                or pb.FileSettings.Format.Name(d.file.format).removeprefix("FORMAT_").lower()
                if d.kind != pb.Destination.KIND_AD_AUDIENCE
                else pb.AdAudienceSettings.Platform.Name(d.ad_audience.platform)
                .removeprefix("PLATFORM_")
                .lower(),
            )
            for d in found
        ),
    )
    return EXIT_OK


def cmd_get(args: argparse.Namespace) -> int:
    return _run("GetDestination", pb.GetDestinationRequest(destination_id=args.id))


def cmd_delete(args: argparse.Namespace) -> int:
    return _run("DeleteDestination", pb.DeleteDestinationRequest(destination_id=args.id))


def cmd_bind(args: argparse.Namespace) -> int:
    binding = pb.Binding(
        segment_id=args.segment,
        destination_id=args.id,
        mode=pb.Binding.MODE_LIVE if args.live else pb.Binding.MODE_FULL,
        schedule_seconds=args.every or 0,
    )
    return _run("CreateBinding", pb.CreateBindingRequest(binding=binding))


def cmd_bindings(args: argparse.Namespace) -> int:
    try:
        reply = _call(
            "ListBindings",
            pb.ListBindingsRequest(
                segment_id=args.segment or "", destination_id=args.destination or ""
            ),
        )
    except grpc.RpcError as error:
        return report_rpc_error(error)
    print_table(
        ("binding", "segment", "destination", "mode", "every_s", "held"),
        (
            (
                b.binding_id,
                b.segment_id,
                b.destination_id,
                pb.Binding.Mode.Name(b.mode).removeprefix("MODE_").lower(),
                b.schedule_seconds or "",
                b.synced_count,
            )
            for b in reply.bindings  # type: ignore[attr-defined]
        ),
    )
    return EXIT_OK


def cmd_unbind(args: argparse.Namespace) -> int:
    return _run("DeleteBinding", pb.DeleteBindingRequest(binding_id=args.binding))


def cmd_sync(args: argparse.Namespace) -> int:
    try:
        sync = _call("StartSync", pb.StartSyncRequest(binding_id=args.binding))
        deadline = time.monotonic() + WAIT_S
        while args.wait and sync.state == pb.Sync.STATE_RUNNING and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.5)
            sync = _call("GetSync", pb.GetSyncRequest(sync_id=sync.sync_id))  # type: ignore[attr-defined]
    except grpc.RpcError as error:
        return report_rpc_error(error)
    print_json(sync)
    return EXIT_REFUSED if sync.state == pb.Sync.STATE_FAILED else EXIT_OK  # type: ignore[attr-defined]


def cmd_deliveries(args: argparse.Namespace) -> int:
    state = pb.Delivery.STATE_DEAD_LETTER if args.dead else pb.Delivery.STATE_UNSPECIFIED
    try:
        reply = _call(
            "ListDeliveries",
            pb.ListDeliveriesRequest(destination_id=args.id, state=state, page_size=args.limit),
        )
    except grpc.RpcError as error:
        return report_rpc_error(error)
    if args.json:
        print_json(reply)
        return EXIT_OK
    print_table(
        ("delivery", "seq", "kind", "state", "attempts", "http", "items", "last error"),
        (
            (
                d.delivery_id,
                d.sequence,
                pb.Delivery.Kind.Name(d.kind).removeprefix("KIND_").lower(),
                pb.Delivery.State.Name(d.state).removeprefix("STATE_").lower(),
                d.attempts,
                d.last_http_status or "",
                d.item_count,
                d.last_error,
            )
            for d in reply.deliveries  # type: ignore[attr-defined]
        ),
    )
    print(f"dead letters: {reply.dead_letter_count}")  # type: ignore[attr-defined]
    return EXIT_OK


def cmd_redrive(args: argparse.Namespace) -> int:
    return _run(
        "RedriveDeliveries",
        pb.RedriveDeliveriesRequest(destination_id=args.id, delivery_ids=args.deliveries),
    )


def add_destination_commands(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``svod destination ...`` to the ``svod`` command's subparsers."""
    group = subparsers.add_parser(
        "destination", help="deliver segments to files, webhooks and ad audiences"
    ).add_subparsers(dest="destination_command", required=True)

    create = group.add_parser("create", help="a new destination")
    create.add_argument("id")
    where = create.add_mutually_exclusive_group(required=True)
    where.add_argument("--webhook", metavar="URL", help="POST changes and syncs here (signed)")
    where.add_argument("--file", choices=sorted(FORMATS), help="write files in this format")
    where.add_argument("--ad-audience", choices=sorted(PLATFORMS), help="hashed audience files")
    create.add_argument(
        "--consent",
        required=True,
        help="consent channel that gates it: email, sms, push, messenger, phone_call, "
        "personal_data_processing",
    )
    create.add_argument("--name", help="display name")
    create.add_argument("--secret", help="HMAC key (16-256 characters; generated when left out)")
    create.add_argument("--max-attempts", type=int, default=0, help="webhook: tries on 5xx")
    create.set_defaults(func=cmd_create)

    group.add_parser("list", help="every destination").set_defaults(func=cmd_list)
    for name, func, text in (
        ("get", cmd_get, "one destination"),
        ("delete", cmd_delete, "remove a destination (unbind it first)"),
    ):
        parser = group.add_parser(name, help=text)
        parser.add_argument("id")
        parser.set_defaults(func=func)

    bind = group.add_parser("bind", help="deliver a segment to a destination")
    bind.add_argument("id", help="destination")
    bind.add_argument("--segment", required=True)
    mode = bind.add_mutually_exclusive_group()
    mode.add_argument("--live", action="store_true", help="enter/exit changes (webhooks)")
    mode.add_argument("--every", type=int, metavar="SECONDS", help="scheduled full syncs")
    bind.set_defaults(func=cmd_bind)

    bindings = group.add_parser("bindings", help="segments bound to destinations")
    bindings.add_argument("--segment")
    bindings.add_argument("--destination")
    bindings.set_defaults(func=cmd_bindings)

    unbind = group.add_parser("unbind", help="stop a binding")
    unbind.add_argument("binding")
    unbind.set_defaults(func=cmd_unbind)

    sync = group.add_parser("sync", help="a full sync of a binding now")
    sync.add_argument("binding")
    sync.add_argument("--wait", action="store_true", help="until the files are written")
    sync.set_defaults(func=cmd_sync)

    deliveries = group.add_parser("deliveries", help="a destination's webhook deliveries")
    deliveries.add_argument("id")
    deliveries.add_argument("--dead", action="store_true", help="dead letters only")
    deliveries.add_argument("--limit", type=int, default=100)
    deliveries.add_argument("--json", action="store_true")
    deliveries.set_defaults(func=cmd_deliveries)

    redrive = group.add_parser("redrive", help="send dead letters again")
    redrive.add_argument("id")
    redrive.add_argument("deliveries", nargs="*", help="delivery ids (default: all dead letters)")
    redrive.set_defaults(func=cmd_redrive)
