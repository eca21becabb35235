"""grpc.aio server bootstrap shared by every service.

A service hands over its servicer and background tasks; this module adds health
(``grpc.health.v1``, following database connectivity), server reflection, the interceptors,
UNIMPLEMENTED answers that say what is missing, and a graceful drain on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from sqlalchemy.ext.asyncio import AsyncEngine

from svod_runtime.auth import Authenticator, is_loopback, require_secure
from svod_runtime.config import ServiceConfig
from svod_runtime.db import ping
from svod_runtime.guard import Guard
from svod_runtime.interceptors import CoreInterceptor
from svod_runtime.limits import LimitDefaults, PrincipalLimits
from svod_runtime.telemetry import Telemetry
from svod_runtime.tls import TlsFiles, server_credentials

log = logging.getLogger(__name__)

HEALTH_INTERVAL_S = 2.0


class PortInUse(RuntimeError):
    """The service's port is taken (by another process, or another Svod suite)."""


def fill_unimplemented(servicer: Any, base: type, descriptor: ServiceDescriptor) -> None:
    """Methods the servicer does not override answer UNIMPLEMENTED, naming the method."""
    for method in descriptor.methods:
        if getattr(type(servicer), method.name) is getattr(base, method.name):
            message = (
                f"{descriptor.full_name}/{method.name} is not implemented in this release of Svod"
            )

            async def unimplemented(
                request: Any, context: grpc.aio.ServicerContext, _message: str = message
            ) -> None:
                await context.abort(grpc.StatusCode.UNIMPLEMENTED, _message)

            setattr(servicer, method.name, unimplemented)


def security_guard(config: ServiceConfig) -> Guard:
    """Who may call this service (auth.py): refuses to start a service anyone could call on a
    non-loopback address, or whose TLS or key files cannot be used."""
    config.tls.check()
    require_secure(
        config.listen_host,
        keys_file=config.api_keys_file,
        mutual_tls=config.tls.mutual,
        allow_insecure=config.allow_insecure,
    )
    if config.api_keys_file and not config.tls.serving and not is_loopback(config.listen_host):
        log.warning(
            "%s: API keys cross the network in clear text: set SVOD_TLS_CERT_FILE and "
            "SVOD_TLS_KEY_FILE",
            config.service,
        )
    return Guard(
        config.service,
        Authenticator(config.api_keys_file, mutual_tls=config.tls.mutual),
        PrincipalLimits(
            LimitDefaults(
                config.rate_limit_per_s,
                config.rate_limit_burst,
                config.max_streams_per_principal,
            )
        ),
    )


def listen(server: grpc.aio.Server, host: str, port: int, tls: TlsFiles | None) -> int:
    """Adds the address (TLS when the files say so); returns the bound port."""
    address = f"{host}:{port}"
    try:
        if tls is not None and tls.serving:
            bound = server.add_secure_port(address, server_credentials(tls))
        else:
            bound = server.add_insecure_port(address)
    except RuntimeError:  # gRPC's "Failed to bind"
        bound = 0
    if bound == 0:
        raise PortInUse(f"cannot listen on {address}: address in use")
    return int(bound)


@dataclass
class ServiceApp:
    """One running service: its gRPC server, database engine and background tasks."""

    config: ServiceConfig
    telemetry: Telemetry
    engine: AsyncEngine
    servicer: Any
    servicer_base: type
    descriptor: ServiceDescriptor
    add_to_server: Callable[[Any, grpc.aio.Server], None]
    background: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    on_close: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    server: grpc.aio.Server | None = None
    port: int = 0
    metrics_port: int = 0
    # What the health check says (SERVING while the database answers); svod.service.serving.
    serving: bool = False
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _health: Any = None
    _health_server: grpc.aio.Server | None = None

    async def start(self) -> int:
        fill_unimplemented(self.servicer, self.servicer_base, self.descriptor)
        guard = security_guard(self.config)
        server = grpc.aio.server(
            interceptors=[
                CoreInterceptor(
                    self.config.service,
                    max_request_s=self.config.max_request_s,
                    guard=guard,
                    tracer=self.telemetry.tracer,
                    rpc_metrics=self.telemetry.metrics.rpc,
                ),
            ],
            options=[
                ("grpc.max_receive_message_length", 16 * 1024 * 1024),
                # A second server on a taken port must fail, not share it: with SO_REUSEPORT
                # (gRPC's default) two suites bound one port and split requests between them.
                ("grpc.so_reuseport", 0),
            ],
        )
        self.add_to_server(self.servicer, server)
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (self.descriptor.full_name, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        self.port = listen(server, self.config.listen_host, self.config.port, self.config.tls)
        self.telemetry.metrics.observe_serving(lambda: self.serving)
        if self.config.metrics_port:
            self.metrics_port = self._serve_metrics()
        if self.config.health_port:
            self._health_server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
            health_pb2_grpc.add_HealthServicer_to_server(self._health, self._health_server)
            listen(self._health_server, self.config.listen_host, self.config.health_port, None)
            await self._health_server.start()
        await server.start()
        self.server = server
        await self._set_health(await ping(self.engine))
        self._tasks.append(asyncio.create_task(self._watch_database()))
        self._tasks.append(asyncio.create_task(self.telemetry.metrics.run_pollers()))
        self._tasks.append(asyncio.create_task(self.telemetry.metrics.loop_lag.run()))
        for job in self.background:
            self._tasks.append(asyncio.create_task(job()))
        log.info("%s listening on port %d", self.config.service, self.port)
        return self.port

    def _serve_metrics(self) -> int:
        host = self.config.metrics_host or self.config.listen_host
        try:
            return self.telemetry.metrics.serve(host, self.config.metrics_port)
        except OSError as error:
            raise PortInUse(
                f"{self.config.service} cannot serve metrics on {host}:{self.config.metrics_port}"
                f": {error.strerror}"
            ) from None

    async def _set_health(self, serving: bool) -> None:
        self.serving = serving
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", self.descriptor.full_name):
            await self._health.set(name, status)

    async def _watch_database(self) -> None:
        serving = True
        while True:
            await asyncio.sleep(HEALTH_INTERVAL_S)
            now = await ping(self.engine)
            if now != serving:
                log.warning("%s database %s", self.config.service, "up" if now else "down")
                serving = now
            await self._set_health(now)

    async def stop(self, grace_s: float | None = None) -> None:
        """Stops taking requests, lets in-flight ones finish, then ends background work."""
        grace = self.config.shutdown_grace_s if grace_s is None else grace_s
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        if self.server is not None:
            await self.server.stop(grace)
        if self._health_server is not None:
            await self._health_server.stop(None)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        for close in self.on_close:
            await close()
        await self.engine.dispose()
        self.telemetry.shutdown()


async def serve_until_signalled(app: ServiceApp) -> None:
    """Runs the app until SIGTERM or SIGINT, then drains it."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await app.start()
    # Everything loaded at start-up lives as long as the process: keep it out of the cyclic
    # collector's way, so full collections stay short (tail latency).
    gc.freeze()
    await stop.wait()
    log.info("%s draining", app.config.service)
    await app.stop()
