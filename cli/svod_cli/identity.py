"""``svod identity ...``: the identity graph from the command line.

svod identity lookup --id ID | --phone P | --email E | --card C | --external-id NS:V
svod identity explain --customer ID | --record S M --record S M
svod identity merge ID ID [ID ...] --reason R [--actor A]
svod identity split ID --record S M [--record S M ...] [--to ID] --reason R [--actor A]
svod identity review list [--all] [--limit N]
svod identity review decide ITEM_ID --accept|--reject --reason R [--actor A]
svod identity rules get
svod identity rules preview FILE.json          (Rules as JSON; shows what would change)
svod identity rules update FILE.json --expected-version N [--actor A]
svod identity blocked [--limit N]
svod identity export-mapping [--output FILE]    (every record -> its customer, as CSV)
svod identity reresolve [--dry-run] --reason R  (the whole graph again: identity_bulk.py)

Every listing takes ``--json`` (proto field names) for scripts.
"""

from __future__ import annotations

import argparse
import csv
import sys
from typing import Any, TextIO

from svod.common.v1 import common_pb2
from svod.identity.v1 import identity_pb2, identity_pb2_grpc
from svod_cli.common import (
    EXIT_OK,
    UsageError,
    actor,
    add_actor_args,
    add_customer_key_args,
    add_json_flag,
    add_record_arg,
    call,
    channel,
    enum_text,
    identifier_from_args,
    message_json,
    metadata,
    pages,
    print_json,
    print_table,
    read_json_message,
    record_ref,
    refusals_reported,
    timestamp_text,
)
from svod_cli.identity_bulk import add_reresolve_command

Stub = identity_pb2_grpc.IdentityServiceStub
MAPPING_HEADER = ("source", "message_id", "customer_id", "resolve_time", "rule")
# An export of a whole base streams for a long time.
EXPORT_TIMEOUT_S = 3600.0


def identifier_text(identifier: common_pb2.Identifier) -> str:
    kind = enum_text(identifier.type, common_pb2.IdentifierType, "IDENTIFIER_TYPE_")
    namespace = f"{identifier.namespace}:" if identifier.namespace else ""
    return f"{kind} {namespace}{identifier.value}"


def ref_text(ref: common_pb2.RecordRef) -> str:
    return f"{ref.source}/{ref.message_id}" if ref.source else ""


@refusals_reported
def cmd_lookup(args: argparse.Namespace) -> int:
    identifier = identifier_from_args(args)
    request = (
        identity_pb2.LookupCustomerRequest(identifier=identifier)
        if identifier is not None
        else identity_pb2.LookupCustomerRequest(customer_id=args.id)
    )
    customer = call("identity", Stub, "LookupCustomer", request)
    if args.json:
        print_json(customer)
        return EXIT_OK
    print(f"customer   {customer.customer_id}")
    print(f"created    {timestamp_text(customer.create_time)}")
    print(f"records    {customer.record_count}")
    if customer.merged_ids:
        print(f"merged ids {', '.join(customer.merged_ids)}")
    print_table(
        ("identifier", "source"),
        [(identifier_text(i.identifier), i.source) for i in customer.identifiers],
    )
    return EXIT_OK


@refusals_reported
def cmd_explain(args: argparse.Namespace) -> int:
    if args.customer:
        request = identity_pb2.ExplainRequest(customer_id=args.customer)
    elif args.record and len(args.record) == 2:
        request = identity_pb2.ExplainRequest(
            records=identity_pb2.RecordPair(
                first=record_ref(args.record[0]), second=record_ref(args.record[1])
            )
        )
    else:
        raise UsageError("explain takes --customer ID, or --record SOURCE MESSAGE_ID twice")
    reply = call("identity", Stub, "Explain", request)
    if args.json:
        print_json(reply)
        return EXIT_OK
    verdict = "the same customer" if reply.same_customer else "not the same customer"
    print(f"{verdict}: {reply.customer_id}" if reply.customer_id else verdict)
    print_table(
        ("step", "from", "to", "identifier", "score", "actor", "reason", "time"),
        [
            (
                step.kind,
                ref_text(step.from_record),
                ref_text(step.to_record),
                identifier_text(step.identifier) if step.identifier.value else "",
                f"{step.score:.2f}" if step.score else "",
                step.actor,
                step.reason,
                timestamp_text(step.time),
            )
            for step in reply.steps
        ],
    )
    return EXIT_OK


@refusals_reported
def cmd_merge(args: argparse.Namespace) -> int:
    reply = call(
        "identity",
        Stub,
        "MergeCustomers",
        identity_pb2.MergeCustomersRequest(
            customer_ids=args.customer_ids, reason=args.reason, actor=actor(args)
        ),
    )
    if args.json:
        print_json(reply)
    else:
        merged = ", ".join(reply.merged_customer_ids) or "nothing"
        print(f"merged {merged} into {reply.surviving_customer_id}")
    return EXIT_OK


@refusals_reported
def cmd_split(args: argparse.Namespace) -> int:
    reply = call(
        "identity",
        Stub,
        "SplitCustomer",
        identity_pb2.SplitCustomerRequest(
            customer_id=args.customer_id,
            record_refs=[record_ref(pair) for pair in args.record],
            target_customer_id=args.to or "",
            reason=args.reason,
            actor=actor(args),
        ),
    )
    if args.json:
        print_json(reply)
        return EXIT_OK
    print(
        f"moved {len(args.record)} record(s) from {reply.source_customer_id} "
        f"to {reply.target_customer_id}"
    )
    for identifier in reply.moved_identifiers:
        print(f"  moved identifier: {identifier_text(identifier)}")
    return EXIT_OK


@refusals_reported
def cmd_review_list(args: argparse.Namespace) -> int:
    def fetch(token: str) -> tuple[Any, str]:
        reply = call(
            "identity",
            Stub,
            "ListReviewItems",
            identity_pb2.ListReviewItemsRequest(
                page_size=min(args.limit or 1000, 1000),
                page_token=token,
                include_decided=args.all,
            ),
        )
        return reply.items, reply.next_page_token

    items = list(pages(fetch, args.limit))
    if args.json:
        print_json([message_json(item) for item in items])
        return EXIT_OK
    print_table(
        ("item", "state", "record", "record's customer", "candidate", "probability", "vetoes"),
        [
            (
                item.review_item_id,
                item.state,
                ref_text(item.record_ref),
                item.record_customer_id,
                item.candidate_customer_id,
                f"{item.probability:.3f}",
                ",".join(item.vetoes),
            )
            for item in items
        ],
    )
    return EXIT_OK


@refusals_reported
def cmd_review_decide(args: argparse.Namespace) -> int:
    reply = call(
        "identity",
        Stub,
        "DecideReviewItem",
        identity_pb2.DecideReviewItemRequest(
            review_item_id=args.item_id, accept=args.accept, actor=actor(args), reason=args.reason
        ),
    )
    if args.json:
        print_json(reply)
    else:
        decision = "accepted: merged into" if args.accept else "rejected: kept apart, record in"
        print(f"{args.item_id} {decision} {reply.customer_id}")
    return EXIT_OK


def print_rules(rules: identity_pb2.Rules) -> None:
    print(
        f"version {rules.version} (updated {timestamp_text(rules.update_time)} by "
        f"{rules.updated_by or '-'})"
    )
    print(
        f"auto-link threshold {rules.auto_link_threshold}, review threshold "
        f"{rules.review_threshold}, fuzzy {'off' if rules.fuzzy_disabled else 'on'}, "
        f"placeholder phones {'link' if rules.link_placeholder_phones else 'blocked'}"
    )
    print_table(
        ("type", "namespace", "priority", "max per customer", "max people", "blocked values"),
        [
            (
                enum_text(rule.type, common_pb2.IdentifierType, "IDENTIFIER_TYPE_"),
                rule.namespace,
                rule.priority,
                rule.max_values_per_customer or "-",
                rule.max_people_per_value or "-",
                len(rule.blocked_values),
            )
            for rule in rules.identifier_rules
        ],
    )


@refusals_reported
def cmd_rules_get(args: argparse.Namespace) -> int:
    rules = call("identity", Stub, "GetRules", identity_pb2.GetRulesRequest())
    if args.json:
        print_json(rules)
    else:
        print_rules(rules)
    return EXIT_OK


@refusals_reported
def cmd_rules_preview(args: argparse.Namespace) -> int:
    rules = read_json_message(args.file, identity_pb2.Rules())
    reply = call(
        "identity",
        Stub,
        "PreviewRules",
        identity_pb2.PreviewRulesRequest(rules=rules),
        timeout=600.0,
    )
    if args.json:
        print_json(reply)
        return EXIT_OK
    print(
        f"{reply.records_evaluated} records re-resolved: customers {reply.customers_before} -> "
        f"{reply.customers_after}; would merge {reply.would_merge_count}, would split "
        f"{reply.would_split_count}"
    )
    samples = [("merge", p) for p in reply.sample_merges] + [
        ("split", p) for p in reply.sample_splits
    ]
    if samples:
        print_table(
            ("change", "record", "record"),
            [(kind, ref_text(p.first), ref_text(p.second)) for kind, p in samples],
        )
    return EXIT_OK


@refusals_reported
def cmd_rules_update(args: argparse.Namespace) -> int:
    rules = read_json_message(args.file, identity_pb2.Rules())
    updated = call(
        "identity",
        Stub,
        "UpdateRules",
        identity_pb2.UpdateRulesRequest(
            rules=rules, expected_version=args.expected_version, actor=actor(args)
        ),
    )
    if args.json:
        print_json(updated)
    else:
        print_rules(updated)
    return EXIT_OK


@refusals_reported
def cmd_blocked(args: argparse.Namespace) -> int:
    def fetch(token: str) -> tuple[Any, str]:
        reply = call(
            "identity",
            Stub,
            "ListBlockedIdentifiers",
            identity_pb2.ListBlockedIdentifiersRequest(
                page_size=min(args.limit or 1000, 1000), page_token=token
            ),
        )
        return reply.identifiers, reply.next_page_token

    blocked = list(pages(fetch, args.limit))
    if args.json:
        print_json([message_json(b) for b in blocked])
        return EXIT_OK
    print_table(
        ("identifier", "reason", "people", "since"),
        [
            (identifier_text(b.identifier), b.reason, b.people_count, timestamp_text(b.block_time))
            for b in blocked
        ],
    )
    return EXIT_OK


def write_mapping_csv(out: TextIO, *, timeout_s: float | None = EXPORT_TIMEOUT_S) -> int:
    """Streams ExportRecordMapping from the identity service into ``out`` as CSV (a header,
    then one row per record); returns the number of records written."""
    writer = csv.writer(out)
    writer.writerow(MAPPING_HEADER)
    count = 0
    with channel("identity") as open_channel:
        for row in Stub(open_channel).ExportRecordMapping(
            identity_pb2.ExportRecordMappingRequest(), metadata=metadata(), timeout=timeout_s
        ):
            writer.writerow(
                (
                    row.record_ref.source,
                    row.record_ref.message_id,
                    row.customer_id,
                    row.resolve_time.ToJsonString() if row.HasField("resolve_time") else "",
                    row.rule,
                )
            )
            count += 1
    return count


@refusals_reported
def cmd_export_mapping(args: argparse.Namespace) -> int:
    if not args.output:
        count = write_mapping_csv(sys.stdout)
    else:
        with open(args.output, "w", newline="", encoding="utf-8") as out:
            count = write_mapping_csv(out)
    print(f"{count} records", file=sys.stderr)
    return EXIT_OK


def add_identity_commands(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``svod identity ...`` to the ``svod`` command's subparsers."""
    identity = subparsers.add_parser(
        "identity", help="the identity graph: look-ups, explanations, merges, review, rules"
    ).add_subparsers(dest="identity_command", required=True)

    lookup = identity.add_parser("lookup", help="the customer an id or identifier belongs to")
    add_customer_key_args(lookup)
    add_json_flag(lookup)
    lookup.set_defaults(func=cmd_lookup)

    explain = identity.add_parser(
        "explain", help="why records are one customer (or not), how a customer was put together"
    )
    explain.add_argument("--customer", metavar="CUSTOMER_ID")
    add_record_arg(explain, required=False, many=True)
    add_json_flag(explain)
    explain.set_defaults(func=cmd_explain)

    merge = identity.add_parser("merge", help="merge customers (the first id survives)")
    merge.add_argument("customer_ids", nargs="+", metavar="CUSTOMER_ID")
    add_actor_args(merge)
    add_json_flag(merge)
    merge.set_defaults(func=cmd_merge)

    split = identity.add_parser("split", help="move records off a customer")
    split.add_argument("customer_id")
    add_record_arg(split, required=True, many=True)
    split.add_argument("--to", metavar="CUSTOMER_ID", help="target customer (default: a new one)")
    add_actor_args(split)
    add_json_flag(split)
    split.set_defaults(func=cmd_split)

    review = identity.add_parser("review", help="the review queue").add_subparsers(
        dest="review_command", required=True
    )
    review_list = review.add_parser("list", help="suspected duplicates waiting for a person")
    review_list.add_argument("--all", action="store_true", help="decided items too")
    review_list.add_argument("--limit", type=int, default=0, help="at most this many")
    add_json_flag(review_list)
    review_list.set_defaults(func=cmd_review_list)
    decide = review.add_parser("decide", help="accept (merge) or reject (keep apart) an item")
    decide.add_argument("item_id")
    verdict = decide.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--accept", dest="accept", action="store_true")
    verdict.add_argument("--reject", dest="accept", action="store_false")
    add_actor_args(decide, reason_required=False)
    add_json_flag(decide)
    decide.set_defaults(func=cmd_review_decide)

    rules = identity.add_parser("rules", help="matching rules").add_subparsers(
        dest="rules_command", required=True
    )
    rules_get = rules.add_parser("get", help="the rules in force")
    add_json_flag(rules_get)
    rules_get.set_defaults(func=cmd_rules_get)
    preview = rules.add_parser("preview", help="what candidate rules would merge and split")
    preview.add_argument("file", help="the candidate Rules as JSON (`-`: standard input)")
    add_json_flag(preview)
    preview.set_defaults(func=cmd_rules_preview)
    update = rules.add_parser("update", help="put new rules in force")
    update.add_argument("file", help="the Rules as JSON (`-`: standard input)")
    update.add_argument(
        "--expected-version", type=int, required=True, help="the version the change is based on"
    )
    update.add_argument("--actor", default=None, help="who asks (default: SVOD_ACTOR or login)")
    add_json_flag(update)
    update.set_defaults(func=cmd_rules_update)

    blocked = identity.add_parser("blocked", help="identifiers that no longer link, and why")
    blocked.add_argument("--limit", type=int, default=0, help="at most this many")
    add_json_flag(blocked)
    blocked.set_defaults(func=cmd_blocked)

    add_reresolve_command(identity)

    export = identity.add_parser(
        "export-mapping", help="every record -> its customer now, as CSV (audit)"
    )
    export.add_argument("--output", "-o", help="file to write (default: standard output)")
    export.set_defaults(func=cmd_export_mapping)
