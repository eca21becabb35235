"""Wires the identity service together."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field

from svod.identity.v1 import identity_pb2, identity_pb2_grpc
from svod_identity.adapters.announcements import (
    ATTRIBUTION_TOPIC,
    MERGED_TOPIC,
    QUALITY_TOPIC,
    SPLIT_TOPIC,
)
from svod_identity.adapters.ingestion_client import IngestionNotifier
from svod_identity.adapters.job_storage import JobStore
from svod_identity.adapters.metrics_queries import IdentityGaugeQueries
from svod_identity.adapters.profile_client import ProfileAnnouncer
from svod_identity.adapters.quality_client import QualityReporter
from svod_identity.adapters.storage import IdentityStore
from svod_identity.domain.matching.autofit import (
    AUTOFIT_ENV,
    RERESOLVE_ENV,
    SUGGESTED_FIRST_FIT_RECORDS,
    SUGGESTED_RERESOLVE_UP_TO_RECORDS,
    AutoFitPolicy,
)
from svod_identity.entrypoints.grpc_servicer import IdentityServicer
from svod_identity.entrypoints.metrics import IdentityMetrics
from svod_identity.service_layer.autofit import ModelAutoFit
from svod_identity.service_layer.bulk import BulkJobs, JobRunner
from svod_identity.service_layer.use_cases import IdentityService
from svod_runtime.clients import peer_channel
from svod_runtime.config import ServiceConfig
from svod_runtime.db import create_engine
from svod_runtime.dead_letters import DeadLetterApi
from svod_runtime.outbox import DeadLetterStore, OutboxRelay
from svod_runtime.outbox_metrics import metered_outbox_store
from svod_runtime.server import ServiceApp
from svod_runtime.settings import SettingsModel
from svod_runtime.telemetry import Telemetry

SERVICE = "identity"


class IdentitySettings(SettingsModel):
    model_autofit_records: int = Field(
        SUGGESTED_FIRST_FIT_RECORDS,
        ge=0,
        validation_alias=AUTOFIT_ENV,
        description="Records in the graph at which identity first fits its match model by "
        "itself (again at every doubling; an import's too) while no operator's model is in "
        "force; 0: never (domain/matching/autofit.py).",
    )
    model_autofit_reresolve_records: int = Field(
        SUGGESTED_RERESOLVE_UP_TO_RECORDS,
        ge=0,
        validation_alias=RERESOLVE_ENV,
        description="The largest graph (records) identity re-resolves by itself after an "
        "automatic fit that changed the model, so the records placed before the fit are placed "
        "as the fitted model places them (a ReresolveAll job named auto-fit-v<version>); 0: "
        "never (domain/matching/autofit.py).",
    )

    @property
    def autofit_policy(self) -> AutoFitPolicy:
        return AutoFitPolicy(
            self.model_autofit_records,
            reresolve_up_to_records=self.model_autofit_reresolve_records,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IdentitySettings:
        return cls.load(env)


async def create_app(
    config: ServiceConfig, telemetry: Telemetry, settings: IdentitySettings | None = None
) -> ServiceApp:
    settings = settings or IdentitySettings.from_env(config.own_settings_env)
    engine = create_engine(config.database_url)
    telemetry.instrument_engine(engine)
    profile = peer_channel(config.peers["profile"], telemetry, config.peer_security)
    quality = peer_channel(config.peers["quality"], telemetry, config.peer_security)
    ingestion = peer_channel(config.peers["ingestion"], telemetry, config.peer_security)
    announcer = ProfileAnnouncer(profile, config.peer_timeout_s)
    reporter = QualityReporter(quality, config.peer_timeout_s)
    notifier = IngestionNotifier(ingestion, config.peer_timeout_s)
    relay = OutboxRelay(
        metered_outbox_store(
            engine,
            telemetry.metrics,
            [MERGED_TOPIC, SPLIT_TOPIC, QUALITY_TOPIC, ATTRIBUTION_TOPIC],
        ),
        {
            MERGED_TOPIC: announcer.merged,
            SPLIT_TOPIC: announcer.split,
            QUALITY_TOPIC: reporter.report,
        },
        telemetry.tracer,
        batch_handlers={ATTRIBUTION_TOPIC: notifier.changed},
        lease_s=config.outbox_lease_s,
        max_attempts=config.outbox_max_attempts,
    )
    jobs = JobStore(engine)
    # Imports and re-resolutions run one at a time, each in a worker process of its own.
    runner = JobRunner(
        jobs,
        config.database_url,
        on_announced=relay.wake,
        worker_env={
            AUTOFIT_ENV: str(settings.model_autofit_records),
            RERESOLVE_ENV: str(settings.model_autofit_reresolve_records),
        },
    )
    metrics = IdentityMetrics(
        telemetry.metrics, IdentityGaugeQueries(engine), telemetry.metrics.slow_poll_s
    )
    service = IdentityService(IdentityStore(engine), on_commit=relay.wake)
    servicer = IdentityServicer(service, BulkJobs(jobs, runner), metrics)
    autofit = ModelAutoFit(service, settings.autofit_policy)

    async def close() -> None:
        await profile.close()
        await quality.close()
        await ingestion.close()

    servicer.dead_letters = DeadLetterApi(DeadLetterStore(engine), relay.topics)
    return ServiceApp(
        config=config,
        telemetry=telemetry,
        engine=engine,
        servicer=servicer,
        servicer_base=identity_pb2_grpc.IdentityServiceServicer,
        descriptor=identity_pb2.DESCRIPTOR.services_by_name["IdentityService"],
        add_to_server=identity_pb2_grpc.add_IdentityServiceServicer_to_server,
        background=[relay.run, runner.run, autofit.run],
        on_close=[close],
    )
