"""Wires the profile service together."""

from __future__ import annotations

from svod.profile.v1 import profile_pb2, profile_pb2_grpc
from svod_profile.adapters.identity_client import IdentityClient
from svod_profile.adapters.peers import PeerEraser
from svod_profile.adapters.quality_client import QualityReporter
from svod_profile.adapters.segment_membership import SegmentMembership
from svod_profile.adapters.segmentation_client import SegmentationAnnouncer
from svod_profile.adapters.storage import ProfileStore
from svod_profile.domain.announcements import CHANGED_TOPIC, CONTACT_FAILED_TOPIC
from svod_profile.domain.survivorship import SurvivorshipRules
from svod_profile.entrypoints.grpc_servicer import ProfileServicer
from svod_profile.entrypoints.metrics import ProfileMetrics
from svod_profile.service_layer.customer_import import CustomerImports
from svod_profile.service_layer.event_import import EventImports
from svod_profile.service_layer.use_cases import ProfileService
from svod_runtime.clients import peer_channel
from svod_runtime.config import ServiceConfig
from svod_runtime.custom_attributes import parse_declarations
from svod_runtime.db import create_engine
from svod_runtime.dead_letters import DeadLetterApi
from svod_runtime.outbox import DeadLetterStore, OutboxRelay
from svod_runtime.outbox_metrics import metered_outbox_store
from svod_runtime.server import ServiceApp
from svod_runtime.telemetry import Telemetry

SERVICE = "profile"


async def create_app(config: ServiceConfig, telemetry: Telemetry) -> ServiceApp:
    engine = create_engine(config.database_url)
    telemetry.instrument_engine(engine)
    security = config.peer_security
    identity_channel = peer_channel(config.peers["identity"], telemetry, security)
    directory = IdentityClient(identity_channel, config.peer_timeout_s)
    segmentation_channel = peer_channel(config.peers["segmentation"], telemetry, security)
    ingestion_channel = peer_channel(config.peers["ingestion"], telemetry, security)
    quality_channel = peer_channel(config.peers["quality"], telemetry, security)
    eraser = PeerEraser(
        identity_channel,
        ingestion_channel,
        segmentation_channel,
        quality_channel,
        config.peer_timeout_s,
    )
    read_engine = create_engine(config.database_url, autocommit=True)
    telemetry.instrument_engine(read_engine)
    store = ProfileStore(engine, read_engine)
    announcer = SegmentationAnnouncer(
        store, segmentation_channel, config.peer_timeout_s, config.currency
    )
    reporter = QualityReporter(quality_channel, config.peer_timeout_s)
    metrics = ProfileMetrics(telemetry.metrics)
    relay = OutboxRelay(
        metered_outbox_store(engine, telemetry.metrics, [CHANGED_TOPIC, CONTACT_FAILED_TOPIC]),
        {CONTACT_FAILED_TOPIC: reporter.contact_failed},
        telemetry.tracer,
        batch_handlers={CHANGED_TOPIC: metrics.counting_announcements(announcer.changed)},
        # Changes go to segmentation a pass at a time (one call of MAX_CHANGES_PER_CALL);
        # bigger passes keep up with thousands of changes a second. 500 -> 1,000 (with
        # segmentation's batches of 500 and profile's event batches keyed by customer): events
        # fully processed 2,319-2,712/s (mean 2,576, 7 runs) -> 2,621-2,763/s (mean 2,707, 5
        # runs), docs/performance.md, session 43.
        batch_size=1000,
        lease_s=config.outbox_lease_s,
        max_attempts=config.outbox_max_attempts,
    )
    service = ProfileService(
        store,
        directory,
        on_announced=relay.wake,
        holders=eraser,
        survivorship=SurvivorshipRules.from_json(config.survivorship),
        attribute_types=parse_declarations(config.custom_attributes),
    )
    service.enable_batching()
    servicer = ProfileServicer(
        service,
        config.currency,
        telemetry.tracer,
        metrics,
        memberships=SegmentMembership(segmentation_channel, config.peer_timeout_s),
        imports=EventImports(store, service.record_consent, relay.wake),
        customer_imports=CustomerImports(
            store, service.survivorship, service.checked, service.apply_many, relay.wake
        ),
    )

    async def close() -> None:
        await read_engine.dispose()
        await identity_channel.close()
        await segmentation_channel.close()
        await ingestion_channel.close()
        await quality_channel.close()

    servicer.dead_letters = DeadLetterApi(DeadLetterStore(engine), relay.topics)
    return ServiceApp(
        config=config,
        telemetry=telemetry,
        engine=engine,
        servicer=servicer,
        servicer_base=profile_pb2_grpc.ProfileServiceServicer,
        descriptor=profile_pb2.DESCRIPTOR.services_by_name["ProfileService"],
        add_to_server=profile_pb2_grpc.add_ProfileServiceServicer_to_server,
        background=[relay.run],
        on_close=[close],
    )
