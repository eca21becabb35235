"""What the benchmarks share: a scratch database and the five services running on it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
import psycopg

from svod.identity.v1 import identity_pb2, identity_pb2_grpc
from svod_cli.postgres import ensure_postgres
from svod_cli.suite import (
    TOP,
    ProcessSuite,
    create_database,
    drop_database,
    free_ports,
    prepare_database,
)
from svod_identity.domain.matching.autofit import (
    AUTOMATIC_FIT_ACTOR,
    STARTING_MODEL_ACTOR,
    SUGGESTED_FIRST_FIT_RECORDS,
    AutoFitPolicy,
)
from svod_identity.domain.matching.model import MatchModel
from svod_runtime.config import SERVICES
from svod_runtime.db import libpq_url


@contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """A new database with every service's schema and role; dropped afterwards (and a private
    cluster, if one had to be started, stopped)."""
    admin, cluster = ensure_postgres(TOP)
    name = f"{prefix}_{uuid.uuid4().hex[:6]}"
    db_url = create_database(admin, name)
    try:
        prepare_database(db_url)
        yield db_url
    finally:
        drop_database(admin, name)
        if cluster is not None:
            cluster.stop()


@contextmanager
def running_suite(db_url: str) -> Iterator[ProcessSuite]:
    """The five services as separate processes on free ports, stopped afterwards; once the
    match model identity fits by itself on a graph loaded before it started is in force."""
    suite = ProcessSuite(
        db_url,
        ports=dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True)),
        extra_env={"SVOD_LOG_LEVEL": "WARNING"},
    ).start()
    try:
        settled_model(suite, db_url)
        yield suite
    finally:
        suite.stop()


def settled_model(suite: ProcessSuite, db_url: str, timeout_s: float = 900.0) -> None:
    """Waits for identity's automatic fit when the graph it started on is due one (a graph
    bulk-loaded under the starting model): measured meanwhile, a run would share the CPU with
    the fit and place its first records with another model than its last."""
    with psycopg.connect(libpq_url(db_url)) as conn:
        records = conn.execute("SELECT count(*) FROM identity.records").fetchone()
    if not records or records[0] < SUGGESTED_FIRST_FIT_RECORDS:
        return
    started = time.perf_counter()
    with grpc.insecure_channel(suite.target("identity")) as channel:
        stub = identity_pb2_grpc.IdentityServiceStub(channel)
        while True:
            model = stub.GetMatchModel(identity_pb2.GetMatchModelRequest(), timeout=30)
            if model.created_by != STARTING_MODEL_ACTOR:
                break
            if time.perf_counter() - started > timeout_s:
                raise TimeoutError(f"identity fitted no model in {timeout_s:.0f} s")
            time.sleep(0.5)
    print(
        f"identity fitted its match model by itself on {records[0]:,} records "
        f"({model.created_by}) in {time.perf_counter() - started:.1f}s",
        flush=True,
    )


JOB_ENDED = (
    identity_pb2.RESOLUTION_JOB_STATE_SUCCEEDED,
    identity_pb2.RESOLUTION_JOB_STATE_FAILED,
)


def settled_identity(
    stub: identity_pb2_grpc.IdentityServiceStub,
    records: int,
    first_fit_at: int = SUGGESTED_FIRST_FIT_RECORDS,
    timeout_s: float = 900.0,
) -> tuple[float, identity_pb2.MatchModel]:
    """Waits until identity, on a graph of ``records`` records streamed to it, has no
    automatic fit due (``AutoFitPolicy``, fits first at ``first_fit_at``) and the
    re-resolution its last fit queued, if any (``MatchModel.reresolution_job_id``), has ended:
    the graph as a user reads it once identity is done with what it does by itself. Returns
    the seconds waited and the model in force then."""
    policy = AutoFitPolicy(first_fit_at)
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        model = stub.GetMatchModel(identity_pb2.GetMatchModelRequest(), timeout=30)
        if model.created_by not in (STARTING_MODEL_ACTOR, AUTOMATIC_FIT_ACTOR):
            break  # an operator's model: nothing automatic follows
        if policy.due(records, MatchModel.from_json(model.model_json), model.created_by):
            time.sleep(0.5)
            continue
        job_id = model.reresolution_job_id
        if not job_id or _job_ended(stub, job_id):
            break
        time.sleep(0.5)
    else:
        raise TimeoutError(f"identity was not settled in {timeout_s:.0f} s")
    return time.perf_counter() - started, model


def _job_ended(stub: identity_pb2_grpc.IdentityServiceStub, job_id: str) -> bool:
    job = stub.GetResolutionJob(identity_pb2.GetResolutionJobRequest(job_id=job_id), timeout=30)
    return job.state in JOB_ENDED
