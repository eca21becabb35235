"""Wires the segmentation service together.

Its RPCs are defined in protos/svod/segmentation/v1 and answer UNIMPLEMENTED (naming the
method) until the segmentation issue lands; the service already runs, owns its schema and
reports health.
"""

from __future__ import annotations

from svod.segmentation.v1 import segmentation_pb2, segmentation_pb2_grpc
from svod_runtime.config import ServiceConfig
from svod_runtime.db import create_engine
from svod_runtime.server import ServiceApp
from svod_runtime.telemetry import Telemetry

SERVICE = "segmentation"


class SegmentationServicer(segmentation_pb2_grpc.SegmentationServiceServicer):
    """No RPC is implemented yet."""


async def create_app(config: ServiceConfig, telemetry: Telemetry) -> ServiceApp:
    engine = create_engine(config.database_url)
    telemetry.instrument_engine(engine)
    return ServiceApp(
        config=config,
        telemetry=telemetry,
        engine=engine,
        servicer=SegmentationServicer(),
        servicer_base=segmentation_pb2_grpc.SegmentationServiceServicer,
        descriptor=segmentation_pb2.DESCRIPTOR.services_by_name["SegmentationService"],
        add_to_server=segmentation_pb2_grpc.add_SegmentationServiceServicer_to_server,
    )
