"""Wires the profile service together."""

from __future__ import annotations

from svod.profile.v1 import profile_pb2, profile_pb2_grpc
from svod_profile.adapters.identity_client import IdentityClient
from svod_profile.adapters.storage import ProfileStore
from svod_profile.entrypoints.grpc_servicer import ProfileServicer
from svod_profile.service_layer.use_cases import ProfileService
from svod_runtime.clients import peer_channel
from svod_runtime.config import ServiceConfig
from svod_runtime.db import create_engine
from svod_runtime.server import ServiceApp
from svod_runtime.telemetry import Telemetry

SERVICE = "profile"


async def create_app(config: ServiceConfig, telemetry: Telemetry) -> ServiceApp:
    engine = create_engine(config.database_url)
    telemetry.instrument_engine(engine)
    identity_channel = peer_channel(config.peers["identity"], telemetry)
    directory = IdentityClient(identity_channel, config.peer_timeout_s)
    servicer = ProfileServicer(ProfileService(ProfileStore(engine), directory))

    async def close() -> None:
        await identity_channel.close()

    return ServiceApp(
        config=config,
        telemetry=telemetry,
        engine=engine,
        servicer=servicer,
        servicer_base=profile_pb2_grpc.ProfileServiceServicer,
        descriptor=profile_pb2.DESCRIPTOR.services_by_name["ProfileService"],
        add_to_server=profile_pb2_grpc.add_ProfileServiceServicer_to_server,
        on_close=[close],
    )
