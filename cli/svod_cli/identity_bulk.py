"""``svod identity reresolve``: re-resolve the whole identity graph with the batch engine.

svod identity reresolve --dry-run                     (what would merge and split; nothing changes)
svod identity reresolve --reason R [--actor A] [--job-id ID] [--no-wait]
svod identity reresolve --status JOB_ID               (a job's state and progress)

Runs after a rules or model change (docs/bulk-import.md): the job places every record again
under the rules and model in force, keeps a person's decisions, and (unless ``--dry-run``)
writes the new partition and announces its merges and splits to profile and segmentation.
The command waits for the job and shows its progress, then its report.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time

from svod.identity.v1 import identity_pb2, identity_pb2_grpc
from svod_cli.common import (
    EXIT_OK,
    UsageError,
    actor,
    add_json_flag,
    call,
    enum_text,
    print_json,
    print_table,
    refusals_reported,
)

Stub = identity_pb2_grpc.IdentityServiceStub
POLL_S = 2.0
FAILED_EXIT = 1


def job_line(job: identity_pb2.ResolutionJob) -> str:
    state = enum_text(job.state, identity_pb2.ResolutionJobState, "RESOLUTION_JOB_STATE_")
    phase = enum_text(job.phase, identity_pb2.ResolutionJobPhase, "RESOLUTION_JOB_PHASE_")
    share = f" {job.records_done}/{job.records_total}" if job.records_total else ""
    return f"{job.job_id}: {state} ({phase}{share})"


def print_report(job: identity_pb2.ResolutionJob) -> None:
    changes = job.changes
    print(
        f"{changes.records_evaluated} records re-resolved: customers {changes.customers_before}"
        f" -> {changes.customers_after}; {'would merge' if job.dry_run else 'merged'} "
        f"{changes.would_merge_count}, {'would split' if job.dry_run else 'split'} "
        f"{changes.would_split_count}; identifiers changing hands "
        f"{changes.identifier_change_count}"
    )
    samples = [("merge", p) for p in changes.sample_merges] + [
        ("split", p) for p in changes.sample_splits
    ]
    if samples:
        print_table(
            ("change", "record", "record"),
            [
                (
                    kind,
                    f"{p.first.source}/{p.first.message_id}",
                    f"{p.second.source}/{p.second.message_id}",
                )
                for kind, p in samples
            ],
        )
    if job.phase_seconds:
        print(
            "seconds: "
            + ", ".join(f"{phase} {seconds:.1f}" for phase, seconds in job.phase_seconds.items())
        )


def wait(job: identity_pb2.ResolutionJob, quiet: bool) -> identity_pb2.ResolutionJob:
    done = (
        identity_pb2.RESOLUTION_JOB_STATE_SUCCEEDED,
        identity_pb2.RESOLUTION_JOB_STATE_FAILED,
    )
    last = ""
    while job.state not in done:
        time.sleep(POLL_S)
        job = call(
            "identity",
            Stub,
            "GetResolutionJob",
            identity_pb2.GetResolutionJobRequest(job_id=job.job_id),
        )
        line = job_line(job)
        if not quiet and line != last:
            print(line, file=sys.stderr)
            last = line
    return job


def automatic_reresolution(since: dt.datetime, quiet: bool) -> identity_pb2.ResolutionJob | None:
    """The re-resolution identity queued since ``since`` with a model it fitted by itself (an
    import's fits changed the model: ``MatchModel.reresolution_job_id``), followed to its end;
    None if there is none."""
    model = call("identity", Stub, "GetMatchModel", identity_pb2.GetMatchModelRequest())
    if not model.reresolution_job_id:
        return None
    job = call(
        "identity",
        Stub,
        "GetResolutionJob",
        identity_pb2.GetResolutionJobRequest(job_id=model.reresolution_job_id),
    )
    if job.create_time.ToDatetime() < since:
        return None
    return wait(job, quiet)


def reresolution_json(job: identity_pb2.ResolutionJob) -> dict[str, object]:
    return {
        "job_id": job.job_id,
        "state": enum_text(job.state, identity_pb2.ResolutionJobState, "RESOLUTION_JOB_STATE_"),
        "customers_merged": job.changes.would_merge_count,
        "customers_split": job.changes.would_split_count,
        "error": job.error,
    }


@refusals_reported
def cmd_reresolve(args: argparse.Namespace) -> int:
    if args.status:
        job = call(
            "identity",
            Stub,
            "GetResolutionJob",
            identity_pb2.GetResolutionJobRequest(job_id=args.status),
        )
    else:
        if not args.dry_run and not args.reason:
            raise UsageError("--reason is required unless --dry-run")
        job = call(
            "identity",
            Stub,
            "ReresolveAll",
            identity_pb2.ReresolveAllRequest(
                job_id=args.job_id or "",
                dry_run=args.dry_run,
                actor="" if args.dry_run and not args.actor else actor(args),
                reason=args.reason or "",
            ),
        )
        if not args.no_wait:
            job = wait(job, quiet=args.json)
    if args.json:
        print_json(job)
    elif job.state == identity_pb2.RESOLUTION_JOB_STATE_SUCCEEDED:
        print(job_line(job))
        print_report(job)
    else:
        print(job_line(job) + (f": {job.error}" if job.error else ""))
    return FAILED_EXIT if job.state == identity_pb2.RESOLUTION_JOB_STATE_FAILED else EXIT_OK


def add_reresolve_command(identity: argparse._SubParsersAction) -> None:
    """Adds ``svod identity reresolve`` to the ``svod identity`` subcommands."""
    reresolve = identity.add_parser(
        "reresolve", help="re-resolve the whole graph under the rules and model in force"
    )
    reresolve.add_argument(
        "--dry-run", action="store_true", help="only report what would merge and split"
    )
    reresolve.add_argument("--reason", help="why (kept in the ledger; required unless dry run)")
    reresolve.add_argument("--actor", default=None, help="who asks (default: SVOD_ACTOR or login)")
    reresolve.add_argument("--job-id", help="name the job (the same name returns the same job)")
    reresolve.add_argument("--no-wait", action="store_true", help="start it and return")
    reresolve.add_argument("--status", metavar="JOB_ID", help="show a job instead")
    add_json_flag(reresolve)
    reresolve.set_defaults(func=cmd_reresolve)
