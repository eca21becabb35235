"""``svod run``: the five services as child processes, watched until told to stop.

What it promises (each is tested in ``tests/e2e/test_supervisor.py``):

- every documented variable is honoured: ``SVOD_<SERVICE>_PORT``, ``SVOD_<SERVICE>_TARGET``,
  ``SVOD_<SERVICE>_METRICS_PORT``, ``SVOD_LISTEN_HOST`` (default 127.0.0.1 here: a laptop's
  suite is not for the network), ``SVOD_DATABASE_URL`` and the services' own settings, which
  pass through to them; so a second suite runs beside the first on other ports;
- a port already taken is reported before anything starts (and the services themselves bind
  without SO_REUSEPORT, so a race still fails instead of sharing the port);
- SIGTERM or SIGINT, to the supervisor or to its whole process group (Ctrl-C), drains all five
  services and exits 0 with one summary line; a second signal kills what is left;
- a service that dies is reported with its exit code and log file, and the rest are stopped.

Each service runs in a process group of its own, so a terminal's Ctrl-C reaches only the
supervisor, which then stops them in order; and each asks Linux for SIGTERM should the
supervisor die without a word (``SVOD_SUPERVISOR_PID``, see ``svod_runtime.runtime``).
Their output goes to one log file per service.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from svod_runtime.config import SERVICES, metrics_port_of, port_of, target_of
from svod_runtime.tls import TlsFiles, blocking_channel

# How long services get to drain on a stop (their own grace is 10 s, SVOD_SHUTDOWN_GRACE_S).
STOP_TIMEOUT_S = 20.0
STARTUP_TIMEOUT_S = 120.0
LOG_TAIL_LINES = 15


class Stopping(BaseException):
    """Raised in the supervisor by SIGTERM/SIGINT while it is starting the suite."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


class SuiteFailed(RuntimeError):
    """A service could not start or died; the message says which, why and where its log is."""


@dataclass(frozen=True)
class Endpoint:
    service: str
    port: int
    metrics_port: int
    target: str


@dataclass(frozen=True)
class SuitePlan:
    """Where each service of one suite listens, from the environment."""

    listen_host: str
    endpoints: dict[str, Endpoint]

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SuitePlan:
        return cls(
            listen_host=env.get("SVOD_LISTEN_HOST") or "127.0.0.1",
            endpoints={
                s: Endpoint(s, port_of(s, env), metrics_port_of(s, env), target_of(s, env))
                for s in SERVICES
            },
        )

    def child_env(self, base: Mapping[str, str], database_url: str) -> dict[str, str]:
        env = {**base, "SVOD_DATABASE_URL": database_url, "SVOD_LISTEN_HOST": self.listen_host}
        for service, end in self.endpoints.items():
            prefix = f"SVOD_{service.upper()}"
            env[f"{prefix}_PORT"] = str(end.port)
            env[f"{prefix}_TARGET"] = end.target
            env[f"{prefix}_METRICS_PORT"] = str(end.metrics_port)
        return env

    def taken_ports(self) -> list[str]:
        """A line for each port of the plan that something else already listens on."""
        problems = []
        for service, end in self.endpoints.items():
            prefix = f"SVOD_{service.upper()}"
            wanted = [(end.port, f"{prefix}_PORT", "gRPC")]
            if end.metrics_port:
                wanted.append((end.metrics_port, f"{prefix}_METRICS_PORT", "metrics"))
            for port, variable, what in wanted:
                if not port_is_free(self.listen_host, port):
                    problems.append(
                        f"port {port} ({service} {what}, {variable}) is already in use on "
                        f"{self.listen_host}"
                    )
        return problems


def port_is_free(host: str, port: int) -> bool:
    """Whether a listening socket could take ``host:port`` now (as the service will: without
    SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


@dataclass
class Child:
    service: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def describe_exit(self) -> str:
        code = self.process.returncode
        if code is not None and code < 0:
            how = f"was killed by {signal.Signals(-code).name}"
        elif code == 98:  # svod_runtime.entrypoint.EXIT_PORT_IN_USE
            how = "exited with code 98 (its port is in use)"
        else:
            how = f"exited with code {code}"
        return f"{self.service} {how}; its log: {self.log_path}"


@dataclass
class Supervisor:
    """Starts, watches and stops one suite of five service processes."""

    plan: SuitePlan
    log_dir: Path
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    out: Callable[[str], None] = print
    children: dict[str, Child] = field(default_factory=dict)
    _signal: str | None = None
    # Until the suite is up, a signal interrupts whatever the supervisor is doing (Stopping);
    # once it watches, a signal only ends the watch.
    _watching: bool = False
    _stopping: bool = False

    # -- signals -----------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self._stopping:  # a second signal while draining: do not wait any longer
            self.out(f"svod: {name} again: killing the services that are still draining")
            for child in self.children.values():
                if child.process.poll() is None:
                    child.process.kill()
            return
        if self._signal is None:
            self._signal = name
            if not self._watching:
                raise Stopping(name)

    # -- life cycle --------------------------------------------------------------------------

    def start(self, database_url: str) -> None:
        """Starts every service and waits until all answer SERVING; raises SuiteFailed."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = self.plan.child_env(self.env, database_url)
        env["SVOD_SUPERVISOR_PID"] = str(os.getpid())
        for service in SERVICES:
            log_path = self.log_dir / f"{service}-{self.plan.endpoints[service].port}.log"
            with open(log_path, "ab") as log:
                log.write(f"--- svod run: starting {service} at {time.ctime()}\n".encode())
                process = subprocess.Popen(
                    [sys.executable, "-m", f"svod_{service}", "serve"],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    # Out of the terminal's process group: Ctrl-C is the supervisor's to handle.
                    process_group=0,
                )
            self.children[service] = Child(service, process, log_path)
        self._wait_serving()

    def _wait_serving(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        for service, end in self.plan.endpoints.items():
            address = f"127.0.0.1:{end.port}" if self._loopback_reaches() else end.target
            with blocking_channel(address, TlsFiles.from_env(self.env)) as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                while not self._serving(stub):
                    dead = self.first_dead()
                    if dead is not None:
                        raise SuiteFailed(dead.describe_exit())
                    if time.monotonic() > deadline:
                        raise SuiteFailed(
                            f"{service} did not answer SERVING within {STARTUP_TIMEOUT_S:.0f} s; "
                            f"its log: {self.children[service].log_path}"
                        )
                    time.sleep(0.1)

    def _loopback_reaches(self) -> bool:
        return self.plan.listen_host in ("127.0.0.1", "0.0.0.0", "localhost", "::", "")

    @staticmethod
    def _serving(stub: health_pb2_grpc.HealthStub) -> bool:
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.RpcError:
            return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING

    def first_dead(self) -> Child | None:
        return next((c for c in self.children.values() if c.process.poll() is not None), None)

    def watch(self, poll_s: float = 0.2) -> Child | None:
        """Blocks until a signal arrives (returns None) or a service dies (returns it)."""
        self._watching = True
        while self._signal is None:
            dead = self.first_dead()
            if dead is not None:
                return dead
            time.sleep(poll_s)
        return None

    @property
    def signal_received(self) -> str | None:
        return self._signal

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> dict[str, int | None]:
        """SIGTERM to every running service (each drains), then waits; returns exit codes."""
        self._stopping = True
        for child in self.children.values():
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        codes: dict[str, int | None] = {}
        for service, child in self.children.items():
            try:
                codes[service] = child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                codes[service] = child.process.wait()
        return codes

    def log_tail(self, child: Child, lines: int = LOG_TAIL_LINES) -> list[str]:
        try:
            text = child.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []
        return text.splitlines()[-lines:]


def summary(codes: Mapping[str, int | None], elapsed_s: float, cause: str) -> tuple[str, bool]:
    """One line saying how the suite ended, and whether every service drained cleanly."""
    clean = all(code == 0 for code in codes.values())
    ran = _duration(elapsed_s)
    if not codes:
        return f"svod: {cause}; no service had been started (ran {ran})", True
    if clean:
        return f"svod: {cause}; all {len(codes)} services drained and exited 0 (ran {ran})", True
    details = ", ".join(f"{s} {c}" for s, c in codes.items() if c != 0)
    return f"svod: {cause}; services that did not exit 0: {details} (ran {ran})", False


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"
