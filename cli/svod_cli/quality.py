"""``svod quality ...``: the data quality service from the command line.

svod quality report [--format markdown|html] [--output FILE] [--refresh] [--trend-days N]
svod quality rules list [--source S]
svod quality rules create RULE_ID --field F --check C --action reject|flag [--source S]
                          [--param KEY=VALUE ...]
svod quality rules delete RULE_ID
svod quality violations [--days N] [--source S]
svod quality score CUSTOMER_ID

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
from svod_cli.common import (
    EXIT_OK,
    UsageError,
    add_json_flag,
    call,
    channel,
    message_json,
    metadata,
    print_json,
    print_table,
    refusals_reported,
    report_rpc_error,
    timestamp_text,
)

Stub = quality_pb2_grpc.QualityServiceStub

TIMEOUT_S = 30.0
# A refresh reads every profile; give it time on a large base.
REFRESH_TIMEOUT_S = 900.0


FORMATS = {"markdown": quality_pb2.REPORT_FORMAT_MARKDOWN, "html": quality_pb2.REPORT_FORMAT_HTML}


def fetch_report(refresh: bool, trend_days: int, fmt: str) -> quality_pb2.QualityReport:
    with channel("quality") as open_channel:
        stub = quality_pb2_grpc.QualityServiceStub(open_channel)
        return stub.GetQualityReport(
            quality_pb2.GetQualityReportRequest(
                trend_days=trend_days, refresh=refresh, format=FORMATS[fmt]
            ),
            timeout=REFRESH_TIMEOUT_S if refresh else TIMEOUT_S,
            metadata=metadata(),
        )


def cmd_quality_report(args: argparse.Namespace) -> int:
    try:
        report = fetch_report(args.refresh, args.trend_days, args.format)
    except grpc.RpcError as error:
        return report_rpc_error(error)
    text = report.rendered
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"{args.format} report written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _rule_rows(rules: list[quality_pb2.ValidationRule]) -> list[tuple[str, ...]]:
    return [
        (
            r.rule_id,
            r.field,
            r.source or "*",
            r.check,
            r.action,
            " ".join(f"{k}={v}" for k, v in sorted(r.parameters.items())),
        )
        for r in rules
    ]


RULE_HEADERS = ("rule", "field", "source", "check", "action", "parameters")


@refusals_reported
def cmd_rules_list(args: argparse.Namespace) -> int:
    reply = call(
        "quality",
        Stub,
        "ListValidationRules",
        quality_pb2.ListValidationRulesRequest(source=args.source or ""),
    )
    if args.json:
        print_json([message_json(r) for r in reply.rules])
    else:
        print_table(RULE_HEADERS, _rule_rows(list(reply.rules)))
    return EXIT_OK


@refusals_reported
def cmd_rules_create(args: argparse.Namespace) -> int:
    parameters = {}
    for item in args.param or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--param takes KEY=VALUE, not {item!r}")
        parameters[key] = value
    rule = call(
        "quality",
        Stub,
        "CreateValidationRule",
        quality_pb2.CreateValidationRuleRequest(
            rule=quality_pb2.ValidationRule(
                rule_id=args.rule_id,
                field=args.field,
                source=args.source or "",
                action=args.action,
                check=args.check,
                parameters=parameters,
            )
        ),
    )
    if args.json:
        print_json(rule)
    else:
        print_table(RULE_HEADERS, _rule_rows([rule]))
    return EXIT_OK


@refusals_reported
def cmd_rules_delete(args: argparse.Namespace) -> int:
    call(
        "quality",
        Stub,
        "DeleteValidationRule",
        quality_pb2.DeleteValidationRuleRequest(rule_id=args.rule_id),
    )
    print(f"deleted {args.rule_id}")
    return EXIT_OK


def _day(date: object) -> str:
    return f"{date.year:04d}-{date.month:02d}-{date.day:02d}"  # type: ignore[attr-defined]


@refusals_reported
def cmd_violations(args: argparse.Namespace) -> int:
    reply = call(
        "quality",
        Stub,
        "GetViolationStats",
        quality_pb2.GetViolationStatsRequest(days=args.days, source=args.source or ""),
    )
    if args.json:
        print_json(reply)
        return EXIT_OK
    print_table(
        ("day", "source", "rule", "field", "action", "count"),
        [(_day(v.day), v.source, v.rule, v.field, v.action, v.count) for v in reply.violations],
    )
    print()
    print_table(
        ("day", "source", "records", "rejected", "flagged"),
        [
            (_day(r.day), r.source, r.records, r.rejected_records, r.flagged_records)
            for r in reply.records
        ],
    )
    return EXIT_OK


@refusals_reported
def cmd_score(args: argparse.Namespace) -> int:
    score = call(
        "quality",
        Stub,
        "GetProfileScore",
        quality_pb2.GetProfileScoreRequest(customer_id=args.customer_id),
        timeout=TIMEOUT_S,
    )
    if args.json:
        print_json(score)
        return EXIT_OK
    print(f"{score.customer_id}: {score.score}/100 ({timestamp_text(score.score_time)})")
    for reason in score.reasons:
        print(f"  {reason}")
    return EXIT_OK


def add_quality_commands(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``svod quality ...`` to the ``svod`` command's subparsers."""
    quality = subparsers.add_parser(
        "quality", help="data quality: reports, validation rules, violations, scores"
    ).add_subparsers(dest="quality_command", required=True)
    rules = quality.add_parser("rules", help="validation rules").add_subparsers(
        dest="rules_command", required=True
    )
    rules_list = rules.add_parser("list", help="the rules in force")
    rules_list.add_argument("--source", help="only rules that apply to this source")
    add_json_flag(rules_list)
    rules_list.set_defaults(func=cmd_rules_list)
    create = rules.add_parser("create", help="a rule that rejects or flags records")
    create.add_argument("rule_id")
    create.add_argument("--field", required=True, help="e.g. email, phone, first_name")
    create.add_argument("--check", required=True, help="e.g. required, regex, email_valid")
    create.add_argument("--action", required=True, choices=("reject", "flag"))
    create.add_argument("--source", help="only this source (default: every source)")
    create.add_argument("--param", action="append", metavar="KEY=VALUE", help="check setting")
    add_json_flag(create)
    create.set_defaults(func=cmd_rules_create)
    delete = rules.add_parser("delete", help="remove a rule")
    delete.add_argument("rule_id")
    delete.set_defaults(func=cmd_rules_delete)
    violations = quality.add_parser("violations", help="findings by day, source, rule, field")
    violations.add_argument("--days", type=int, default=7, help="the last N days (default 7)")
    violations.add_argument("--source")
    add_json_flag(violations)
    violations.set_defaults(func=cmd_violations)
    score = quality.add_parser("score", help="a profile's quality score and why")
    score.add_argument("customer_id")
    add_json_flag(score)
    score.set_defaults(func=cmd_score)
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
