"""Wires the quality service together.

Its RPCs are defined in protos/svod/quality/v1 and answer UNIMPLEMENTED (naming the
method) until the quality issue lands; the service already runs, owns its schema and
reports health.
"""

from __future__ import annotations

from svod.quality.v1 import quality_pb2, quality_pb2_grpc
from svod_runtime.config import ServiceConfig
from svod_runtime.db import create_engine
from svod_runtime.server import ServiceApp
from svod_runtime.telemetry import Telemetry

SERVICE = "quality"


class QualityServicer(quality_pb2_grpc.QualityServiceServicer):
    """No RPC is implemented yet."""


async def create_app(config: ServiceConfig, telemetry: Telemetry) -> ServiceApp:
    engine = create_engine(config.database_url)
    telemetry.instrument_engine(engine)
    return ServiceApp(
        config=config,
        telemetry=telemetry,
        engine=engine,
        servicer=QualityServicer(),
        servicer_base=quality_pb2_grpc.QualityServiceServicer,
        descriptor=quality_pb2.DESCRIPTOR.services_by_name["QualityService"],
        add_to_server=quality_pb2_grpc.add_QualityServiceServicer_to_server,
    )
