"""Wires the ingestion service together: servicer, store, outbox relays and peer channels."""

from __future__ import annotations

from svod.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from svod_ingestion.adapters.downstream import GrpcDownstream
from svod_ingestion.adapters.held_events import HeldEventStore
from svod_ingestion.adapters.import_peers import GrpcEventImportPeers, GrpcImportPeers
from svod_ingestion.adapters.imports import ImportStore
from svod_ingestion.adapters.quality_client import QualityStandardizer
from svod_ingestion.adapters.storage import IngestionStore, redriven_records
from svod_ingestion.domain.attributes import parse_declarations
from svod_ingestion.domain.attribution import Issue
from svod_ingestion.domain.model import RECORD_TOPICS, MessageKind
from svod_ingestion.entrypoints.grpc_servicer import IngestionServicer
from svod_ingestion.service_layer.delivery import RecordDelivery
from svod_ingestion.service_layer.held_sweeper import HeldEventSweeper
from svod_ingestion.service_layer.imports import CustomerImports, EventImports, ImportJobRunner
from svod_ingestion.service_layer.use_cases import IngestionService
from svod_runtime.clients import peer_channel
from svod_runtime.config import ServiceConfig
from svod_runtime.db import create_engine
from svod_runtime.dead_letters import DeadLetterApi
from svod_runtime.hash_secret import deployment_secret
from svod_runtime.metrics import labels
from svod_runtime.outbox import DeadLetterStore, OutboxLane, OutboxRelay
from svod_runtime.outbox_metrics import metered_outbox_store
from svod_runtime.server import ServiceApp
from svod_runtime.telemetry import Telemetry

SERVICE = "ingestion"


async def create_app(config: ServiceConfig, telemetry: Telemetry) -> ServiceApp:
    engine = create_engine(config.database_url)
    telemetry.instrument_engine(engine)
    store = IngestionStore(engine)
    held = HeldEventStore(
        engine, config.unattributed_recheck_max_s, hash_secret=deployment_secret(config)
    )
    identity = peer_channel(config.peers["identity"], telemetry, config.peer_security)
    profile = peer_channel(config.peers["profile"], telemetry, config.peer_security)
    segmentation = peer_channel(config.peers["segmentation"], telemetry, config.peer_security)
    downstream = GrpcDownstream(identity, profile, config.peer_timeout_s)
    delivery = RecordDelivery(
        store,
        downstream,
        config.unknown_customer_grace_s,
        held,
    )
    outbox = metered_outbox_store(engine, telemetry.metrics, list(RECORD_TOPICS))

    def relay_of(lane: OutboxLane, batch_size: int) -> OutboxRelay:
        return OutboxRelay(
            outbox,
            {},
            telemetry.tracer,
            on_failure=dict.fromkeys(RECORD_TOPICS, delivery.failed),
            # A pass at a time: events as one look-up call and one ApplyEventBatch; identify
            # calls of a bulk pass as ResolveBatch streams.
            # Each pass holds the delivery lock shared: an erasure waits for the passes running.
            batch_handlers={
                MessageKind.IDENTIFY.topic: store.while_delivering(delivery.identify),
                MessageKind.TRACK.topic: store.while_delivering(delivery.track),
            },
            batch_size=batch_size,
            lease_s=config.outbox_lease_s,
            max_attempts=config.outbox_max_attempts,
            lane=lane,
        )

    # One relay per lane: a single call is delivered beside a bulk import's passes, not after
    # them (oldest first behind one relay, a single Identify waited p99 29.2 s behind 10,000
    # streamed records; docs/performance.md). Single calls come a few at a time, so their
    # passes are small; bulk passes of 2,000 share the per-pass work (claim, lease, delete).
    interactive = relay_of(OutboxLane.INTERACTIVE, batch_size=200)
    # One bulk relay: a second, overlapping its passes, raised identify's ratio to ResolveBatch
    # 0.36 -> 0.45 on a quiet machine but slowed a single Identify during the import (p50
    # 189-243 -> 280-471 ms), events and the accept unchanged (docs/performance.md, "Two bulk
    # relays in ingestion").
    bulk = relay_of(OutboxLane.BULK, batch_size=2000)

    def wake_relays() -> None:
        interactive.wake()
        bulk.wake()

    sweeper = HeldEventSweeper(held, on_requeued=bulk.wake)
    delivery.on_woken = sweeper.wake
    held_gauge = telemetry.metrics.polled_gauge(
        "svod.ingestion.held_events",
        "{event}",
        "Events not attributed to a customer: held unattributed or waiting, by issue",
    )

    async def poll_held() -> None:
        # Every issue is reported, at 0 when none is held (an alert or panel sees 0, not nothing).
        counts = await held.counts()
        held_gauge.set({labels(issue=i.value): float(counts.get(i, 0)) for i in Issue})

    telemetry.metrics.add_poller("held_events", poll_held)
    # No gRPC retries: with quality down the front door accepts records at once, unchecked
    # (quality checks them before delivery; the relay retries that itself).
    quality = peer_channel(config.peers["quality"], telemetry, config.peer_security, retries=False)
    service = IngestionService(
        store,
        on_enqueued=lambda lane: (interactive if lane is OutboxLane.INTERACTIVE else bulk).wake(),
        held=held,
        on_woken=sweeper.wake,
        identifiers_of=GrpcDownstream.identifiers_of,
    )

    async def retention() -> None:
        await service.run_payload_retention(config.payload_retention_days)

    servicer = IngestionServicer(
        service,
        QualityStandardizer(quality, config.peer_timeout_s),
        config.currency,
        parse_declarations(config.custom_attributes),
    )
    # Customer imports: staged here and with identity, resolved by identity's batch engine,
    # folded into the profiles by a leased job (service_layer/imports.py).
    import_store = ImportStore(engine)
    import_peers = GrpcImportPeers(identity, segmentation, downstream, config.peer_timeout_s)
    # A fold step (1,000 records through ApplyBatch) takes seconds on a loaded machine: the
    # lease is three outbox leases, so a slow step does not lose it.
    # Event imports: stored here, attributed in bulk, staged with profile's set-based event
    # fold; the same job table and runner (kind 'events') commit them.
    event_peers = GrpcEventImportPeers(profile, downstream, config.peer_timeout_s)
    import_jobs = ImportJobRunner(
        import_store,
        import_peers,
        lease_s=3 * config.outbox_lease_s,
        event_peers=event_peers,
    )
    servicer.imports = CustomerImports(import_store, import_peers, on_committed=import_jobs.wake)
    servicer.event_imports = EventImports(
        import_store,
        event_peers,
        config.unknown_customer_grace_s,
        on_committed=import_jobs.wake,
        on_enqueued=wake_relays,
    )
    # Identify calls accepted while quality was unreachable are checked before delivery.
    delivery.quality_gate = servicer.check_stored

    async def close() -> None:
        await identity.close()
        await profile.close()
        await quality.close()
        await segmentation.close()

    servicer.dead_letters = DeadLetterApi(
        DeadLetterStore(engine, on_redrive=redriven_records), bulk.topics
    )
    return ServiceApp(
        config=config,
        telemetry=telemetry,
        engine=engine,
        servicer=servicer,
        servicer_base=ingestion_pb2_grpc.IngestionServiceServicer,
        descriptor=ingestion_pb2.DESCRIPTOR.services_by_name["IngestionService"],
        add_to_server=ingestion_pb2_grpc.add_IngestionServiceServicer_to_server,
        background=[interactive.run, bulk.run, sweeper.run, retention, import_jobs.run],
        on_close=[close],
    )
