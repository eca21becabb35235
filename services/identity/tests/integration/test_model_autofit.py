"""Identity fits its match model by itself as its graph grows, against real Postgres: stored as
a new version with its provenance, again at each doubling, never over an operator's model, and
never over a model stored while it was being fitted."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import replace

import grpc
import pytest

from services.identity.tests.integration.test_identity_api import request
from svod.identity.v1 import identity_pb2, identity_pb2_grpc
from svod_cli.suite import InProcessSuite
from svod_identity.adapters.storage import IdentityStore
from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.matching.autofit import (
    AUTOFIT_ENV,
    AUTOMATIC_FIT_ACTOR,
    RERESOLVE_ENV,
    AutoFitPolicy,
    reresolution_job_id,
)
from svod_identity.domain.matching.model import starting_model
from svod_identity.domain.model import IncomingRecord, RecordRef
from svod_identity.service_layer import autofit, use_cases
from svod_identity.service_layer.use_cases import IdentityService
from svod_runtime.db import create_engine

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
FIRST = ("Мария", "Анна", "Ольга", "Елена", "Ирина", "Наталья", "Татьяна", "Светлана")
LAST = ("Смирнова", "Кузнецова", "Попова", "Васильева", "Петрова", "Соколова", "Михайлова")
# Any match EM finds makes a fit stand here: these graphs are small.
POLICY = AutoFitPolicy(first_at_records=40, min_matches=1)
SUCCEEDED = identity_pb2.RESOLUTION_JOB_STATE_SUCCEEDED
FAILED = identity_pb2.RESOLUTION_JOB_STATE_FAILED


def records(start: int, count: int) -> list[IncomingRecord]:
    """``count`` records from the ``start``-th on: two a person (same name and birth date,
    phones of their own), so the graph has candidate pairs for EM."""
    made = []
    for n in range(start, start + count):
        person = n // 2
        made.append(
            IncomingRecord(
                ref=RecordRef("autofit", f"m{n}"),
                channel="pos",
                observed_at=T0 + dt.timedelta(minutes=n),
                identifiers=(IdentifierKey("phone", f"+7916{n:07d}"),),
                attributes={
                    "first_name": FIRST[person % len(FIRST)],
                    "last_name": LAST[person % len(LAST)],
                    "birth_date": f"19{50 + person % 40}-0{1 + person % 9}-1{person % 10}",
                },
            )
        )
    return made


def test_the_model_is_fitted_at_the_first_size_and_each_doubling_then_left_to_the_operator(
    scratch_databases: Callable[[str], dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = scratch_databases("autofit")["identity"]
    # Each service keeps the model it last read for this test's length (2 s by default), as a
    # replica that read it just before another one stored a newer version.
    monkeypatch.setattr(use_cases, "CACHE_TTL_S", 3_600.0)

    async def scenario() -> None:
        engine = create_engine(url, pool_size=2)
        try:
            service = IdentityService(IdentityStore(engine))
            await service.resolve_batch(records(0, 30))
            assert await service.autofit_model(POLICY) is None  # 30 records: not yet

            await service.resolve_batch(records(30, 20))
            first = await service.autofit_model(POLICY)
            assert first is not None and first.created_by == AUTOMATIC_FIT_ACTOR
            assert first.model.fitted_records == 50 and first.trained_pairs > 0
            stored = await service.get_model()  # read back from the store
            assert (stored.version, stored.created_by) == (first.version, AUTOMATIC_FIT_ACTOR)
            assert stored.model.fitted_records == 50
            assert await service.autofit_model(POLICY) is None  # 50 records: next at 100

            # A second replica whose cached model is the one just fitted...
            replica = IdentityService(IdentityStore(engine))
            assert (await replica.model_info()).version == first.version
            await service.resolve_batch(records(50, 50))
            second = await service.autofit_model(POLICY)
            assert second is not None and second.version == first.version + 1
            assert second.model.fitted_records == 100
            # ...fits from it too, but stores nothing: another model came first.
            assert await replica.autofit_model(POLICY) is None
            assert (await service.get_model()).version == second.version

            operators = await service.refit_model(max_pairs=1_000, dry_run=False, actor="analyst")
            await service.resolve_batch(records(100, 150))
            assert await service.autofit_model(POLICY) is None  # 250 records, the analyst's
            now = await service.get_model()
            assert (now.version, now.created_by) == (operators.version, "analyst")
        finally:
            await engine.dispose()

    asyncio.run(scenario())


def test_a_service_told_to_fits_its_model_by_itself_as_records_arrive(
    scratch_databases: Callable[[str], dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The setting reaches the running service: records through ResolveBatch, and the model
    GetMatchModel shows becomes one identity fitted by itself."""
    url = scratch_databases("autofit_api")["identity"]
    monkeypatch.setattr(autofit, "CHECK_EVERY_S", 0.2)
    suite = InProcessSuite(url, services=("identity",), extra_env={AUTOFIT_ENV: "40"}).start()
    try:
        with grpc.insecure_channel(suite.target("identity")) as channel:
            stub = identity_pb2_grpc.IdentityServiceStub(channel)
            before = stub.GetMatchModel(identity_pb2.GetMatchModelRequest(), timeout=10)
            assert (before.version, before.created_by) == (0, "default")
            stub.ResolveBatch(iter(api_requests(records(0, 50))), timeout=60)
            now = fitted_model(stub)
            assert (now.version, now.created_by) == (1, AUTOMATIC_FIT_ACTOR)
            assert json.loads(now.model_json)["fitted_records"] == 50
            # 25 pairs of one person are too few matches for the fit to stand: the starting
            # model is kept, and nothing is placed again.
            assert now.reresolution_job_id == ""
            assert no_job(stub, reresolution_job_id(now.version))
    finally:
        suite.stop()


@pytest.mark.parametrize(("bound", "reresolved"), [("1000", True), ("999", False)])
def test_a_fit_that_changed_the_model_places_the_graph_again_while_it_is_small(
    scratch_databases: Callable[[str], dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    bound: str,
    reresolved: bool,
) -> None:
    """1,000 records streamed (500 persons) make a fit at 1,000 that stands: the records
    placed with the starting model are re-resolved with it by a ReresolveAll job of identity's
    own, named after the model's version - not where the graph is over the bound."""
    url = scratch_databases(f"autofit_again_{bound}")["identity"]
    monkeypatch.setattr(autofit, "CHECK_EVERY_S", 0.2)
    env = {AUTOFIT_ENV: "1000", RERESOLVE_ENV: bound}
    suite = InProcessSuite(url, services=("identity",), extra_env=env).start()
    try:
        with grpc.insecure_channel(suite.target("identity")) as channel:
            stub = identity_pb2_grpc.IdentityServiceStub(channel)
            stub.ResolveBatch(iter(api_requests(records(0, 1_000))), timeout=120)
            now = fitted_model(stub)
            fitted = json.loads(now.model_json)
            assert fitted["fitted_records"] == 1_000 and fitted["trained_pairs"] > 0
            job_id = reresolution_job_id(now.version)
            if not reresolved:
                assert now.reresolution_job_id == ""
                assert no_job(stub, job_id)
                return
            assert now.reresolution_job_id == job_id
            job = finished(stub, job_id)
            assert job.kind == identity_pb2.RESOLUTION_JOB_KIND_RERESOLVE
            assert (job.state, job.dry_run, job.actor) == (SUCCEEDED, False, AUTOMATIC_FIT_ACTOR)
            assert job.records_total == 1_000
    finally:
        suite.stop()


def no_job(stub: identity_pb2_grpc.IdentityServiceStub, job_id: str) -> bool:
    try:
        stub.GetResolutionJob(identity_pb2.GetResolutionJobRequest(job_id=job_id), timeout=10)
    except grpc.RpcError as error:
        return error.code() == grpc.StatusCode.NOT_FOUND
    return False


def fitted_model(stub: identity_pb2_grpc.IdentityServiceStub) -> identity_pb2.MatchModel:
    """The model in force once identity has fitted one by itself (20 s at most)."""
    deadline = time.monotonic() + 20
    while True:
        now = stub.GetMatchModel(identity_pb2.GetMatchModelRequest(), timeout=10)
        if now.created_by == AUTOMATIC_FIT_ACTOR or time.monotonic() > deadline:
            return now
        time.sleep(0.2)


def finished(
    stub: identity_pb2_grpc.IdentityServiceStub, job_id: str
) -> identity_pb2.ResolutionJob:
    """Job ``job_id`` once it has ended (120 s at most)."""
    deadline = time.monotonic() + 120
    while True:
        job = stub.GetResolutionJob(identity_pb2.GetResolutionJobRequest(job_id=job_id))
        if job.state in (SUCCEEDED, FAILED) or time.monotonic() > deadline:
            return job
        time.sleep(0.2)


def api_requests(made: list[IncomingRecord]) -> list[identity_pb2.ResolveRequest]:
    """``made`` as Resolve requests (the API test's ``request``)."""
    return [
        request(
            source=r.ref.source,
            message_id=r.ref.message_id,
            phones=tuple(k.value for k in r.identifiers),
            first=r.attributes["first_name"],
            last=r.attributes["last_name"],
        )
        for r in made
    ]


def test_an_import_fits_the_model_where_the_same_records_streamed_would(
    scratch_databases: Callable[[str], dict[str, str]],
) -> None:
    """An import into a graph of the starting model fits at 250 records and at every doubling
    (its windows end there), places the records after each fit with it, and leaves the fit at
    1,000 as the model in force, with the import's writes; an operator's model is left alone.
    The fit at 250 (125 pairs of one person) found too few matches to stand: the 500 pairs at
    1,000 did (``AutoFitPolicy.stands``)."""
    url = scratch_databases("autofit_import")["identity"]
    suite = InProcessSuite(url, services=("identity",), extra_env={AUTOFIT_ENV: "250"}).start()
    try:
        with grpc.insecure_channel(suite.target("identity")) as channel:
            stub = identity_pb2_grpc.IdentityServiceStub(channel)
            job = imported(stub, "fits", records(0, 1_000))
            assert job.state == SUCCEEDED, job.error
            assert job.phase_seconds["fitting"] > 0
            now = stub.GetMatchModel(identity_pb2.GetMatchModelRequest(), timeout=10)
            assert (now.version, now.created_by) == (1, AUTOMATIC_FIT_ACTOR)
            fitted = json.loads(now.model_json)
            assert fitted["fitted_records"] == 1_000 and fitted["trained_pairs"] > 0
            # Queued with the import's writes: its first windows were placed with the
            # starting model.
            again = finished(stub, reresolution_job_id(now.version))
            assert (again.state, again.records_total) == (SUCCEEDED, 1_000)

            operators = stub.RefitMatchModel(
                identity_pb2.RefitMatchModelRequest(actor="analyst"), timeout=60
            )
            job = imported(stub, "kept", records(1_000, 1_100))
            assert job.state == SUCCEEDED, job.error
            assert "fitting" not in job.phase_seconds
            now = stub.GetMatchModel(identity_pb2.GetMatchModelRequest(), timeout=10)
            assert (now.version, now.created_by) == (operators.version, "analyst")
    finally:
        suite.stop()


def test_a_fit_with_too_few_matches_keeps_the_model_and_waits_for_the_next_doubling(
    scratch_databases: Callable[[str], dict[str, str]],
) -> None:
    """A graph of distinct people (no two records of one person) gives EM nothing to estimate
    m from: the starting model stays, stored with the size it was looked at, and the next look
    at the same size fits nothing more."""
    url = scratch_databases("autofit_distinct")["identity"]

    async def scenario() -> None:
        engine = create_engine(url, pool_size=2)
        try:
            service = IdentityService(IdentityStore(engine))
            distinct = [
                replace(r, attributes={**r.attributes, "first_name": FIRST[n % 8]})
                for n, r in enumerate(records(0, 120)[::2])
            ]
            await service.resolve_batch(distinct)
            policy = AutoFitPolicy(first_at_records=40)
            kept = await service.autofit_model(policy)
            assert kept is not None and kept.created_by == AUTOMATIC_FIT_ACTOR
            assert kept.trained_pairs == 0 and kept.model.fitted_records == 60
            assert kept.model.m == starting_model().m
            assert await service.autofit_model(policy) is None  # next at 120
        finally:
            await engine.dispose()

    asyncio.run(scenario())


def imported(
    stub: identity_pb2_grpc.IdentityServiceStub, name: str, made: list[IncomingRecord]
) -> identity_pb2.ResolutionJob:
    """``made`` staged as an import of its own, committed, and its job once it ended."""
    import_id = f"autofit-{name}"
    staged = api_requests(made)
    batches = (
        identity_pb2.StageImportRecordsRequest(import_id=import_id, records=staged[i : i + 30])
        for i in range(0, len(staged), 30)
    )
    list(stub.StageImportRecords(batches, timeout=60))
    stub.CommitImport(identity_pb2.CommitImportRequest(import_id=import_id), timeout=30)
    return finished(stub, import_id)
