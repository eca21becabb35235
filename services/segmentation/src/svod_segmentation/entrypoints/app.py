"""Wires the segmentation service together.

Settings of its own (environment):

- ``SVOD_SEGMENTATION_SWEEP_S``: how often due time conditions are re-evaluated (window
  expiry); default 1.
- ``SVOD_SEGMENTATION_RECOMPUTE_S``: period of the RFM/ABC recompute (cut-offs); 0 = off;
  default 3600.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from svod.segmentation.v1 import segmentation_pb2, segmentation_pb2_grpc
from svod_runtime.config import ServiceConfig
from svod_runtime.custom_attributes import parse_declarations
from svod_runtime.db import create_engine
from svod_runtime.server import ServiceApp
from svod_runtime.telemetry import Telemetry
from svod_segmentation.adapters.storage import SegmentationStore
from svod_segmentation.entrypoints.grpc_servicer import AccessPolicy, SegmentationServicer
from svod_segmentation.entrypoints.metrics import SegmentationMetrics
from svod_segmentation.service_layer.use_cases import SegmentationService

SERVICE = "segmentation"


@dataclass(frozen=True)
class SegmentationSettings:
    sweep_s: float = 1.0
    recompute_s: float = 3600.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> SegmentationSettings:
        env = dict(os.environ if env is None else env)
        return cls(
            sweep_s=float(env.get("SVOD_SEGMENTATION_SWEEP_S") or 1.0),
            recompute_s=float(env.get("SVOD_SEGMENTATION_RECOMPUTE_S") or 3600.0),
        )


async def create_app(
    config: ServiceConfig,
    telemetry: Telemetry,
    settings: SegmentationSettings | None = None,
) -> ServiceApp:
    settings = settings or SegmentationSettings.from_env()
    engine = create_engine(config.database_url)
    telemetry.instrument_engine(engine)
    metrics = SegmentationMetrics(telemetry.metrics)
    service = SegmentationService(
        SegmentationStore(engine, parse_declarations(config.custom_attributes)),
        on_memberships=metrics.memberships_changed,
    )
    # Segment-scoped principals: the segments they may use come with their principal.
    servicer = SegmentationServicer(service, AccessPolicy(), telemetry.tracer, metrics)

    async def sweeper() -> None:
        await service.run_sweeper(settings.sweep_s)

    async def recomputer() -> None:
        await service.run_recomputer(settings.recompute_s)

    background = [sweeper]
    if settings.recompute_s > 0:
        background.append(recomputer)
    return ServiceApp(
        config=config,
        telemetry=telemetry,
        engine=engine,
        servicer=servicer,
        servicer_base=segmentation_pb2_grpc.SegmentationServiceServicer,
        descriptor=segmentation_pb2.DESCRIPTOR.services_by_name["SegmentationService"],
        add_to_server=segmentation_pb2_grpc.add_SegmentationServiceServicer_to_server,
        background=background,
    )
