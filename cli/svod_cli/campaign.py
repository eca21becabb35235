"""``svod campaign ...``: which campaigns led to purchases, and how customers respond.

svod campaign report [--days 30] [--window 7] [--touch delivered|opened|clicked ...]
                     [--campaign ID ...] [--json]
svod campaign responsiveness CUSTOMER_ID [--json]

The report credits every order to the campaign touches of its customer in the window before
it, by first-touch, last-touch and linear attribution, per campaign and channel.
"""

from __future__ import annotations

import argparse
import datetime as dt

import grpc

from svod.segmentation.v1 import segmentation_pb2 as pb
from svod.segmentation.v1 import segmentation_pb2_grpc
from svod_cli.common import EXIT_OK, channel, metadata, print_json, print_table, report_rpc_error
from svod_runtime.money import money_to_decimal
from svod_runtime.protoconv import datetime_to_timestamp

# A report reads a period's orders and touches: give it time on a large base.
REPORT_TIMEOUT_S = 120.0


def cmd_report(args: argparse.Namespace) -> int:
    end = dt.datetime.now(dt.UTC)
    request = pb.GetCampaignReportRequest(
        start_time=datetime_to_timestamp(end - dt.timedelta(days=args.days)),
        end_time=datetime_to_timestamp(end),
        window_days=args.window,
        touch_types=args.touch or [],
        campaign_ids=args.campaign or [],
    )
    try:
        with channel("segmentation") as open_channel:
            stub = segmentation_pb2_grpc.SegmentationServiceStub(open_channel)
            report = stub.GetCampaignReport(request, timeout=REPORT_TIMEOUT_S, metadata=metadata())
    except grpc.RpcError as error:
        return report_rpc_error(error)
    if args.json:
        print_json(report)
        return EXIT_OK
    print(
        f"orders {report.order_count} ({report.attributed_order_count} after a campaign touch "
        f"within {report.window_days} days), revenue {money_to_decimal(report.revenue):,.2f} "
        f"({money_to_decimal(report.attributed_revenue):,.2f} attributed)"
    )
    print_table(
        (
            "campaign",
            "channel",
            "touches",
            "orders",
            "first",
            "last",
            "linear",
            "first rev",
            "last rev",
            "linear rev",
        ),
        (
            (
                r.campaign_id or "-",
                r.channel or "-",
                r.touch_count,
                r.touched_order_count,
                f"{r.first_touch_orders:.2f}",
                f"{r.last_touch_orders:.2f}",
                f"{r.linear_orders:.2f}",
                f"{money_to_decimal(r.first_touch_revenue):,.2f}",
                f"{money_to_decimal(r.last_touch_revenue):,.2f}",
                f"{money_to_decimal(r.linear_revenue):,.2f}",
            )
            for r in report.rows
        ),
    )
    return EXIT_OK


def cmd_responsiveness(args: argparse.Namespace) -> int:
    try:
        with channel("segmentation") as open_channel:
            stub = segmentation_pb2_grpc.SegmentationServiceStub(open_channel)
            reply = stub.GetResponsiveness(
                pb.GetResponsivenessRequest(customer_id=args.customer_id),
                timeout=30.0,
                metadata=metadata(),
            )
    except grpc.RpcError as error:
        return report_rpc_error(error)
    if args.json:
        print_json(reply)
        return EXIT_OK
    print(f"preferred channel: {reply.preferred_channel or '-'}")
    print_table(
        ("channel", "delivered", "opened", "clicked", "ignored in a row", "rate", "days since"),
        (
            (
                c.channel,
                c.delivered_count,
                c.opened_count,
                c.clicked_count,
                c.ignored_in_a_row,
                f"{c.response_rate:.2f}",
                f"{c.seconds_since_last_response / 86400:.1f}"
                if c.HasField("last_response_time")
                else "-",
            )
            for c in reply.channels
        ),
    )
    return EXIT_OK


def add_campaign_commands(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``svod campaign ...`` to the ``svod`` command's subparsers."""
    group = subparsers.add_parser(
        "campaign", help="campaign attribution and channel responsiveness"
    ).add_subparsers(dest="campaign_command", required=True)
    report = group.add_parser("report", help="orders credited to campaigns (3 models)")
    report.add_argument("--days", type=int, default=30, help="orders of the last N days")
    report.add_argument("--window", type=int, default=7, help="days a touch counts before")
    report.add_argument(
        "--touch", action="append", choices=("delivered", "opened", "clicked"), help="touch kinds"
    )
    report.add_argument("--campaign", action="append", help="only these campaign ids")
    report.add_argument("--json", action="store_true")
    report.set_defaults(func=cmd_report)
    resp = group.add_parser("responsiveness", help="one customer's response per channel")
    resp.add_argument("customer_id")
    resp.add_argument("--json", action="store_true")
    resp.set_defaults(func=cmd_responsiveness)
