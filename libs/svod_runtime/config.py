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


def _float(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    return float(raw) if raw else default


@dataclass(frozen=True)
class ServiceConfig:
    service: str
    database_url: str
    listen_host: str = "0.0.0.0"
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
    # API keys ("key" or "key:principal", comma separated); empty = no authentication.
    api_keys: str = ""
    # The deployment's currency (ISO 4217); money in another currency is refused.
    currency: str = "RUB"
    # How long an event may wait for its customer to be identified before it fails.
    unknown_customer_grace_s: float = 600.0
    # Declared custom attributes and their types, JSON (see ingestion's domain/attributes.py).
    custom_attributes: str = ""
    # Per-field survivorship policies, JSON (see profile's domain/survivorship.py).
    survivorship: str = ""
    # Allocations between young-generation garbage collections (see runtime.py); 0 keeps
    # Python's default.
    gc_young_threshold: int = 50_000

    @classmethod
    def from_env(cls, service: str, env: dict[str, str] | None = None) -> ServiceConfig:
        env = dict(os.environ if env is None else env)
        peers = {peer: target_of(peer, env) for peer in SERVICES if peer != service}
        return cls(
            service=service,
            database_url=service_database_url(service, env),
            listen_host=env.get("SVOD_LISTEN_HOST", "0.0.0.0"),
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
            api_keys=env.get("SVOD_API_KEYS", ""),
            currency=env.get("SVOD_CURRENCY", "RUB"),
            unknown_customer_grace_s=_float(env, "SVOD_UNKNOWN_CUSTOMER_GRACE_S", 600.0),
            custom_attributes=env.get("SVOD_CUSTOM_ATTRIBUTES", ""),
            survivorship=env.get("SVOD_SURVIVORSHIP", ""),
            gc_young_threshold=int(env.get("SVOD_GC_YOUNG_THRESHOLD") or 50_000),
        )
