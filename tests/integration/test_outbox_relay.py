"""The outbox relay never drops a message: a peer that is down means retries, not loss."""

from __future__ import annotations

import time

import grpc
import pytest

from svod.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from svod_cli.suite import (
    InProcessSuite,
    create_database,
    drop_database,
    free_ports,
    prepare_database,
)
from svod_runtime.config import SERVICES
from tests.builders import identify, random_phone

PENDING = ingestion_pb2.RecordStatus.STATE_PENDING
DELIVERED = ingestion_pb2.RecordStatus.STATE_DELIVERED


@pytest.fixture
def private_database(postgres_admin_url):
    name = f"svod_relay_{time.monotonic_ns()}"
    url = create_database(postgres_admin_url, name)
    try:
        prepare_database(url)
        yield url
    finally:
        drop_database(postgres_admin_url, name)


def _status(stub, ref) -> ingestion_pb2.RecordStatus:
    return stub.GetRecordStatus(ingestion_pb2.GetRecordStatusRequest(record_ref=ref), timeout=5)


def test_message_waits_for_identity_and_is_delivered_when_it_comes_up(private_database) -> None:
    ports = dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True))
    front = InProcessSuite(private_database, ports=ports, services=["ingestion"]).start()
    back = None
    try:
        with grpc.insecure_channel(front.target("ingestion")) as channel:
            stub = ingestion_pb2_grpc.IngestionServiceStub(channel)
            request = identify("webshop", phones=(random_phone(),))
            stub.Identify(request, timeout=5)

            deadline = time.monotonic() + 10
            while (status := _status(stub, request.record_ref)).attempts < 2:
                assert time.monotonic() < deadline, status
                time.sleep(0.1)
            assert status.state == PENDING
            assert "UNAVAILABLE" in status.last_error

            back = InProcessSuite(
                private_database, ports=ports, services=["identity", "profile"]
            ).start()
            deadline = time.monotonic() + 20
            while (status := _status(stub, request.record_ref)).state == PENDING:
                assert time.monotonic() < deadline, status
                time.sleep(0.1)
            assert status.state == DELIVERED
            assert status.customer_id
            assert status.attempts >= 3
            assert status.last_error == ""
    finally:
        front.stop()
        if back is not None:
            back.stop()
