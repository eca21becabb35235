"""``svod profile ...``: customer 360 profiles from the command line.

svod profile get --id ID | --phone P | --email E | --card C | --external-id NS:VALUE
svod profile search [--last-name L] [--first-name F] [--city C] [--source S] [--limit N]
svod profile timeline CUSTOMER_ID [--limit N]
svod profile consent CUSTOMER_ID --channel email --opt-in|--opt-out [--source S] [--legal-basis B]
svod profile export CUSTOMER_ID [--output FILE]     (everything held on the person, as JSON)
svod profile erase CUSTOMER_ID --reason R [--actor A] --yes

Output is for people; ``--json`` prints the messages with proto field names for scripts.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from google.protobuf import timestamp_pb2

from svod.common.v1 import common_pb2
from svod.profile.v1 import profile_pb2, profile_pb2_grpc
from svod_cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    actor,
    add_actor_args,
    add_customer_key_args,
    add_json_flag,
    call,
    enum_text,
    identifier_from_args,
    message_json,
    pages,
    print_json,
    print_table,
    refusals_reported,
    timestamp_text,
)

Stub = profile_pb2_grpc.ProfileServiceStub
CONSENT_CHANNELS = ("email", "sms", "push", "messenger", "phone_call", "personal_data_processing")


def money_text(money: Any) -> str:
    if not money.currency_code:
        return ""
    return f"{money.units + money.nanos / 1e9:,.2f} {money.currency_code}"


def _name(profile: profile_pb2.Profile) -> str:
    parts = (profile.last_name.value, profile.first_name.value, profile.middle_name.value)
    return " ".join(p for p in parts if p)


def print_profile(profile: profile_pb2.Profile) -> None:
    """The profile as people read it: who, how to reach them, what they did, what they allow."""
    m = profile.metrics
    birth = profile.birth_date
    lines = [
        ("customer", profile.customer_id),
        ("name", _name(profile)),
        ("birth date", f"{birth.year:04d}-{birth.month:02d}-{birth.day:02d}" if birth.year else ""),
        (
            "gender",
            enum_text(profile.gender, common_pb2.Gender, "GENDER_") if profile.gender else "",
        ),
        ("orders", f"{m.order_count} ({money_text(m.total_spent)})" if m.order_count else "0"),
        ("last order", timestamp_text(m.last_order_time)),
        ("returns", str(m.return_count)),
        ("channels", ", ".join(m.channels)),
        ("version", str(profile.version)),
        ("updated", timestamp_text(profile.update_time)),
    ]
    for label, value in lines:
        if value:
            print(f"{label:<11} {value}")
    print()
    print_table(
        ("identifier", "value", "source"),
        [
            (
                enum_text(i.identifier.type, common_pb2.IdentifierType, "IDENTIFIER_TYPE_"),
                (f"{i.identifier.namespace}:" if i.identifier.namespace else "")
                + i.identifier.value,
                i.provenance.source,
            )
            for i in profile.identifiers
        ],
    )
    if profile.sources:
        print()
        print_table(
            ("source", "records", "first seen", "last seen"),
            [
                (
                    s.source,
                    s.record_count,
                    timestamp_text(s.first_seen_time),
                    timestamp_text(s.last_seen_time),
                )
                for s in profile.sources
            ],
        )
    if profile.consents:
        print()
        print_table(
            ("consent", "status", "source", "time"), [_consent_row(c) for c in profile.consents]
        )
    if profile.attributes:
        print()
        print_table(("attribute", "value"), sorted(profile.attributes.items()))


def _consent_row(consent: profile_pb2.Consent) -> tuple[str, ...]:
    return (
        enum_text(consent.channel, profile_pb2.ConsentChannel, "CONSENT_CHANNEL_"),
        enum_text(consent.status, profile_pb2.ConsentStatus, "CONSENT_STATUS_"),
        consent.source,
        timestamp_text(consent.time),
    )


@refusals_reported
def cmd_get(args: argparse.Namespace) -> int:
    identifier = identifier_from_args(args)
    request = (
        profile_pb2.GetProfileRequest(identifier=identifier)
        if identifier is not None
        else profile_pb2.GetProfileRequest(customer_id=args.id)
    )
    profile = call("profile", Stub, "GetProfile", request)
    if args.json:
        print_json(profile)
    else:
        print_profile(profile)
    return EXIT_OK


@refusals_reported
def cmd_search(args: argparse.Namespace) -> int:
    def fetch(token: str) -> tuple[Any, str]:
        reply = call(
            "profile",
            Stub,
            "SearchProfiles",
            profile_pb2.SearchProfilesRequest(
                last_name=args.last_name or "",
                first_name=args.first_name or "",
                city=args.city or "",
                source=args.source or "",
                page_size=min(args.limit, 100),
                page_token=token,
            ),
        )
        return reply.profiles, reply.next_page_token

    found = list(pages(fetch, args.limit))
    if args.json:
        print_json([message_json(p) for p in found])
        return EXIT_OK
    print_table(
        ("customer", "name", "orders", "spent", "sources"),
        [
            (
                p.customer_id,
                _name(p),
                p.metrics.order_count,
                money_text(p.metrics.total_spent),
                ", ".join(s.source for s in p.sources),
            )
            for p in found
        ],
    )
    return EXIT_OK


@refusals_reported
def cmd_timeline(args: argparse.Namespace) -> int:
    def fetch(token: str) -> tuple[Any, str]:
        reply = call(
            "profile",
            Stub,
            "GetTimeline",
            profile_pb2.GetTimelineRequest(
                customer_id=args.customer_id, page_size=min(args.limit, 500), page_token=token
            ),
        )
        return reply.entries, reply.next_page_token

    entries = list(pages(fetch, args.limit))
    if args.json:
        print_json([message_json(e) for e in entries])
        return EXIT_OK
    print_table(
        ("time", "event", "source", "amount", "summary"),
        [
            (
                timestamp_text(e.occurred_time),
                e.event_type,
                e.source,
                money_text(e.amount),
                e.summary,
            )
            for e in entries
        ],
    )
    return EXIT_OK


@refusals_reported
def cmd_consent(args: argparse.Namespace) -> int:
    now = timestamp_pb2.Timestamp()
    now.GetCurrentTime()
    consent = profile_pb2.Consent(
        channel=profile_pb2.ConsentChannel.Value(f"CONSENT_CHANNEL_{args.channel.upper()}"),
        status=(
            profile_pb2.CONSENT_STATUS_OPTED_IN
            if args.opt_in
            else profile_pb2.CONSENT_STATUS_OPTED_OUT
        ),
        source=args.source,
        time=now,
        legal_basis=args.legal_basis or "",
    )
    profile = call(
        "profile",
        Stub,
        "UpdateConsent",
        profile_pb2.UpdateConsentRequest(customer_id=args.customer_id, consent=consent),
    )
    if args.json:
        print_json(profile)
        return EXIT_OK
    print_table(
        ("consent", "status", "source", "time"), [_consent_row(c) for c in profile.consents]
    )
    return EXIT_OK


@refusals_reported
def cmd_export(args: argparse.Namespace) -> int:
    reply = call(
        "profile",
        Stub,
        "ExportPersonalData",
        profile_pb2.ExportPersonalDataRequest(customer_id=args.customer_id),
        timeout=120.0,
    )
    text = json.dumps(message_json(reply), ensure_ascii=False, indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(
            f"personal data of {reply.profile.customer_id} written to {args.output} "
            f"({len(reply.timeline)} events, {len(reply.records)} records)",
            file=sys.stderr,
        )
    else:
        sys.stdout.write(text)
    return EXIT_OK


@refusals_reported
def cmd_erase(args: argparse.Namespace) -> int:
    if not args.yes:
        print(
            f"svod: erasing {args.customer_id} removes their personal data from every service "
            "for good; add --yes to go ahead",
            file=sys.stderr,
        )
        return EXIT_USAGE
    reply = call(
        "profile",
        Stub,
        "ErasePersonalData",
        profile_pb2.ErasePersonalDataRequest(
            customer_id=args.customer_id, actor=actor(args), reason=args.reason
        ),
        timeout=120.0,
    )
    if args.json:
        print_json(reply)
        return EXIT_OK
    print(
        f"erased {args.customer_id}: receipt {reply.receipt_id} "
        f"at {timestamp_text(reply.erase_time)}"
    )
    print_table(("service", "erased"), sorted(reply.erased_counts.items()))
    return EXIT_OK


def add_profile_commands(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``svod profile ...`` to the ``svod`` command's subparsers."""
    profile = subparsers.add_parser(
        "profile", help="customer profiles: get, search, timeline, consents, export, erase"
    ).add_subparsers(dest="profile_command", required=True)

    get = profile.add_parser("get", help="show one profile")
    add_customer_key_args(get)
    add_json_flag(get)
    get.set_defaults(func=cmd_get)

    search = profile.add_parser("search", help="profiles by name, city or source")
    search.add_argument("--last-name")
    search.add_argument("--first-name")
    search.add_argument("--city")
    search.add_argument("--source")
    search.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    add_json_flag(search)
    search.set_defaults(func=cmd_search)

    timeline = profile.add_parser("timeline", help="a customer's events, newest first")
    timeline.add_argument("customer_id")
    timeline.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    add_json_flag(timeline)
    timeline.set_defaults(func=cmd_timeline)

    consent = profile.add_parser("consent", help="record a consent answer")
    consent.add_argument("customer_id")
    consent.add_argument("--channel", required=True, choices=CONSENT_CHANNELS)
    answer = consent.add_mutually_exclusive_group(required=True)
    answer.add_argument("--opt-in", dest="opt_in", action="store_true")
    answer.add_argument("--opt-out", dest="opt_in", action="store_false")
    consent.add_argument("--source", default="svod-cli", help="where the answer was given")
    consent.add_argument("--legal-basis", help='e.g. "consent", "contract"')
    add_json_flag(consent)
    consent.set_defaults(func=cmd_consent)

    export = profile.add_parser("export", help="everything held on a person, as JSON")
    export.add_argument("customer_id")
    export.add_argument("--output", "-o", help="file to write (default: standard output)")
    export.set_defaults(func=cmd_export)

    erase = profile.add_parser("erase", help="erase a person's personal data everywhere")
    erase.add_argument("customer_id")
    add_actor_args(erase)
    erase.add_argument("--yes", action="store_true", help="confirm: this cannot be undone")
    add_json_flag(erase)
    erase.set_defaults(func=cmd_erase)
