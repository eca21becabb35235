"""The deployment's secret for keyed hashes of personal data (``SVOD_HASH_SECRET``).

Contact data the services keep only as a hash (quality's delivery failures) is hashed with
HMAC-SHA-256 under this secret: a phone number is ten digits, and a plain SHA-256 of it is
found by trying them all in minutes; without the secret, nothing can be tried.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import TYPE_CHECKING

from svod_runtime.errors import ConfigurationError

if TYPE_CHECKING:
    from svod_runtime.config import ServiceConfig

log = logging.getLogger(__name__)

# Only for a service on loopback (make run, the tests) when no secret is set.
DEVELOPMENT_SECRET = b"svod development secret: never for real data"
MIN_SECRET_LENGTH = 16


def keyed_hash(secret: bytes, text: str) -> bytes:
    return hmac.new(secret, text.encode(), hashlib.sha256).digest()


def deployment_secret(config: ServiceConfig) -> bytes:
    """SVOD_HASH_SECRET; a service reachable from other hosts refuses to start without one."""
    from svod_runtime.auth import is_loopback

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
