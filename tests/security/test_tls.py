"""TLS everywhere: mutual TLS between the five services, clients that verify the server, and
certificates picked up again when cert-manager rotates them."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from svod.common.v1 import common_pb2
from svod.identity.v1 import identity_pb2, identity_pb2_grpc
from svod.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from svod.profile.v1 import profile_pb2, profile_pb2_grpc
from svod_cli.__main__ import main as svod
from svod_cli.suite import (
    InProcessSuite,
    create_database,
    drop_database,
    free_ports,
    prepare_database,
)
from svod_runtime import tls
from svod_runtime.config import SERVICES
from svod_runtime.server import listen
from svod_runtime.tls import TlsFiles, blocking_channel
from tests.builders import PHONE, identify, random_phone
from tests.security.certs import Authority, replace_file
from tests.waiting import wait_until

T = 10.0


class TlsSuite:
    def __init__(self, suite: InProcessSuite, directory: Path, health_ports: dict[str, int]):
        self.suite = suite
        self.directory = directory
        self.health_ports = health_ports
        self.client = TlsFiles(
            cert_file=str(directory / "crm.example.pem"),
            key_file=str(directory / "crm.example.key"),
            ca_file=str(directory / "ca.pem"),
        )

    def channel(self, service: str, files: TlsFiles | None = None) -> grpc.Channel:
        return blocking_channel(self.suite.target(service), files or self.client)


@pytest.fixture(scope="module")
def tls_suite(postgres_admin_url, tmp_path_factory) -> Iterator[TlsSuite]:
    """The five services with mutual TLS and no key file: each has a certificate of its own
    (svod-<service>), which is its identity towards its peers."""
    directory = tmp_path_factory.mktemp("tls")
    authority = Authority.create()
    authority.write(directory, "crm.example")
    health_ports = dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True))
    env = {
        "SVOD_TLS_CA_FILE": str(directory / "ca.pem"),
        "SVOD_UNKNOWN_CUSTOMER_GRACE_S": "2",
        "SVOD_EXPORT_DIR": str(directory / "exports"),  # not the checkout's .data/exports
    }
    for service in SERVICES:
        cert, key, _ = authority.write(directory, f"svod-{service}")
        env[f"SVOD_{service.upper()}_TLS_CERT_FILE"] = str(cert)
        env[f"SVOD_{service.upper()}_TLS_KEY_FILE"] = str(key)
        env[f"SVOD_{service.upper()}_HEALTH_PORT"] = str(health_ports[service])
    name = f"svod_tls_{os.getpid()}_{secrets.token_hex(3)}"
    url = create_database(postgres_admin_url, name)
    suite = None
    try:
        prepare_database(url)
        suite = InProcessSuite(url, extra_env=env).start()
        yield TlsSuite(suite, directory, health_ports)
    finally:
        if suite is not None:
            suite.stop()
        drop_database(postgres_admin_url, name)


def _wait_delivered(stub, ref) -> ingestion_pb2.RecordStatus:
    def settled() -> ingestion_pb2.RecordStatus | None:
        status = stub.GetRecordStatus(
            ingestion_pb2.GetRecordStatusRequest(record_ref=ref), timeout=T
        )
        return status if status.state != ingestion_pb2.RecordStatus.STATE_PENDING else None

    return wait_until(settled, 15, what="the record processed")


def test_an_identify_reaches_a_profile_over_mutual_tls(tls_suite) -> None:
    phone = random_phone()
    request = identify("pos-msk-01", phones=(phone,), first_name="Тимур")
    with tls_suite.channel("ingestion") as channel:
        stub = ingestion_pb2_grpc.IngestionServiceStub(channel)
        stub.Identify(request, timeout=T)
        status = _wait_delivered(stub, request.record_ref)
    # Ingestion reached quality, identity and profile with its own certificate.
    assert status.state == ingestion_pb2.RecordStatus.STATE_DELIVERED, status
    with tls_suite.channel("profile") as channel:
        profile = profile_pb2_grpc.ProfileServiceStub(channel).GetProfile(
            profile_pb2.GetProfileRequest(
                identifier=common_pb2.Identifier(type=PHONE, value=phone)
            ),
            timeout=T,
        )
    assert profile.first_name.value == "Тимур"


def test_a_services_certificate_is_its_principal(tls_suite) -> None:
    """The ingestion certificate may resolve but not merge customers."""
    ingestion = TlsFiles(
        cert_file=str(tls_suite.directory / "svod-ingestion.pem"),
        key_file=str(tls_suite.directory / "svod-ingestion.key"),
        ca_file=str(tls_suite.directory / "ca.pem"),
    )
    with tls_suite.channel("identity", ingestion) as channel:
        stub = identity_pb2_grpc.IdentityServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.MergeCustomers(identity_pb2.MergeCustomersRequest(), timeout=T)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as allowed:
            stub.Resolve(identity_pb2.ResolveRequest(), timeout=T)
        assert allowed.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def _health(channel: grpc.Channel) -> grpc.StatusCode:
    try:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
    except grpc.RpcError as error:
        return error.code()  # type: ignore[attr-defined]
    return grpc.StatusCode.OK


def test_plaintext_a_wrong_ca_and_no_client_certificate_are_refused(tls_suite) -> None:
    target = tls_suite.suite.target("profile")
    with grpc.insecure_channel(target) as plaintext:
        assert _health(plaintext) == grpc.StatusCode.UNAVAILABLE
    other = Authority.create("Someone else's CA")
    other_files = other.write(tls_suite.directory / "other", "crm.example")
    wrong_ca = TlsFiles(
        cert_file=str(tls_suite.directory / "crm.example.pem"),
        key_file=str(tls_suite.directory / "crm.example.key"),
        ca_file=str(other_files[2]),
    )
    with blocking_channel(target, wrong_ca) as channel:
        assert _health(channel) == grpc.StatusCode.UNAVAILABLE
    # A certificate from another CA is not accepted as a client's either.
    foreign_client = TlsFiles(
        cert_file=str(other_files[0]),
        key_file=str(other_files[1]),
        ca_file=str(tls_suite.directory / "ca.pem"),
    )
    with blocking_channel(target, foreign_client) as channel:
        assert _health(channel) == grpc.StatusCode.UNAVAILABLE
    no_client_cert = TlsFiles(ca_file=str(tls_suite.directory / "ca.pem"))
    with blocking_channel(target, no_client_cert) as channel:
        assert _health(channel) == grpc.StatusCode.UNAVAILABLE
    with tls_suite.channel("profile") as channel:
        assert _health(channel) == grpc.StatusCode.OK


def test_probes_get_plaintext_health_on_a_port_of_their_own(tls_suite) -> None:
    port = tls_suite.health_ports["identity"]
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        assert _health(channel) == grpc.StatusCode.OK
        # Only health is there: the API stays behind TLS.
        with pytest.raises(grpc.RpcError) as missing:
            identity_pb2_grpc.IdentityServiceStub(channel).GetRules(
                identity_pb2.GetRulesRequest(), timeout=3
            )
        assert missing.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_the_cli_speaks_tls(tls_suite, monkeypatch, capsys) -> None:
    phone = random_phone()
    request = identify("webshop", phones=(phone,), first_name="Олег")
    with tls_suite.channel("ingestion") as channel:
        stub = ingestion_pb2_grpc.IngestionServiceStub(channel)
        stub.Identify(request, timeout=T)
        _wait_delivered(stub, request.record_ref)
    for service in SERVICES:
        monkeypatch.setenv(f"SVOD_{service.upper()}_TARGET", tls_suite.suite.target(service))
    monkeypatch.setenv("SVOD_TLS_CA_FILE", tls_suite.client.ca_file)
    monkeypatch.setenv("SVOD_TLS_CERT_FILE", tls_suite.client.cert_file)
    monkeypatch.setenv("SVOD_TLS_KEY_FILE", tls_suite.client.key_file)
    assert svod(["profile", "get", "--phone", phone]) == 0
    assert "Олег" in capsys.readouterr().out
    monkeypatch.delenv("SVOD_TLS_CA_FILE")
    monkeypatch.delenv("SVOD_TLS_CERT_FILE")
    monkeypatch.delenv("SVOD_TLS_KEY_FILE")
    assert svod(["profile", "get", "--phone", phone]) == 3  # plaintext: unreachable


async def _health_server(port: int, files: TlsFiles) -> grpc.aio.Server:
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    listen(server, "127.0.0.1", port, files)
    await server.start()
    return server


def _rotate(directory: Path, authority: Authority, name: str) -> None:
    key, cert = authority.issue(name)
    replace_file(directory / f"{name}.key", key)
    replace_file(directory / f"{name}.pem", cert)
    replace_file(directory / "ca.pem", authority.pem)


def test_a_rotated_server_certificate_is_picked_up(tmp_path, monkeypatch) -> None:
    """cert-manager replaces the files with a certificate from a new CA: new connections get
    it, without a restart."""
    monkeypatch.setattr(tls, "SETTLE_S", 0.0)
    old, new = Authority.create("old CA"), Authority.create("new CA")
    cert, key, ca = old.write(tmp_path / "server", "svod-profile")
    files = TlsFiles(str(cert), str(key), "")
    new_ca = tmp_path / "new-ca.pem"
    new_ca.write_bytes(new.pem)
    port = free_ports(1)[0]

    async def scenario() -> list[grpc.StatusCode]:
        server = await _health_server(port, files)
        codes = []
        try:
            for ca_file in (ca, new_ca):
                with blocking_channel(f"127.0.0.1:{port}", TlsFiles(ca_file=str(ca_file))) as ch:
                    codes.append(await asyncio.to_thread(_health, ch))
            _rotate(tmp_path / "server", new, "svod-profile")
            for ca_file in (new_ca,):
                with blocking_channel(f"127.0.0.1:{port}", TlsFiles(ca_file=str(ca_file))) as ch:
                    codes.append(await asyncio.to_thread(_health, ch))
        finally:
            await server.stop(None)
        return codes

    assert asyncio.run(scenario()) == [
        grpc.StatusCode.OK,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.OK,
    ]


def test_a_peer_channel_follows_its_rotated_files(tmp_path, monkeypatch) -> None:
    """A service's channel to its peer re-reads its CA and client certificate when they change:
    after both sides moved to a new CA, the peer's calls still get through."""
    monkeypatch.setattr(tls, "CLIENT_CHECK_S", 0.0)
    monkeypatch.setattr(tls, "SETTLE_S", 0.0)
    old, new = Authority.create("old CA"), Authority.create("new CA")
    server_cert, server_key, server_ca = old.write(tmp_path / "server", "svod-identity")
    server_files = TlsFiles(str(server_cert), str(server_key), str(server_ca))
    client_cert, client_key, client_ca = old.write(tmp_path / "client", "svod-profile")
    client_files = TlsFiles(str(client_cert), str(client_key), str(client_ca))
    port = free_ports(1)[0]
    target = f"127.0.0.1:{port}"

    async def check(channel) -> grpc.StatusCode:
        try:
            await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=3
            )
        except grpc.aio.AioRpcError as error:
            return error.code()
        return grpc.StatusCode.OK

    async def scenario() -> list[grpc.StatusCode]:
        server = await _health_server(port, server_files)
        reloading = tls.aio_channel(target, client_files)
        fixed = grpc.aio.secure_channel(target, tls.channel_credentials(client_files))
        codes = [await check(reloading), await check(fixed)]
        # Rotation: a new CA for everyone; the server restarts on it (old connections drop).
        await server.stop(None)
        _rotate(tmp_path / "server", new, "svod-identity")
        _rotate(tmp_path / "client", new, "svod-profile")
        server = await _health_server(port, server_files)
        try:
            codes += [await check(reloading), await check(fixed)]
        finally:
            await reloading.close()
            await fixed.close()
            await server.stop(None)
        return codes

    ok, down = grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE
    assert asyncio.run(scenario()) == [ok, ok, ok, down]
