"""Configuration from the environment, one service at a time.

Every service takes its own database URL (``SVOD_<NAME>_DATABASE_URL``) so production can give
each its own database; for a single-Postgres setup the URL is derived from ``SVOD_DATABASE_URL``
with the service's own role as user.

Each group of variables is a settings model (svod_runtime.settings): its fields name the
variables and say what they are for; a value that does not fit stops the service at start with
one message naming the variable, e.g. ``SVOD_IDENTITY_PORT must be an integer between 1 and
65535, got 'abc'``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import AliasChoices, Field, create_model
from sqlalchemy.engine import make_url

from svod_runtime.errors import ConfigurationError
from svod_runtime.settings import SettingsModel
from svod_runtime.tls import TlsFiles

SERVICES = ("ingestion", "identity", "profile", "segmentation", "quality")

DEFAULT_PORTS = {
    "ingestion": 50051,
    "identity": 50052,
    "profile": 50053,
    "segmentation": 50054,
    "quality": 50055,
}

# Each service's Prometheus endpoint (``/metrics``), beside its gRPC port; 0 turns it off.
DEFAULT_METRICS_PORTS = {
    "ingestion": 9461,
    "identity": 9462,
    "profile": 9463,
    "segmentation": 9464,
    "quality": 9465,
}


class EndpointSettings(SettingsModel):
    """Where one service listens and where its peers reach it (``SVOD_<SERVICE>_*``);
    ``endpoint_settings`` gives each service its own subclass with its variables' names."""

    port: int
    metrics_port: int
    target: str = ""


@functools.cache
def endpoint_settings(service: str) -> type[EndpointSettings]:
    prefix = f"SVOD_{service.upper()}_"
    return create_model(
        f"{service.title()}EndpointSettings",
        __base__=EndpointSettings,
        port=(
            int,
            Field(
                DEFAULT_PORTS[service],
                ge=1,
                le=65535,
                validation_alias=prefix + "PORT",
                description=f"The {service} service's gRPC port.",
            ),
        ),
        metrics_port=(
            int,
            Field(
                DEFAULT_METRICS_PORTS[service],
                ge=0,
                le=65535,
                validation_alias=prefix + "METRICS_PORT",
                description=f"The {service} service's Prometheus /metrics port; 0: none.",
            ),
        ),
        target=(
            str,
            Field(
                "",
                validation_alias=prefix + "TARGET",
                description=f"host:port where peers reach {service}; default loopback, its port.",
            ),
        ),
    )


def port_of(service: str, env: Mapping[str, str] | None = None) -> int:
    """``SVOD_<SERVICE>_PORT``, else the service's default gRPC port."""
    return endpoint_settings(service).load(env).port


def metrics_port_of(service: str, env: Mapping[str, str] | None = None) -> int:
    """``SVOD_<SERVICE>_METRICS_PORT``, else the service's default metrics port (0: off)."""
    return endpoint_settings(service).load(env).metrics_port


def target_of(service: str, env: Mapping[str, str] | None = None) -> str:
    """Where to reach a service: ``SVOD_<SERVICE>_TARGET``, else loopback at its port."""
    endpoint = endpoint_settings(service).load(env)
    return endpoint.target or f"127.0.0.1:{endpoint.port}"


def role_name(service: str) -> str:
    """The Postgres role a service connects as; it can touch only the service's schema."""
    return f"svod_{service}"


def sqlalchemy_url(url: str) -> str:
    """Accepts plain ``postgresql://`` URLs and points them at the psycopg 3 driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


class DatabaseSettings(SettingsModel):
    """A service's database; ``database_settings`` names the variables after the service."""

    own_url: str = ""
    shared_url: str = Field(
        "",
        validation_alias="SVOD_DATABASE_URL",
        description="One Postgres for every service, each connecting as its own role.",
    )
    password: str | None = None


@functools.cache
def database_settings(service: str) -> type[DatabaseSettings]:
    prefix = f"SVOD_{service.upper()}_"
    return create_model(
        f"{service.title()}DatabaseSettings",
        __base__=DatabaseSettings,
        own_url=(
            str,
            Field(
                "",
                validation_alias=prefix + "DATABASE_URL",
                description=f"The {service} service's own database (wins over the shared one).",
            ),
        ),
        password=(
            str | None,
            Field(
                None,
                validation_alias=prefix + "DB_PASSWORD",
                description=f"Password of the svod_{service} role on the shared database.",
            ),
        ),
    )


def service_database_url(service: str, env: Mapping[str, str] | None = None) -> str:
    settings = database_settings(service).load(env)
    if settings.own_url:
        return sqlalchemy_url(settings.own_url)
    if not settings.shared_url:
        raise RuntimeError(
            f"no database configured for {service}: set SVOD_{service.upper()}_DATABASE_URL "
            "or SVOD_DATABASE_URL"
        )
    url = make_url(sqlalchemy_url(settings.shared_url)).set(
        username=role_name(service), password=settings.password
    )
    return url.render_as_string(hide_password=False)


class PeerKeySettings(SettingsModel):
    api_key: str = Field(
        "",
        validation_alias="SVOD_PEER_API_KEY",
        description="The key a service presents to its peers (its own principal's key).",
    )


@dataclass(frozen=True)
class PeerSecurity:
    """How this service talks to its peers: TLS files and its own key."""

    tls: TlsFiles = field(default_factory=TlsFiles)
    api_key: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PeerSecurity:
        env = os.environ if env is None else env
        return cls(TlsFiles.from_env(env), PeerKeySettings.load(env).api_key)


class InstanceSettings(SettingsModel):
    """What one service reads under its own name, some with a shared fallback;
    ``instance_settings`` names the variables after the service."""

    health_port: int = 0
    peer_api_key: str = ""


@functools.cache
def instance_settings(service: str) -> type[InstanceSettings]:
    prefix = f"SVOD_{service.upper()}_"
    return create_model(
        f"{service.title()}InstanceSettings",
        __base__=InstanceSettings,
        health_port=(
            int,
            Field(
                0,
                ge=0,
                le=65535,
                validation_alias=AliasChoices(prefix + "HEALTH_PORT", "SVOD_HEALTH_PORT"),
                description="A plaintext port serving only grpc.health.v1 (kubelet's gRPC "
                "probes speak no TLS); 0: none.",
            ),
        ),
        peer_api_key=(
            str,
            Field(
                "",
                # One environment can give each service its own key.
                validation_alias=AliasChoices(prefix + "PEER_API_KEY", "SVOD_PEER_API_KEY"),
                description="The key this service presents to its peers.",
            ),
        ),
    )


def _seconds(default: float, variable: str, description: str, *, zero: bool = False) -> Any:
    """A duration in seconds; ``zero``: 0 is allowed (it turns something off)."""
    if zero:
        return Field(default, ge=0.0, validation_alias=variable, description=description)
    return Field(default, gt=0.0, validation_alias=variable, description=description)


class SharedSettings(SettingsModel):
    """Variables every service reads under the same name."""

    listen_host: str = Field(
        "127.0.0.1",
        validation_alias="SVOD_LISTEN_HOST",
        description="Address to serve on; a non-loopback one needs authentication (auth.py).",
    )
    metrics_host: str = Field(
        "", validation_alias="SVOD_METRICS_HOST", description="/metrics address (default: ours)."
    )
    peer_timeout_s: float = _seconds(
        5.0, "SVOD_PEER_TIMEOUT_S", "Deadline of calls this service makes to its peers."
    )
    max_request_s: float = _seconds(
        30.0, "SVOD_MAX_REQUEST_S", "Upper bound for a request that arrives without a deadline."
    )
    shutdown_grace_s: float = _seconds(
        10.0, "SVOD_SHUTDOWN_GRACE_S", "How long SIGTERM waits for requests.", zero=True
    )
    otlp_endpoint: str | None = Field(
        None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT", description="Where spans go."
    )
    trace_sample_ratio: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        validation_alias="OTEL_TRACES_SAMPLER_ARG",
        description="Share of new traces sampled.",
    )
    traces_file: str = Field(
        "",
        validation_alias="SVOD_TRACES_FILE",
        description="Finished spans appended here as JSON lines (svod trace show); empty: off.",
    )
    metrics_poll_s: float = _seconds(
        15.0, "SVOD_METRICS_POLL_S", "How often polled gauges (outbox depth ...) are refreshed."
    )
    metrics_slow_poll_s: float = _seconds(
        300.0, "SVOD_METRICS_SLOW_POLL_S", "... and those whose query reads a whole table."
    )
    api_keys_file: str = Field(
        "",
        validation_alias="SVOD_API_KEYS_FILE",
        description="The key file listing principals and their scopes; empty: no keys.",
    )
    retired_api_keys: str = Field(
        "",
        validation_alias="SVOD_API_KEYS",
        description="No longer read (it kept keys in clear text): refused when set.",
    )
    allow_insecure: str = Field(
        "",
        validation_alias="SVOD_ALLOW_INSECURE",
        description="Exactly 1: serve a non-loopback address with nobody authenticated.",
    )
    rate_limit_per_s: float = Field(
        1000.0,
        ge=0.0,
        validation_alias="SVOD_RATE_LIMIT_PER_S",
        description="Per-principal requests a second unless the key file says otherwise.",
    )
    rate_limit_burst: int = Field(
        2000, ge=0, validation_alias="SVOD_RATE_LIMIT_BURST", description="... and burst."
    )
    max_streams_per_principal: int = Field(
        16,
        ge=0,
        validation_alias="SVOD_MAX_STREAMS_PER_PRINCIPAL",
        description="Concurrent streams per principal unless the key file says otherwise.",
    )
    hash_secret: str = Field(
        "",
        validation_alias="SVOD_HASH_SECRET",
        description="The deployment's secret for keyed hashes of contact data.",
    )
    payload_retention_days: float = Field(
        30.0,
        ge=0.0,
        validation_alias="SVOD_PAYLOAD_RETENTION_DAYS",
        description="Days ingestion keeps a delivered or failed message's payload.",
    )
    currency: str = Field(
        "RUB",
        validation_alias="SVOD_CURRENCY",
        description="The deployment's currency (ISO 4217); money in another is refused.",
    )
    unknown_customer_grace_s: float = _seconds(
        600.0,
        "SVOD_UNKNOWN_CUSTOMER_GRACE_S",
        "How long an event may wait for its customer before it is held as unattributed.",
        zero=True,
    )
    unattributed_recheck_max_s: float = _seconds(
        3600.0,
        "SVOD_UNATTRIBUTED_RECHECK_MAX_S",
        "Longest interval between two looks at an event held unattributed.",
    )
    custom_attributes: str = Field(
        "",
        validation_alias="SVOD_CUSTOM_ATTRIBUTES",
        description="Declared custom attributes and their types, JSON.",
    )
    survivorship: str = Field(
        "",
        validation_alias="SVOD_SURVIVORSHIP",
        description="Per-field survivorship policies, JSON.",
    )
    gc_young_threshold: int = Field(
        50_000,
        ge=0,
        validation_alias="SVOD_GC_YOUNG_THRESHOLD",
        description="Allocations between young-generation collections; 0: Python's default.",
    )
    outbox_max_attempts: int = Field(
        20,
        ge=1,
        validation_alias="SVOD_OUTBOX_MAX_ATTEMPTS",
        description="Counted failures before an outbox message is a dead letter.",
    )
    outbox_lease_s: float = _seconds(
        10.0, "SVOD_OUTBOX_LEASE_S", "The lease an outbox relay holds its messages under."
    )


@dataclass(frozen=True)
class ServiceConfig:
    service: str
    database_url: str
    # Loopback unless told otherwise: a non-loopback address needs authentication (auth.py).
    listen_host: str = "127.0.0.1"
    port: int = 0
    # The Prometheus endpoint's port (0: none) and address (default: listen_host).
    metrics_port: int = 0
    metrics_host: str = ""
    # host:port of each peer service this one calls.
    peers: dict[str, str] = field(default_factory=dict)
    # Deadline for calls this service makes to its peers.
    peer_timeout_s: float = 5.0
    # Upper bound for a request that arrives without a deadline.
    max_request_s: float = 30.0
    # How long SIGTERM waits for in-flight requests.
    shutdown_grace_s: float = 10.0
    otlp_endpoint: str | None = None
    trace_sample_ratio: float = 1.0
    # Finished spans appended here as JSON lines (``svod trace show`` reads them); empty: off.
    traces_file: str = ""
    # How often polled gauges (outbox depth, review queue ...) are refreshed.
    metrics_poll_s: float = 15.0
    # ... and those whose query reads a whole table (identifiers per customer).
    metrics_slow_poll_s: float = 300.0
    # -- security (docs/security.md) --
    # The key file listing principals and their scopes; empty = no keys.
    api_keys_file: str = ""
    # The key this service presents to its peers (its own principal's key).
    peer_api_key: str = ""
    # SVOD_TLS_CERT_FILE / SVOD_TLS_KEY_FILE / SVOD_TLS_CA_FILE (TlsFiles.from_env).
    tls: TlsFiles = field(default_factory=TlsFiles)
    # Serve a non-loopback address with nobody authenticated (SVOD_ALLOW_INSECURE=1).
    allow_insecure: bool = False
    # A plaintext port serving only grpc.health.v1 (kubelet's gRPC probes speak no TLS); 0 = none.
    health_port: int = 0
    # Per-principal limits unless the key file says otherwise.
    rate_limit_per_s: float = 1000.0
    rate_limit_burst: int = 2000
    max_streams_per_principal: int = 16
    # The deployment's secret for keyed hashes of contact data (HMAC-SHA-256).
    hash_secret: str = ""
    # Days a delivered or failed message's payload is kept by ingestion.
    payload_retention_days: float = 30.0
    # The deployment's currency (ISO 4217); money in another currency is refused.
    currency: str = "RUB"
    # How long an event may wait for its customer to be identified before it is held as
    # unattributed (counting only time identity answered and nobody had its identifiers).
    unknown_customer_grace_s: float = 600.0
    # Longest interval between two looks at an event held unattributed when nothing wakes it.
    unattributed_recheck_max_s: float = 3600.0
    # Declared custom attributes and their types, JSON (see ingestion's domain/attributes.py).
    custom_attributes: str = ""
    # Per-field survivorship policies, JSON (see profile's domain/survivorship.py).
    survivorship: str = ""
    # Allocations between young-generation garbage collections (see runtime.py); 0 keeps
    # Python's default.
    gc_young_threshold: int = 50_000
    # Outbox relays (outbox.py): counted failures before a message is a dead letter, and the
    # lease a relay holds its messages under (renewed while it works; a crashed relay's
    # messages are delivered by another after at most this long).
    outbox_max_attempts: int = 20
    outbox_lease_s: float = 10.0
    # The variables this configuration was read from, for a service's own settings (identity's,
    # quality's, segmentation's): a suite of services in one process gives each its own, which
    # the process's environment is not. Empty: the process's environment.
    env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False, hash=False)

    @property
    def own_settings_env(self) -> Mapping[str, str] | None:
        """Where the service's own settings are read from (None: the process' environment)."""
        return self.env or None

    @property
    def peer_security(self) -> PeerSecurity:
        return PeerSecurity(self.tls, self.peer_api_key)

    @classmethod
    def from_env(cls, service: str, env: Mapping[str, str] | None = None) -> ServiceConfig:
        """The service's configuration from ``env`` (default: the process's environment);
        ``ConfigurationError`` names the first variable that does not fit."""
        env = dict(os.environ if env is None else env)
        shared = SharedSettings.load(env)
        if shared.retired_api_keys:
            raise ConfigurationError(
                "SVOD_API_KEYS is no longer read (it kept keys in clear text): list principals "
                "with the SHA-256 of their keys in SVOD_API_KEYS_FILE (svod keys create)"
            )
        own = endpoint_settings(service).load(env)
        instance = instance_settings(service).load(env)
        peers = {peer: target_of(peer, env) for peer in SERVICES if peer != service}
        return cls(
            service=service,
            database_url=service_database_url(service, env),
            listen_host=shared.listen_host,
            port=own.port,
            metrics_port=own.metrics_port,
            metrics_host=shared.metrics_host,
            peers=peers,
            peer_timeout_s=shared.peer_timeout_s,
            max_request_s=shared.max_request_s,
            shutdown_grace_s=shared.shutdown_grace_s,
            otlp_endpoint=shared.otlp_endpoint,
            trace_sample_ratio=shared.trace_sample_ratio,
            traces_file=shared.traces_file,
            metrics_poll_s=shared.metrics_poll_s,
            metrics_slow_poll_s=shared.metrics_slow_poll_s,
            api_keys_file=shared.api_keys_file,
            peer_api_key=instance.peer_api_key,
            tls=TlsFiles.from_env(env, service),
            allow_insecure=shared.allow_insecure == "1",
            health_port=instance.health_port,
            rate_limit_per_s=shared.rate_limit_per_s,
            rate_limit_burst=shared.rate_limit_burst,
            max_streams_per_principal=shared.max_streams_per_principal,
            hash_secret=shared.hash_secret,
            payload_retention_days=shared.payload_retention_days,
            currency=shared.currency,
            unknown_customer_grace_s=shared.unknown_customer_grace_s,
            unattributed_recheck_max_s=shared.unattributed_recheck_max_s,
            custom_attributes=shared.custom_attributes,
            survivorship=shared.survivorship,
            gc_young_threshold=shared.gc_young_threshold,
            outbox_max_attempts=shared.outbox_max_attempts,
            outbox_lease_s=shared.outbox_lease_s,
            env=env,
        )
