"""With API keys on, callers must present one, and the services present theirs to each other."""

from __future__ import annotations

import time

import grpc
import pytest

from svod.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from svod_cli.suite import InProcessSuite, create_database, drop_database, prepare_database
from tests.builders import identify, random_phone


@pytest.fixture
def keyed_suite(postgres_admin_url, monkeypatch):
    name = f"svod_keys_{time.monotonic_ns()}"
    url = create_database(postgres_admin_url, name)
    monkeypatch.setenv("SVOD_PEER_API_KEY", "internal-key")
    suite = None
    try:
        prepare_database(url)
        suite = InProcessSuite(
            url, extra_env={"SVOD_API_KEYS": "pos-key:pos-tills,internal-key:svod"}
        ).start()
        yield suite
    finally:
        if suite is not None:
            suite.stop()
        drop_database(postgres_admin_url, name)


def test_calls_need_a_known_key_and_peers_authenticate(keyed_suite) -> None:
    with grpc.insecure_channel(keyed_suite.target("ingestion")) as channel:
        stub = ingestion_pb2_grpc.IngestionServiceStub(channel)
        request = identify("pos-msk-01", phones=(random_phone(),))
        with pytest.raises(grpc.RpcError) as anonymous:
            stub.Identify(request, timeout=5)
        assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as wrong:
            stub.Identify(request, timeout=5, metadata=[("authorization", "Bearer nope")])
        assert wrong.value.code() == grpc.StatusCode.UNAUTHENTICATED

        key = [("authorization", "Bearer pos-key")]
        stub.Identify(request, timeout=5, metadata=key)
        deadline = time.monotonic() + 15
        while True:
            status = stub.GetRecordStatus(
                ingestion_pb2.GetRecordStatusRequest(record_ref=request.record_ref),
                timeout=5,
                metadata=key,
            )
            if status.state != ingestion_pb2.RecordStatus.STATE_PENDING:
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.05)
        # Delivered: ingestion's relay got through identity's and profile's key checks.
        assert status.state == ingestion_pb2.RecordStatus.STATE_DELIVERED
