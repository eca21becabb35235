"""The deployment's secret for keyed hashes of personal data (``SVOD_HASH_SECRET``).

Contact data the services keep only as a hash (quality's delivery failures) is hashed with
HMAC-SHA-256 under this secret: a phone number is ten digits, and a plain SHA-256 of it is
found by trying them all in minutes; without the secret, nothing can be tried.

Pure (the domains use it); the deployment's secret is read by svod_runtime.hash_secret.
"""

from __future__ import annotations

import hashlib
import hmac

# Only for a service on loopback (make run, the tests) when no secret is set.
DEVELOPMENT_SECRET = b"svod development secret: never for real data"


def keyed_hash(secret: bytes, text: str) -> bytes:
    return hmac.new(secret, text.encode(), hashlib.sha256).digest()
