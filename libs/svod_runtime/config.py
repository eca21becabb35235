"""Configuration from the environment, one service at a time.

Every service takes its own database URL (``SVOD_<NAME>_DATABASE_URL``) so production can give
each its own database; for a single-Postgres setup the URL is derived from ``SVOD_DATABASE_URL``
with the service's own role as user.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy.engine import make_url

from svod_runtime.errors import ConfigurationError
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


def port_of(service: str, env: Mapping[str, str] | None = None) -> int:
    """``SVOD_<SERVICE>_PORT``, else the service's default gRPC port."""
    env = os.environ if env is None else env
    return int(env.get(f"SVOD_{service.upper()}_PORT") or DEFAULT_PORTS[service])


def metrics_port_of(service: str, env: Mapping[str, str] | None = None) -> int:
    """``SVOD_<SERVICE>_METRICS_PORT``, else the service's default metrics port (0: off)."""
    env = os.environ if env is None else env
    raw = env.get(f"SVOD_{service.upper()}_METRICS_PORT")
    return int(raw) if raw else DEFAULT_METRICS_PORTS[service]


def target_of(service: str, env: Mapping[str, str] | None = None) -> str:
    """Where to reach a service: ``SVOD_<SERVICE>_TARGET``, else loopback at its port."""
    env = os.environ if env is None else env
    return env.get(f"SVOD_{service.upper()}_TARGET") or f"127.0.0.1:{port_of(service, env)}"


def role_name(service: str) -> str:
    """The Postgres role a service connects as; it can touch only the service's schema."""
    return f"svod_{service}"


def sqlalchemy_url(url: str) -> str:
    """Accepts plain ``postgresql://`` URLs and points them at the psycopg 3 driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def service_database_url(service: str, env: dict[str, str] | None = None) -> str:
    env = dict(os.environ if env is None else env)
    own = env.get(f"SVOD_{service.upper()}_DATABASE_URL")
    if own:
        return sqlalchemy_url(own)
    shared = env.get("SVOD_DATABASE_URL")
    if not shared:
        raise RuntimeError(
            f"no database configured for {service}: set SVOD_{service.upper()}_DATABASE_URL "
            "or SVOD_DATABASE_URL"
        )
    password = env.get(f"SVOD_{service.upper()}_DB_PASSWORD")
    url = make_url(sqlalchemy_url(shared)).set(username=role_name(service), password=password)
    return url.render_as_string(hide_password=False)


@dataclass(frozen=True)
class PeerSecurity:
    """How this service talks to its peers: TLS files and its own key."""

    tls: TlsFiles = field(default_factory=TlsFiles)
    api_key: str = ""

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> PeerSecurity:
        env = dict(os.environ if env is None else env)
        return cls(TlsFiles.from_env(env), env.get("SVOD_PEER_API_KEY", ""))


def _float(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    return float(raw) if raw else default


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

    @property
    def peer_security(self) -> PeerSecurity:
        return PeerSecurity(self.tls, self.peer_api_key)

    @classmethod
    def from_env(cls, service: str, env: dict[str, str] | None = None) -> ServiceConfig:
        env = dict(os.environ if env is None else env)
        if env.get("SVOD_API_KEYS"):
            raise ConfigurationError(
                "SVOD_API_KEYS is no longer read (it kept keys in clear text): list principals "
                "with the SHA-256 of their keys in SVOD_API_KEYS_FILE (svod keys create)"
            )
        prefix = f"SVOD_{service.upper()}_"
        peers = {peer: target_of(peer, env) for peer in SERVICES if peer != service}
        return cls(
            service=service,
            database_url=service_database_url(service, env),
            listen_host=env.get("SVOD_LISTEN_HOST", "127.0.0.1"),
            port=port_of(service, env),
            metrics_port=metrics_port_of(service, env),
            metrics_host=env.get("SVOD_METRICS_HOST", ""),
            peers=peers,
            peer_timeout_s=_float(env, "SVOD_PEER_TIMEOUT_S", 5.0),
            max_request_s=_float(env, "SVOD_MAX_REQUEST_S", 30.0),
            shutdown_grace_s=_float(env, "SVOD_SHUTDOWN_GRACE_S", 10.0),
            otlp_endpoint=env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None,
            trace_sample_ratio=_float(env, "OTEL_TRACES_SAMPLER_ARG", 1.0),
            traces_file=env.get("SVOD_TRACES_FILE", ""),
            metrics_poll_s=_float(env, "SVOD_METRICS_POLL_S", 15.0),
            metrics_slow_poll_s=_float(env, "SVOD_METRICS_SLOW_POLL_S", 300.0),
            api_keys_file=env.get("SVOD_API_KEYS_FILE", ""),
            # SVOD_<SERVICE>_PEER_API_KEY lets one environment give each service its own key.
            peer_api_key=env.get(prefix + "PEER_API_KEY") or env.get("SVOD_PEER_API_KEY", ""),
            tls=TlsFiles.from_env(env, service),
            allow_insecure=env.get("SVOD_ALLOW_INSECURE", "") == "1",
            health_port=int(env.get(prefix + "HEALTH_PORT") or env.get("SVOD_HEALTH_PORT") or 0),
            rate_limit_per_s=_float(env, "SVOD_RATE_LIMIT_PER_S", 1000.0),
            rate_limit_burst=int(env.get("SVOD_RATE_LIMIT_BURST") or 2000),
            max_streams_per_principal=int(env.get("SVOD_MAX_STREAMS_PER_PRINCIPAL") or 16),
            hash_secret=env.get("SVOD_HASH_SECRET", ""),
            payload_retention_days=_float(env, "SVOD_PAYLOAD_RETENTION_DAYS", 30.0),
            currency=env.get("SVOD_CURRENCY", "RUB"),
            unknown_customer_grace_s=_float(env, "SVOD_UNKNOWN_CUSTOMER_GRACE_S", 600.0),
            unattributed_recheck_max_s=_float(env, "SVOD_UNATTRIBUTED_RECHECK_MAX_S", 3600.0),
            custom_attributes=env.get("SVOD_CUSTOM_ATTRIBUTES", ""),
            survivorship=env.get("SVOD_SURVIVORSHIP", ""),
            gc_young_threshold=int(env.get("SVOD_GC_YOUNG_THRESHOLD") or 50_000),
            outbox_max_attempts=int(env.get("SVOD_OUTBOX_MAX_ATTEMPTS") or 20),
            outbox_lease_s=_float(env, "SVOD_OUTBOX_LEASE_S", 10.0),
        )
