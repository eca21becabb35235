"""``svod quality ...``: the data quality service from the command line.

svod quality report [--format markdown|html] [--output FILE] [--refresh] [--trend-days N]

The report comes from the quality service (``SVOD_QUALITY_TARGET``, default 127.0.0.1:50055)
and is rendered here with the quality domain's renderer: Markdown, or one self-contained HTML
page with an SVG chart of the trend. ``SVOD_API_KEY`` is sent as a bearer token when set.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grpc

from svod.quality.v1 import quality_pb2, quality_pb2_grpc
from svod_cli.common import channel, metadata, report_rpc_error

TIMEOUT_S = 30.0
# A refresh reads every profile; give it time on a large base.
REFRESH_TIMEOUT_S = 900.0


def fetch_report(refresh: bool, trend_days: int) -> quality_pb2.QualityReport:
    with channel("quality") as open_channel:
        stub = quality_pb2_grpc.QualityServiceStub(open_channel)
        return stub.GetQualityReport(
            quality_pb2.GetQualityReportRequest(trend_days=trend_days, refresh=refresh),
            timeout=REFRESH_TIMEOUT_S if refresh else TIMEOUT_S,
            metadata=metadata(),
        )


def render(report: quality_pb2.QualityReport, fmt: str) -> str:
    from svod_quality.domain import render_html, render_markdown
    from svod_quality.entrypoints.convert import report_from_proto

    domain_report = report_from_proto(report)
    return render_html(domain_report) if fmt == "html" else render_markdown(domain_report)


def cmd_quality_report(args: argparse.Namespace) -> int:
    try:
        report = fetch_report(args.refresh, args.trend_days)
    except grpc.RpcError as error:
        return report_rpc_error(error)
    text = render(report, args.format)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"{args.format} report written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def add_quality_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Adds ``svod quality ...`` to the ``svod`` command's subparsers."""
    quality = subparsers.add_parser("quality", help="data quality reports").add_subparsers(
        dest="quality_command", required=True
    )
    report = quality.add_parser(
        "report", help="how well the base is kept, now and as a trend (Markdown or HTML)"
    )
    report.add_argument("--format", choices=("markdown", "html"), default="markdown")
    report.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")
    report.add_argument(
        "--refresh", action="store_true", help="compute a new snapshot first (reads every profile)"
    )
    report.add_argument(
        "--trend-days", type=int, default=30, help="days of trend before the latest snapshot"
    )
    report.set_defaults(func=cmd_quality_report)
