"""Bringing the five services up against one Postgres: schemas, roles, migrations, processes.

Used by ``svod run`` (one process per service, as in production) and by the test suite (all
services inside one process on loopback, so one in-memory span exporter sees every span).
"""

from __future__ import annotations

import asyncio
import importlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import grpc
import psycopg
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace.export import SpanExporter
from psycopg import sql
from sqlalchemy.engine import make_url

from svod_runtime.config import DEFAULT_PORTS, SERVICES, ServiceConfig, service_database_url
from svod_runtime.db import bootstrap_service_schema, libpq_url
from svod_runtime.migrations import upgrade
from svod_runtime.server import ServiceApp
from svod_runtime.telemetry import Telemetry
from svod_runtime.tls import TlsFiles, blocking_channel

TOP = Path(__file__).resolve().parents[2]
# Extensions a service's schema needs (created by the administrator at bootstrap).
EXTENSIONS: dict[str, tuple[str, ...]] = {}


def versions_dir(service: str) -> Path:
    return TOP / "services" / service / "migrations" / "versions"


def with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


def create_database(admin_url: str, name: str) -> str:
    with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_database(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def prepare_database(db_admin_url: str) -> dict[str, str]:
    """Creates every service's role and schema, runs its migrations; returns service URLs."""
    env = {"SVOD_DATABASE_URL": db_admin_url}
    urls = {}
    for service in SERVICES:
        bootstrap_service_schema(db_admin_url, service, extensions=EXTENSIONS.get(service, ()))
        urls[service] = service_database_url(service, env)
        upgrade(versions_dir(service), urls[service], service)
    return urls


def free_ports(count: int) -> list[int]:
    sockets = []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def suite_env(
    db_admin_url: str, ports: dict[str, int], metrics_ports: dict[str, int] | None = None
) -> dict[str, str]:
    """Environment of a suite on loopback; without ``metrics_ports`` no service serves metrics
    (tests must never take the default ports)."""
    env = {"SVOD_DATABASE_URL": db_admin_url, "SVOD_LISTEN_HOST": "127.0.0.1"}
    for service, port in ports.items():
        env[f"SVOD_{service.upper()}_PORT"] = str(port)
        env[f"SVOD_{service.upper()}_TARGET"] = f"127.0.0.1:{port}"
        env[f"SVOD_{service.upper()}_METRICS_PORT"] = str((metrics_ports or {}).get(service, 0))
    return env


# Five Python processes importing gRPC, SQLAlchemy and OpenTelemetry take 2-3 s alone, but a
# start under load (a CI machine running several suites) was seen taking over 30 s.
HEALTHY_TIMEOUT_S = 120.0


def wait_healthy(
    ports: dict[str, int],
    timeout_s: float = HEALTHY_TIMEOUT_S,
    env: dict[str, str] | None = None,
) -> None:
    """Waits for every service to answer SERVING (over TLS when ``env`` has TLS files)."""
    deadline = time.monotonic() + timeout_s
    for service, port in ports.items():
        files = TlsFiles.from_env(env or {}, service)
        with blocking_channel(f"127.0.0.1:{port}", files) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.RpcError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{service} on port {port} did not become healthy")
                time.sleep(0.1)


class InProcessSuite:
    """All five services in one background event loop, on loopback ports."""

    def __init__(
        self,
        db_admin_url: str,
        exporters: Sequence[SpanExporter] = (),
        ports: dict[str, int] | None = None,
        services: Sequence[str] = SERVICES,
        extra_env: dict[str, str] | None = None,
        metrics: bool = False,
    ) -> None:
        self.ports = ports or dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True))
        self.metrics_ports = (
            dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True)) if metrics else {}
        )
        self.services = tuple(services)
        self.env = {
            **suite_env(db_admin_url, self.ports, self.metrics_ports),
            **(extra_env or {}),
        }
        self.exporters = tuple(exporters)
        self.apps: dict[str, ServiceApp] = {}
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> InProcessSuite:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(60)
        wait_healthy({s: self.ports[s] for s in self.services}, env=self.env)
        return self

    async def _start(self) -> None:
        for service in self.services:
            module = importlib.import_module(f"svod_{service}.entrypoints.app")
            config = ServiceConfig.from_env(service, self.env)
            telemetry = Telemetry.for_config(config, extra_exporters=self.exporters)
            app = await module.create_app(config, telemetry)
            await app.start()
            self.apps[service] = app

    def stop(self) -> None:
        async def stop_all() -> None:
            for app in reversed(list(self.apps.values())):
                await app.stop(1.0)

        asyncio.run_coroutine_threadsafe(stop_all(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    def target(self, service: str) -> str:
        return f"127.0.0.1:{self.ports[service]}"

    def metrics_target(self, service: str) -> str:
        return f"127.0.0.1:{self.metrics_ports[service]}"


class ProcessSuite:
    """Each service in its own process (``python -m svod_<name> serve``), as deployed."""

    def __init__(
        self,
        db_admin_url: str,
        ports: dict[str, int] | None = None,
        extra_env: dict[str, str] | None = None,
        metrics_ports: dict[str, int] | None = None,
    ) -> None:
        self.ports = ports or dict(DEFAULT_PORTS)
        self.metrics_ports = metrics_ports or {}
        self.env = {
            **os.environ,
            **suite_env(db_admin_url, self.ports, self.metrics_ports),
            **(extra_env or {}),
        }
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self) -> ProcessSuite:
        for service in SERVICES:
            self.processes[service] = subprocess.Popen(
                [sys.executable, "-m", f"svod_{service}", "serve"], env=self.env
            )
        try:
            wait_healthy(self.ports, env=self.env)
        except TimeoutError:
            self.stop()
            raise
        return self

    def stop(self, timeout_s: float = 15.0) -> dict[str, int | None]:
        """SIGTERM to all (they drain), then wait; returns each exit code."""
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        codes: dict[str, int | None] = {}
        for service, process in self.processes.items():
            try:
                codes[service] = process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                codes[service] = process.wait()
        return codes

    def target(self, service: str) -> str:
        return f"127.0.0.1:{self.ports[service]}"
