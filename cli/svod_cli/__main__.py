"""``svod`` — the command line for people running Svod.

svod run [--demo]                       the whole suite, supervised (Ctrl-C stops it cleanly)
svod status                             health, rates, relay backlogs, dead letters
svod ingest FILE.jsonl [--wait]         send identify calls and events; follow their delivery
svod import customers|events FILE [--mapping MAP] [--wait]   JSONL, CSV or Parquet, resumable
svod record status --source S --message-id M
svod profile get|search|timeline|consent|export|erase ...
svod identity lookup|explain|merge|split|review|rules|blocked|export-mapping ...
svod segment create|list|get|delete|preview|members|export|watch|rfm|customer|recompute ...
svod quality report|rules|violations|score ...
svod destination create|list|bind|sync|deliveries|redrive ...   files, webhooks, ad audiences
svod campaign report|responsiveness     attribution per campaign and channel
svod trace show TRACE_ID | svod trace record --source S --message-id M
svod unattributed list|recheck          events whose identifiers name no single customer
svod deadletters list|show|redrive --service S   messages refused for good; send them again
svod keys create --principal NAME --scopes ...   a new API key and its key-file entry
svod db prepare                         create schemas, roles and run migrations

Every group's commands live in a module of their own (``svod_cli/<group>.py``) built on
``svod_cli.common``; ``svod <group> --help`` lists them. Exit codes: 0 done, 1 refused (or a
problem the command reports), 2 bad command line, 3 service unreachable.
"""

from __future__ import annotations

import argparse
import sys

from svod_cli.bulk_import import add_import_commands
from svod_cli.campaign import add_campaign_commands
from svod_cli.deadletters import add_deadletters_commands
from svod_cli.destination import add_destination_commands
from svod_cli.identity import add_identity_commands
from svod_cli.ingest import add_ingest_commands
from svod_cli.keys import add_keys_commands
from svod_cli.profile import add_profile_commands
from svod_cli.quality import add_quality_commands
from svod_cli.run import DEMO_FILE, add_run_commands
from svod_cli.segment import add_segment_commands
from svod_cli.status import add_status_command
from svod_cli.trace import add_trace_commands
from svod_cli.unattributed import add_unattributed_commands

__all__ = ["DEMO_FILE", "main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="svod", description="Svod customer data platform")
    sub = parser.add_subparsers(dest="command", required=True)
    add_run_commands(sub)
    add_status_command(sub)
    add_ingest_commands(sub)
    add_import_commands(sub)
    add_profile_commands(sub)
    add_identity_commands(sub)
    add_segment_commands(sub)
    add_quality_commands(sub)
    add_trace_commands(sub)
    add_destination_commands(sub)
    add_campaign_commands(sub)
    add_keys_commands(sub)
    add_unattributed_commands(sub)
    add_deadletters_commands(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
