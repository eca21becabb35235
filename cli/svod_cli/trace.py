"""``svod trace ...``: one request's spans, across every service, read from the local traces
file the services write when ``SVOD_TRACES_FILE`` is set (``make run`` sets it).

svod trace show TRACE_ID [--file F] [--json]
svod trace record --source S --message-id M [--file F] [--json]
svod trace recent [--limit N] [--file F]

The tree is indented by parent; each line gives the span's start after the trace's first
span, its duration, the service and the span's name. Batched hops (a relay pass of many
messages in one call) are shown too: the shared call belongs to the first message's trace and
links the others, so a trace also lists the shared calls that link to it, marked "linked".
``svod trace record`` finds the trace of a message sent with Identify or Track (its call's
span names the message); messages of a stream share their stream's trace.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from svod_cli.common import EXIT_OK, EXIT_REFUSED, UsageError, add_json_flag, refusals_reported

TOP = Path(__file__).resolve().parents[2]
DEFAULT_FILE = TOP / ".data" / "traces.jsonl"


def traces_file(args: argparse.Namespace) -> Path:
    path = Path(args.file or os.environ.get("SVOD_TRACES_FILE") or DEFAULT_FILE)
    if not path.exists():
        raise UsageError(
            f"no traces file at {path}: the services write one when SVOD_TRACES_FILE is set "
            "(`make run` sets it to .data/traces.jsonl)"
        )
    return path


def read_spans(path: Path, needles: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Spans of lines that mention any of ``needles`` (a cheap filter before parsing)."""
    wanted = tuple(needles)
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if any(needle in line for needle in wanted):
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:  # a line being written right now
                    continue


@dataclass
class Trace:
    trace_id: str
    spans: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Span ids that belong to another trace and are shown because they link to this one.
    linked: set[str] = field(default_factory=set)


def collect(path: Path, trace_id: str) -> Trace:
    """The trace's spans, and the shared batch calls (with what they called) that link to it."""
    found = Trace(trace_id)
    other_traces: set[str] = set()
    for span in read_spans(path, [trace_id]):
        if span["trace_id"] == trace_id:
            found.spans[span["span_id"]] = span
        elif any(link["trace_id"] == trace_id for link in span.get("links", ())):
            found.spans[span["span_id"]] = span
            found.linked.add(span["span_id"])
            other_traces.add(span["trace_id"])
    if not other_traces:
        return found
    # The linked calls' descendants live in their own trace: take those below a linked span.
    children: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for span in read_spans(path, other_traces):
        if span["trace_id"] in other_traces and span["parent_span_id"]:
            children[span["parent_span_id"]].append(span)
    frontier = list(found.linked)
    while frontier:
        for child in children.get(frontier.pop(), ()):
            if child["span_id"] not in found.spans:
                found.spans[child["span_id"]] = child
                found.linked.add(child["span_id"])
                frontier.append(child["span_id"])
    return found


def _ms(nanoseconds: int) -> str:
    return f"{nanoseconds / 1e6:,.1f} ms"


def render(found: Trace) -> list[str]:
    spans = found.spans
    by_parent: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for span in spans.values():
        parent = span["parent_span_id"]
        by_parent[parent if parent in spans else None].append(span)
    for group in by_parent.values():
        group.sort(key=lambda s: s["start_ns"])
    start = min(s["start_ns"] for s in spans.values())
    end = max(s["end_ns"] or s["start_ns"] for s in spans.values())
    services = sorted({s["service"] for s in spans.values()})
    lines = [
        f"trace {found.trace_id}: {len(spans)} spans, {len(services)} services "
        f"({', '.join(x.removeprefix('svod-') for x in services)}), {_ms(end - start)}"
    ]

    def walk(span: dict[str, Any], depth: int) -> None:
        duration = (span["end_ns"] or span["start_ns"]) - span["start_ns"]
        status = ""
        if span["status"] == "ERROR":
            status = f"  ERROR {span['status_description']}".rstrip()
        marks = "  (linked: shared batch call)" if span["span_id"] in found.linked else ""
        service = span["service"].removeprefix("svod-")
        lines.append(
            f"{'+' + _ms(span['start_ns'] - start):>12} {_ms(duration):>11}  "
            f"{'  ' * depth}{service}: {span['name']}{status}{marks}"
        )
        for child in by_parent.get(span["span_id"], ()):
            walk(child, depth + 1)

    for root in by_parent[None]:
        walk(root, 0)
    return lines


def show(path: Path, trace_id: str, as_json: bool) -> int:
    found = collect(path, trace_id)
    if not found.spans:
        print(f"svod: no spans of trace {trace_id} in {path}", file=sys.stderr)
        return EXIT_REFUSED
    if as_json:
        print(json.dumps(sorted(found.spans.values(), key=lambda s: s["start_ns"]), indent=2))
    else:
        print("\n".join(render(found)))
    return EXIT_OK


@refusals_reported
def cmd_show(args: argparse.Namespace) -> int:
    trace_id = args.trace_id.lower()
    if len(trace_id) != 32 or any(c not in "0123456789abcdef" for c in trace_id):
        raise UsageError(f"a trace id is 32 hexadecimal digits, not {args.trace_id!r}")
    return show(traces_file(args), trace_id, args.json)


def trace_of_record(path: Path, source: str, message_id: str) -> str | None:
    """The trace of the newest call that carried this message (Identify or Track)."""
    newest: tuple[int, str] | None = None
    for span in read_spans(path, [f'"svod.record.message_id": {json.dumps(message_id)}']):
        attributes = span.get("attributes", {})
        if attributes.get("svod.record.source") == source and (
            newest is None or span["start_ns"] > newest[0]
        ):
            newest = (span["start_ns"], span["trace_id"])
    return newest[1] if newest else None


@refusals_reported
def cmd_record(args: argparse.Namespace) -> int:
    path = traces_file(args)
    trace_id = trace_of_record(path, args.source, args.message_id)
    if trace_id is None:
        print(
            f"svod: no call carrying {args.source}/{args.message_id} in {path} (messages sent "
            "in a stream share the stream's trace)",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    return show(path, trace_id, args.json)


@refusals_reported
def cmd_recent(args: argparse.Namespace) -> int:
    """The newest traces that begin with a call to the API (server spans with no parent)."""
    roots = [
        s
        for s in read_spans(traces_file(args), ['"parent_span_id": null'])
        if s["kind"] == "SERVER"
    ]
    roots.sort(key=lambda s: s["start_ns"], reverse=True)
    for span in roots[: args.limit]:
        duration = (span["end_ns"] or span["start_ns"]) - span["start_ns"]
        print(f"{span['trace_id']}  {_ms(duration):>11}  {span['service']}: {span['name']}")
    return EXIT_OK


def add_trace_commands(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``svod trace ...`` to the ``svod`` command's subparsers."""
    trace = subparsers.add_parser(
        "trace", help="one request's spans across all services, from the local traces file"
    ).add_subparsers(dest="trace_command", required=True)
    file_help = "the traces file (default: SVOD_TRACES_FILE, else .data/traces.jsonl)"

    show_parser = trace.add_parser("show", help="a trace as an indented tree with durations")
    show_parser.add_argument("trace_id")
    show_parser.add_argument("--file", help=file_help)
    add_json_flag(show_parser)
    show_parser.set_defaults(func=cmd_show)

    record = trace.add_parser("record", help="the trace of one message (Identify or Track)")
    record.add_argument("--source", required=True)
    record.add_argument("--message-id", required=True)
    record.add_argument("--file", help=file_help)
    add_json_flag(record)
    record.set_defaults(func=cmd_record)

    recent = trace.add_parser("recent", help="the newest traces started by an API call")
    recent.add_argument("--limit", type=int, default=20)
    recent.add_argument("--file", help=file_help)
    recent.set_defaults(func=cmd_recent)
