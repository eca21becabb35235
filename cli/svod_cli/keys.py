"""``svod keys``: API keys and the key file (SVOD_API_KEYS_FILE, see docs/security.md).

svod keys create --principal NAME --scopes ingest:write,profile:read [--segments a,b]
                 [--service NAME] [--format yaml|json]
    prints a new random key once (first line of standard output) and the entry to add to the
    key file; only the key's SHA-256 goes into the file.
svod keys check FILE
    checks a key file as the services will read it and lists its principals (never keys).
"""

from __future__ import annotations

import argparse
import json
import sys

from svod_cli.common import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, print_table
from svod_runtime.access import Scope
from svod_runtime.auth import KeyFileError, load_key_file, new_key, principal_entry
from svod_runtime.config import SERVICES


def _names(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def _yaml_entry(entry: dict) -> str:
    lines = [f"  - name: {json.dumps(entry['name'], ensure_ascii=False)}"]
    for field, value in entry.items():
        if field == "name":
            continue
        if isinstance(value, list):
            rendered = "[" + ", ".join(json.dumps(v, ensure_ascii=False) for v in value) + "]"
        else:
            rendered = json.dumps(value, ensure_ascii=False)
        lines.append(f"    {field}: {rendered}")
    return "\n".join(lines)


def cmd_create(args: argparse.Namespace) -> int:
    scopes = _names(args.scopes or "")
    known = {s.value for s in Scope}
    unknown = [s for s in scopes if s not in known]
    if unknown:
        print(f"unknown scope {unknown[0]!r}; scopes: {', '.join(sorted(known))}", file=sys.stderr)
        return EXIT_USAGE
    if not scopes and not args.service:
        print("give --scopes (or --service for a Svod service's own key)", file=sys.stderr)
        return EXIT_USAGE
    segments = _names(args.segments) if args.segments else None
    key = new_key()
    entry = principal_entry(
        args.principal, key, scopes, segments=segments, service=args.service or ""
    )
    print(key)
    print()
    if args.format == "json":
        print(json.dumps(entry, ensure_ascii=False, indent=2))
    else:
        print(_yaml_entry(entry))
    print(
        f"\nThe key above is shown once: hand it to {args.principal!r} (SVOD_API_KEY for svod, "
        "'authorization: Bearer <key>' for any gRPC client).\nAdd the entry under 'principals:' "
        "in the key file (SVOD_API_KEYS_FILE); the services re-read it within seconds.",
        file=sys.stderr,
    )
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    try:
        keys = load_key_file(args.file)
    except KeyFileError as error:
        print(f"{args.file}: {error.message}", file=sys.stderr)
        return EXIT_REFUSED
    print_table(
        ("principal", "scopes", "segments", "service"),
        (
            (
                p.name,
                ",".join(sorted(s.value for s in p.scopes)),
                "all" if p.segments is None else ",".join(sorted(p.segments)),
                p.service,
            )
            for p in keys.principals
        ),
    )
    return EXIT_OK


def add_keys_commands(subparsers: argparse._SubParsersAction) -> None:
    keys = subparsers.add_parser("keys", help="API keys and the key file").add_subparsers(
        dest="keys_command", required=True
    )
    create = keys.add_parser("create", help="a new API key and its key-file entry")
    create.add_argument("--principal", required=True, help="who holds the key")
    create.add_argument("--scopes", default="", help="comma-separated, e.g. ingest:write")
    create.add_argument("--segments", help="limit the principal to these segments")
    create.add_argument("--service", choices=SERVICES, help="the key of a Svod service itself")
    create.add_argument("--format", choices=("yaml", "json"), default="yaml")
    create.set_defaults(func=cmd_create)
    check = keys.add_parser("check", help="check a key file and list its principals")
    check.add_argument("file")
    check.set_defaults(func=cmd_check)
