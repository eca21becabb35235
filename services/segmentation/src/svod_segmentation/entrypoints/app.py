"""Wires the segmentation service together.

Settings of its own (environment):

- ``SVOD_SEGMENTATION_SWEEP_S``: how often due time conditions are re-evaluated (window
  expiry); default 1.
- ``SVOD_SEGMENTATION_RECOMPUTE_S``: period of the RFM/ABC recompute (cut-offs); 0 = off;
  default 3600.
- ``SVOD_SEGMENTATION_SYNC_S``: how often live bindings' changes become deliveries and
  scheduled full syncs start; default 2.
- ``SVOD_EXPORT_DIR``: where file and ad-audience destinations write (one folder per
  destination); default ``.data/exports`` under the working directory.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import Field

from svod.segmentation.v1 import segmentation_pb2, segmentation_pb2_grpc
from svod_runtime.clients import peer_channel
from svod_runtime.config import DEFAULT_PORTS, ServiceConfig
from svod_runtime.custom_attributes import parse_declarations
from svod_runtime.db import create_engine
from svod_runtime.dead_letters import DeadLetterApi
from svod_runtime.outbox import DeadLetterStore, OutboxRelay
from svod_runtime.outbox_metrics import metered_outbox_store
from svod_runtime.server import ServiceApp
from svod_runtime.settings import SettingsModel
from svod_runtime.telemetry import Telemetry
from svod_segmentation.adapters.activation_storage import (
    EXPORT_TOPIC,
    WEBHOOK_TOPIC,
    ActivationStore,
)
from svod_segmentation.adapters.export_files import ExportFileWriter
from svod_segmentation.adapters.profile_client import ProfileDirectory
from svod_segmentation.adapters.storage import SegmentationStore
from svod_segmentation.adapters.webhook_client import WebhookClient
from svod_segmentation.entrypoints.grpc_servicer import AccessPolicy, SegmentationServicer
from svod_segmentation.entrypoints.metrics import SegmentationMetrics
from svod_segmentation.service_layer.activation import ActivationService
from svod_segmentation.service_layer.campaigns import CampaignService
from svod_segmentation.service_layer.use_cases import SegmentationService

SERVICE = "segmentation"


class SegmentationSettings(SettingsModel):
    sweep_s: float = Field(
        1.0,
        validation_alias="SVOD_SEGMENTATION_SWEEP_S",
        description="How often due time conditions are re-evaluated (window expiry).",
    )
    recompute_s: float = Field(
        3600.0,
        validation_alias="SVOD_SEGMENTATION_RECOMPUTE_S",
        description="Period of the RFM/ABC recompute (cut-offs); 0: off.",
    )
    sync_s: float = Field(
        2.0,
        validation_alias="SVOD_SEGMENTATION_SYNC_S",
        description="How often live bindings' changes become deliveries and scheduled full "
        "syncs start.",
    )
    export_dir: str = Field(
        ".data/exports",
        validation_alias="SVOD_EXPORT_DIR",
        description="Where file and ad-audience destinations write (a folder per destination).",
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SegmentationSettings:
        return cls.load(env)


async def create_app(
    config: ServiceConfig,
    telemetry: Telemetry,
    settings: SegmentationSettings | None = None,
) -> ServiceApp:
    settings = settings or SegmentationSettings.from_env(config.own_settings_env)
    engine = create_engine(config.database_url)
    telemetry.instrument_engine(engine)
    metrics = SegmentationMetrics(telemetry.metrics)
    service = SegmentationService(
        SegmentationStore(engine, parse_declarations(config.custom_attributes)),
        on_memberships=metrics.memberships_changed,
    )
    # Contact data for deliveries comes from the profile service.
    profile_target = config.peers.get("profile", f"127.0.0.1:{DEFAULT_PORTS['profile']}")
    profile_channel = peer_channel(profile_target, telemetry, config.peer_security)
    activation_store = ActivationStore(engine)
    activation = ActivationService(
        activation_store,
        ProfileDirectory(profile_channel, config.peer_timeout_s),
        WebhookClient(),
        Path(settings.export_dir).resolve(),
        files=ExportFileWriter(),
    )
    relay = OutboxRelay(
        metered_outbox_store(engine, telemetry.metrics, [WEBHOOK_TOPIC, EXPORT_TOPIC]),
        {WEBHOOK_TOPIC: activation.deliver_webhook, EXPORT_TOPIC: activation.run_export},
        telemetry.tracer,
        lease_s=config.outbox_lease_s,
        max_attempts=config.outbox_max_attempts,
    )
    activation.on_enqueued = relay.wake
    # Segment-scoped principals: the segments they may use come with their principal.
    servicer = SegmentationServicer(
        service,
        AccessPolicy(),
        telemetry.tracer,
        activation=activation,
        campaigns=CampaignService(activation_store),
        currency=config.currency,
        metrics=metrics,
    )

    async def sweeper() -> None:
        await service.run_sweeper(settings.sweep_s)

    async def recomputer() -> None:
        await service.run_recomputer(settings.recompute_s)

    async def activator() -> None:
        await activation.run(settings.sync_s)

    async def close() -> None:
        await profile_channel.close()

    background = [sweeper, relay.run, activator]
    if settings.recompute_s > 0:
        background.append(recomputer)
    servicer.dead_letters = DeadLetterApi(DeadLetterStore(engine), relay.topics)
    return ServiceApp(
        config=config,
        telemetry=telemetry,
        engine=engine,
        servicer=servicer,
        servicer_base=segmentation_pb2_grpc.SegmentationServiceServicer,
        descriptor=segmentation_pb2.DESCRIPTOR.services_by_name["SegmentationService"],
        add_to_server=segmentation_pb2_grpc.add_SegmentationServiceServicer_to_server,
        background=background,
        on_close=[close],
    )
