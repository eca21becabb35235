"""Wires the quality service together."""

from __future__ import annotations

import asyncio
import logging

from svod.quality.v1 import quality_pb2, quality_pb2_grpc
from svod_quality.adapters.profile_client import ProfileClient
from svod_quality.adapters.storage import QualityStore
from svod_quality.domain import ScoreWeights
from svod_quality.entrypoints.batch import BatchRunner
from svod_quality.entrypoints.grpc_servicer import QualityServicer
from svod_quality.entrypoints.metrics import QualityMetrics
from svod_quality.entrypoints.settings import QualitySettings
from svod_quality.service_layer.use_cases import QualityService
from svod_runtime.clients import peer_channel
from svod_runtime.config import ServiceConfig
from svod_runtime.db import create_engine
from svod_runtime.errors import SvodError
from svod_runtime.hash_secret import deployment_secret
from svod_runtime.server import ServiceApp
from svod_runtime.telemetry import Telemetry

SERVICE = "quality"
log = logging.getLogger(__name__)


async def daily_refresh(service: QualityService, settings: QualitySettings) -> None:
    """Makes sure there is a report snapshot for every day (the trend's points)."""
    if settings.refresh_interval_s <= 0:
        return
    await asyncio.sleep(settings.refresh_first_delay_s)
    while True:
        try:
            await service.refresh_if_due()
        except SvodError as error:  # profile service away, another replica refreshing ...
            log.warning("daily quality report refresh skipped: %s (%s)", error.code, error)
        except Exception:  # try again at the next interval
            log.exception("daily quality report refresh failed")
        await asyncio.sleep(settings.refresh_interval_s)


async def create_app(config: ServiceConfig, telemetry: Telemetry) -> ServiceApp:
    settings = QualitySettings.from_env(config.own_settings_env)
    engine = create_engine(config.database_url)
    telemetry.instrument_engine(engine)
    profile_channel = peer_channel(config.peers["profile"], telemetry, config.peer_security)
    profiles = ProfileClient(profile_channel, config.peer_timeout_s, settings.refresh_timeout_s)
    weights = ScoreWeights(freshness_days=settings.freshness_days)
    metrics = QualityMetrics(telemetry.metrics)
    service = QualityService(
        QualityStore(engine),
        profiles,
        weights=weights,
        hash_secret=deployment_secret(config),
        on_tally=metrics.tallied,
    )
    runner = BatchRunner(settings.workers)

    async def close() -> None:
        runner.close()
        await profile_channel.close()

    return ServiceApp(
        config=config,
        telemetry=telemetry,
        engine=engine,
        servicer=QualityServicer(service, runner),
        servicer_base=quality_pb2_grpc.QualityServiceServicer,
        descriptor=quality_pb2.DESCRIPTOR.services_by_name["QualityService"],
        add_to_server=quality_pb2_grpc.add_QualityServiceServicer_to_server,
        background=[lambda: daily_refresh(service, settings)],
        on_close=[close],
    )
