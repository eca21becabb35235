from __future__ import annotations

import random

import grpc
from google.rpc import error_details_pb2, status_pb2

from svod_runtime.config import ServiceConfig, service_database_url
from svod_runtime.errors import FieldViolation, InvalidArgument, NotFound
from svod_runtime.interceptors import parse_api_keys, status_for
from svod_runtime.outbox import MAX_DELAY_S, DeliveryError, retry_delay


def test_invalid_argument_carries_bad_request_field_violations() -> None:
    code, message, trailers = status_for(
        InvalidArgument([FieldViolation("record_ref.source", "required")])
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "record_ref.source" in message
    status = status_pb2.Status.FromString(dict(trailers)["grpc-status-details-bin"])
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert bad_request.field_violations[0].field == "record_ref.source"


def test_domain_errors_map_to_their_codes() -> None:
    assert status_for(NotFound("x"))[0] == grpc.StatusCode.NOT_FOUND


def test_backoff_grows_and_is_capped() -> None:
    rng = random.Random(7)
    delays = [retry_delay(n, rng) for n in range(1, 20)]
    assert delays[0] <= 0.5
    assert delays[5] > delays[0]
    assert max(delays) <= MAX_DELAY_S


def test_permanent_and_transient_peer_answers() -> None:
    assert DeliveryError("INVALID_ARGUMENT", "").permanent
    assert not DeliveryError("UNAVAILABLE", "").permanent
    assert not DeliveryError("DEADLINE_EXCEEDED", "").permanent


def test_service_url_uses_its_own_role_unless_given() -> None:
    env = {"SVOD_DATABASE_URL": "postgresql://postgres@db:5432/svod"}
    assert service_database_url("identity", env) == (
        "postgresql+psycopg://svod_identity@db:5432/svod"
    )
    env["SVOD_PROFILE_DATABASE_URL"] = "postgresql://p:secret@profile-db/prof"
    assert service_database_url("profile", env) == "postgresql+psycopg://p:secret@profile-db/prof"


def test_config_reads_ports_and_peers() -> None:
    config = ServiceConfig.from_env(
        "ingestion",
        {
            "SVOD_DATABASE_URL": "postgresql://x@h/d",
            "SVOD_INGESTION_PORT": "6000",
            "SVOD_IDENTITY_TARGET": "identity:7000",
        },
    )
    assert config.port == 6000
    assert config.peers["identity"] == "identity:7000"
    assert config.peers["profile"] == "127.0.0.1:50053"


def test_api_keys_parse_with_principals() -> None:
    assert parse_api_keys("k1:pos, k2") == {"k1": "pos", "k2": "default"}
