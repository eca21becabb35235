"""Reads the deployment's hash secret (``SVOD_HASH_SECRET``) for svod_runtime.hashing."""

from __future__ import annotations

import logging

from svod_runtime.auth import is_loopback
from svod_runtime.config import ServiceConfig
from svod_runtime.errors import ConfigurationError
from svod_runtime.hashing import DEVELOPMENT_SECRET

MIN_SECRET_LENGTH = 16

log = logging.getLogger(__name__)


def deployment_secret(config: ServiceConfig) -> bytes:
    """SVOD_HASH_SECRET; a service reachable from other hosts refuses to start without one."""
    if config.hash_secret:
        if len(config.hash_secret) < MIN_SECRET_LENGTH:
            raise ConfigurationError(
                f"SVOD_HASH_SECRET: at least {MIN_SECRET_LENGTH} characters (use a random one)"
            )
        return config.hash_secret.encode()
    if is_loopback(config.listen_host) or config.allow_insecure:
        log.warning("SVOD_HASH_SECRET not set: hashing with a development secret")
        return DEVELOPMENT_SECRET
    raise ConfigurationError(
        "SVOD_HASH_SECRET is required (a random value, the same for every replica): contact "
        "data is kept only as keyed hashes under it"
    )
