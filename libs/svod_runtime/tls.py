"""TLS for servers and clients, from ``SVOD_TLS_CERT_FILE``, ``SVOD_TLS_KEY_FILE`` and
``SVOD_TLS_CA_FILE``.

- A server with a certificate and key serves TLS only; with a CA file too it requires and
  verifies client certificates (mutual TLS).
- A client (a peer service, ``svod``) with a CA file verifies the server against it (else
  against the system's roots when TLS is on) and presents its certificate when it has one.
- Certificates are re-read when their files change (cert-manager rotates them in place): the
  server picks the new pair up at the next handshake; a client channel opens a new connection
  with the new files for calls made after the change and closes the old one a little later.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from pydantic import AliasChoices, Field, create_model

from svod_runtime.errors import ConfigurationError
from svod_runtime.settings import SettingsModel

log = logging.getLogger(__name__)

# How often a client channel looks at its files; and how long an old channel lives on after a
# change, so calls already running on it can finish.
CLIENT_CHECK_S = 5.0
OLD_CHANNEL_GRACE_S = 60.0
# Changed files are taken up once none has changed for this long, so that a key and certificate
# copied one after the other are never read half-way (Kubernetes swaps them atomically anyway).
SETTLE_S = 1.0


class TlsSettings(SettingsModel):
    """``SVOD_TLS_*``; ``tls_settings(service)`` reads ``SVOD_<SERVICE>_TLS_*`` first."""

    cert_file: str = Field(
        "", validation_alias="SVOD_TLS_CERT_FILE", description="Certificate (PEM) to serve."
    )
    key_file: str = Field(
        "", validation_alias="SVOD_TLS_KEY_FILE", description="Its private key (PEM)."
    )
    ca_file: str = Field(
        "",
        validation_alias="SVOD_TLS_CA_FILE",
        description="CA (PEM) that peers' certificates are verified against (mutual TLS).",
    )
    server_name: str = Field(
        "",
        validation_alias="SVOD_TLS_SERVER_NAME",
        description="Host name to verify a server's certificate against instead of the target's.",
    )
    force: str = Field(
        "",
        validation_alias="SVOD_TLS",
        description="Exactly 1: a client without files still speaks TLS (the system's roots).",
    )


_PER_SERVICE = {
    "cert_file": "CERT_FILE",
    "key_file": "KEY_FILE",
    "ca_file": "CA_FILE",
    "server_name": "SERVER_NAME",
}


@functools.cache
def tls_settings(service: str) -> type[TlsSettings]:
    if not service:
        return TlsSettings
    fields: dict[str, Any] = {
        name: (
            str,
            Field(
                "",
                validation_alias=AliasChoices(
                    f"SVOD_{service.upper()}_TLS_{variable}", f"SVOD_TLS_{variable}"
                ),
                description=TlsSettings.model_fields[name].description,
            ),
        )
        for name, variable in _PER_SERVICE.items()
    }
    return create_model(f"{service.title()}TlsSettings", __base__=TlsSettings, **fields)


@dataclass(frozen=True)
class TlsFiles:
    cert_file: str = ""
    key_file: str = ""
    ca_file: str = ""
    # A client with none of the files may still want TLS against the system's roots.
    force: bool = False
    # Host name to verify the server's certificate against instead of the target's.
    server_name: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str], service: str = "") -> TlsFiles:
        """From ``SVOD_TLS_*``; ``SVOD_<SERVICE>_TLS_*`` win for that service (one environment
        may then give each service its own certificate)."""
        settings = tls_settings(service).load(env)
        return cls(
            cert_file=settings.cert_file,
            key_file=settings.key_file,
            ca_file=settings.ca_file,
            force=settings.force == "1",
            server_name=settings.server_name,
        )

    @property
    def serving(self) -> bool:
        """A server with these files serves TLS."""
        return bool(self.cert_file and self.key_file)

    @property
    def mutual(self) -> bool:
        """A server with these files requires verified client certificates."""
        return self.serving and bool(self.ca_file)

    @property
    def client(self) -> bool:
        """A client with these files speaks TLS."""
        return self.serving or bool(self.ca_file) or self.force

    def check(self) -> None:
        """Fails early, naming the variable, when a file is missing or half the pair is given."""
        if bool(self.cert_file) != bool(self.key_file):
            raise ConfigurationError("SVOD_TLS_CERT_FILE and SVOD_TLS_KEY_FILE go together")
        for name, path in (
            ("SVOD_TLS_CERT_FILE", self.cert_file),
            ("SVOD_TLS_KEY_FILE", self.key_file),
            ("SVOD_TLS_CA_FILE", self.ca_file),
        ):
            if path and not Path(path).is_file():
                raise ConfigurationError(f"{name}: no such file {path}")

    def watched(self) -> tuple[str, ...]:
        return tuple(p for p in (self.cert_file, self.key_file, self.ca_file) if p)


def _read(path: str) -> bytes:
    return Path(path).read_bytes()


def _stamps(paths: Sequence[str]) -> tuple[Any, ...]:
    stamps: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            st = os.stat(path)
            stamps.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            stamps.append(None)
    return tuple(stamps)


def _settled(stamps: tuple[Any, ...]) -> bool:
    """All files present and none changed in the last SETTLE_S seconds."""
    if None in stamps:
        return False
    newest: float = max(stamp[0] for stamp in stamps) / 1e9
    return time.time() - newest >= SETTLE_S


def _server_config(files: TlsFiles) -> Any:
    return grpc.ssl_server_certificate_configuration(
        [(_read(files.key_file), _read(files.cert_file))],
        root_certificates=_read(files.ca_file) if files.ca_file else None,
    )


def server_credentials(files: TlsFiles) -> grpc.ServerCredentials:
    """TLS credentials that re-read the files when they change (checked at each handshake)."""
    lock = threading.Lock()
    state = {"stamps": _stamps(files.watched())}

    def fetch() -> Any:
        # gRPC calls this from its own threads before each handshake; None keeps the current.
        stamps = _stamps(files.watched())
        with lock:
            if stamps == state["stamps"] or not _settled(stamps):
                return None
            try:
                config = _server_config(files)
            except (OSError, ValueError) as error:
                log.error("TLS files changed but cannot be read: %s", error)
                return None
            state["stamps"] = stamps
        log.info("TLS certificate reloaded")
        return config

    return grpc.dynamic_ssl_server_credentials(
        _server_config(files), fetch, require_client_authentication=files.mutual
    )


def channel_credentials(files: TlsFiles) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=_read(files.ca_file) if files.ca_file else None,
        private_key=_read(files.key_file) if files.serving else None,
        certificate_chain=_read(files.cert_file) if files.serving else None,
    )


def channel_options(files: TlsFiles, options: Sequence[tuple[str, Any]]) -> list[tuple[str, Any]]:
    out = list(options)
    if files.server_name:
        out.append(("grpc.ssl_target_name_override", files.server_name))
    return out


def blocking_channel(
    target: str, files: TlsFiles, options: Sequence[tuple[str, Any]] = ()
) -> grpc.Channel:
    """A blocking channel (the CLI's): TLS when the files say so."""
    if not files.client:
        return grpc.insecure_channel(target, options=list(options))
    return grpc.secure_channel(
        target, channel_credentials(files), options=channel_options(files, options)
    )


def aio_channel(
    target: str,
    files: TlsFiles,
    *,
    interceptors: Sequence[Any] = (),
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.aio.Channel:
    """An aio channel to a peer: plaintext, or TLS that follows its files' rotation."""
    if not files.client:
        return grpc.aio.insecure_channel(target, interceptors=interceptors, options=options)

    def make() -> grpc.aio.Channel:
        return grpc.aio.secure_channel(
            target,
            channel_credentials(files),
            options=channel_options(files, options),
            interceptors=interceptors,
        )

    return ReloadingChannel(make, files.watched())


class _MultiCallable:
    """A stub's method: each call goes over the channel current at that moment."""

    def __init__(
        self, owner: ReloadingChannel, kind: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self.owner = owner
        self.kind = kind
        self.args = args
        self.kwargs = kwargs
        self._made: tuple[grpc.aio.Channel, Any] | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        channel = self.owner.current()
        made = self._made
        if made is None or made[0] is not channel:
            made = (channel, getattr(channel, self.kind)(*self.args, **self.kwargs))
            self._made = made
        return made[1](*args, **kwargs)


class ReloadingChannel:
    """Duck-types ``grpc.aio.Channel`` for generated stubs; re-creates the real channel when
    the certificate files change."""

    def __init__(self, make: Callable[[], grpc.aio.Channel], watched: Sequence[str]) -> None:
        self._make = make
        self._watched = tuple(watched)
        self._stamps = _stamps(self._watched)
        self._channel = make()
        self._next_check = time.monotonic() + CLIENT_CHECK_S
        self._retired: list[asyncio.Task[None]] = []

    def current(self) -> grpc.aio.Channel:
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + CLIENT_CHECK_S
            self.reload_if_changed()
        return self._channel

    def reload_if_changed(self) -> bool:
        stamps = _stamps(self._watched)
        if stamps == self._stamps or not _settled(stamps):
            return False
        try:
            fresh = self._make()
        except (OSError, ValueError) as error:
            log.error("TLS files changed but cannot be read: %s", error)
            return False
        old, self._channel, self._stamps = self._channel, fresh, stamps
        log.info("TLS client certificate reloaded")
        self._retired.append(asyncio.get_running_loop().create_task(self._retire(old)))
        return True

    @staticmethod
    async def _retire(channel: grpc.aio.Channel) -> None:
        await asyncio.sleep(OLD_CHANNEL_GRACE_S)
        await channel.close()

    def unary_unary(self, *args: Any, **kwargs: Any) -> _MultiCallable:
        return _MultiCallable(self, "unary_unary", args, kwargs)

    def unary_stream(self, *args: Any, **kwargs: Any) -> _MultiCallable:
        return _MultiCallable(self, "unary_stream", args, kwargs)

    def stream_unary(self, *args: Any, **kwargs: Any) -> _MultiCallable:
        return _MultiCallable(self, "stream_unary", args, kwargs)

    def stream_stream(self, *args: Any, **kwargs: Any) -> _MultiCallable:
        return _MultiCallable(self, "stream_stream", args, kwargs)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self._channel.get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self._channel.wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self._channel.channel_ready()

    async def close(self, grace: float | None = None) -> None:
        for task in self._retired:
            task.cancel()
        await self._channel.close(grace)

    async def __aenter__(self) -> ReloadingChannel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
