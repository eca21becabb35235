"""Who is calling: principals from the key file or the caller's certificate, and what they may do.

A principal is named in the key file (``SVOD_API_KEYS_FILE``, YAML or JSON)::

    principals:
      - name: pos-tills
        key_sha256: 5e8848...        # SHA-256 (hex) of the key; the key itself is never stored
        scopes: [ingest:write]
      - name: marketing
        key_sha256: [9f86d0..., 2c26b4...]   # several keys while one is being rotated
        scopes: [profile:read, segment:read]
        segments: [vip, lapsed]     # sees only these segments and their members
        rate_per_s: 50              # optional; defaults: SVOD_RATE_LIMIT_PER_S, ...
      - name: svod-ingestion
        key_sha256: ...
        service: ingestion          # a Svod service: the RPCs listing it in access.RPC_ACCESS
      - name: crm
        certificate_names: [crm.shop.example]   # authenticated by its mTLS client certificate

``svod keys create`` makes a key and prints the entry. A caller presents its key as
``authorization: Bearer <key>``; with mutual TLS a verified client certificate may stand in for
the key: a certificate named in ``certificate_names``, or one whose common name (or DNS name)
is ``svod-<service>`` is that service. With mutual TLS and no key file, any other certificate
the deployment's CA signed is a principal of its own name with every public scope.

Authentication is off (every call is the anonymous principal) only when neither a key file nor
mutual TLS is configured — which :func:`require_secure` allows only on loopback or with
``SVOD_ALLOW_INSECURE=1``.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import ipaddress
import json
import logging
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from svod_runtime.access import (
    OPEN_PREFIXES,
    PUBLIC_SCOPES,
    Access,
    Scope,
    SegmentRule,
    access_for,
)
from svod_runtime.config import SERVICES
from svod_runtime.errors import ConfigurationError, PermissionDenied, Unauthenticated

log = logging.getLogger(__name__)

# How often the key file is checked for changes (keys rotate without a restart).
RELOAD_CHECK_S = 5.0
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class KeyFileError(ConfigurationError):
    """The key file cannot be used; the message names the entry and field."""


@dataclass(frozen=True)
class Principal:
    name: str
    scopes: frozenset[Scope] = frozenset()
    # The segments it may see; None = all.
    segments: frozenset[str] | None = None
    # Set for a Svod service's own principal.
    service: str = ""
    rate_per_s: float | None = None
    burst: int | None = None
    max_streams: int | None = None
    anonymous: bool = False

    @property
    def limited(self) -> bool:
        """Rate limits and stream caps apply (not to services, nor with authentication off)."""
        return not (self.anonymous or self.service)


ANONYMOUS = Principal("anonymous", scopes=frozenset(Scope), anonymous=True)
_current: contextvars.ContextVar[Principal] = contextvars.ContextVar(
    "svod_principal", default=ANONYMOUS
)


def current_principal() -> Principal:
    """The principal of the call being served (anonymous outside calls or with auth off)."""
    return _current.get()


def set_current_principal(principal: Principal) -> contextvars.Token[Principal]:
    return _current.set(principal)


def reset_current_principal(token: contextvars.Token[Principal]) -> None:
    # Set in another context (an abandoned stream): nothing to undo.
    with contextlib.suppress(ValueError):
        _current.reset(token)


def acting_as(given: str) -> str:
    """The actor to record for a change: the authenticated principal, with the name the client
    sent beside it (a client-sent actor alone is never trusted). A Svod service relays the
    actor of the call it serves; with authentication off the client's text is all there is."""
    principal = current_principal()
    given = " ".join(given.split())
    if principal.anonymous or principal.service:
        return given
    if not given or given == principal.name:
        return principal.name
    return f"{principal.name} ({given})"


def key_sha256(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A fresh random API key (256 bits, URL-safe)."""
    import secrets

    return "svod_" + secrets.token_urlsafe(32)


def principal_entry(
    name: str,
    key: str,
    scopes: Sequence[str] = (),
    *,
    segments: Sequence[str] | None = None,
    service: str = "",
    **limits: float,
) -> dict[str, Any]:
    """The key-file entry of a principal holding ``key`` (only the key's SHA-256 is kept)."""
    entry: dict[str, Any] = {"name": name, "key_sha256": key_sha256(key)}
    if service:
        entry["service"] = service
    if scopes:
        entry["scopes"] = list(scopes)
    if segments is not None:
        entry["segments"] = list(segments)
    entry.update(limits)
    return entry


def service_principal(service: str) -> Principal:
    return Principal(f"svod-{service}", service=service)


# -- the key file ----------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyFile:
    by_key_hash: dict[str, Principal] = field(default_factory=dict)
    by_certificate: dict[str, Principal] = field(default_factory=dict)

    @property
    def principals(self) -> list[Principal]:
        unique = {p.name: p for p in (*self.by_key_hash.values(), *self.by_certificate.values())}
        return [unique[n] for n in sorted(unique)]


def _strings(entry: Mapping[str, Any], name: str, where: str) -> list[str]:
    value = entry.get(name, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise KeyFileError(f"{where}.{name}: a list of non-empty strings")
    return list(value)


def _number(entry: Mapping[str, Any], name: str, where: str) -> float | None:
    value = entry.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise KeyFileError(f"{where}.{name}: a positive number")
    return float(value)


def _principal(entry: Any, where: str) -> tuple[Principal, list[str], list[str]]:
    if not isinstance(entry, dict):
        raise KeyFileError(f"{where}: an object with name, key_sha256 and scopes")
    known = {
        "name",
        "key_sha256",
        "scopes",
        "segments",
        "service",
        "certificate_names",
        "rate_per_s",
        "burst",
        "max_streams",
        "comment",
    }
    unknown = sorted(set(entry) - known)
    if unknown:
        raise KeyFileError(f"{where}: unknown field {unknown[0]!r}")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise KeyFileError(f"{where}.name: required")
    hashes = [h.lower() for h in _strings(entry, "key_sha256", where)]
    for h in hashes:
        if not _HEX64.match(h):
            raise KeyFileError(
                f"{where}.key_sha256: 64 hex digits (the SHA-256 of the key, never the key)"
            )
    certificates = _strings(entry, "certificate_names", where)
    if not hashes and not certificates:
        raise KeyFileError(f"{where}: key_sha256 or certificate_names required")
    scopes = set()
    for raw in _strings(entry, "scopes", where):
        try:
            scopes.add(Scope(raw))
        except ValueError:
            known_scopes = ", ".join(s.value for s in Scope)
            raise KeyFileError(f"{where}.scopes: unknown scope {raw!r} ({known_scopes})") from None
    service = entry.get("service", "")
    if service and service not in SERVICES:
        raise KeyFileError(f"{where}.service: one of {', '.join(SERVICES)}")
    segments = _strings(entry, "segments", where) if "segments" in entry else None
    if segments is not None and not segments:
        raise KeyFileError(f"{where}.segments: at least one segment (leave it out for all)")
    if not service and not scopes:
        raise KeyFileError(f"{where}.scopes: at least one scope")
    burst = _number(entry, "burst", where)
    max_streams = _number(entry, "max_streams", where)
    principal = Principal(
        name=name.strip(),
        scopes=frozenset(scopes),
        segments=None if segments is None else frozenset(segments),
        service=service,
        rate_per_s=_number(entry, "rate_per_s", where),
        burst=None if burst is None else int(burst),
        max_streams=None if max_streams is None else int(max_streams),
    )
    return principal, hashes, certificates


def parse_key_file(text: str) -> KeyFile:
    """Principals from the key file's text (JSON, or YAML when it is not JSON)."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        import yaml

        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise KeyFileError(f"not JSON or YAML: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("principals"), list):
        raise KeyFileError("the key file needs a list 'principals'")
    by_hash: dict[str, Principal] = {}
    by_certificate: dict[str, Principal] = {}
    names: set[str] = set()
    for index, entry in enumerate(document["principals"]):
        where = f"principals[{index}]"
        principal, hashes, certificates = _principal(entry, where)
        if principal.name in names:
            raise KeyFileError(f"{where}.name: {principal.name!r} is listed twice")
        names.add(principal.name)
        for h in hashes:
            if h in by_hash:
                raise KeyFileError(f"{where}.key_sha256: the same key as {by_hash[h].name!r}")
            by_hash[h] = principal
        for certificate in certificates:
            if certificate in by_certificate:
                raise KeyFileError(f"{where}.certificate_names: {certificate!r} is listed twice")
            by_certificate[certificate] = principal
    return KeyFile(by_hash, by_certificate)


def load_key_file(path: str) -> KeyFile:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise KeyFileError(f"cannot read SVOD_API_KEYS_FILE {path}: {error.strerror}") from None
    return parse_key_file(text)


def _stamp(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


# -- authentication --------------------------------------------------------------------------


def _bearer(metadata: Mapping[str, Any]) -> str | None:
    header = metadata.get("authorization")
    if header is None:
        return None
    scheme, _, token = str(header).partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else ""


def certificate_names(auth_context: Mapping[str, Sequence[bytes]]) -> list[str]:
    """The names a verified client certificate carries: common name, then DNS names."""
    names: list[str] = []
    for key in ("x509_common_name", "x509_subject_alternative_name"):
        for raw in auth_context.get(key, ()):
            name = raw.decode(errors="replace")
            if name and name not in names:
                names.append(name)
    return names


def _builtin_service(name: str) -> str | None:
    label = name.split(".", 1)[0]
    if label.startswith("svod-") and label.removeprefix("svod-") in SERVICES:
        return label.removeprefix("svod-")
    return None


class Authenticator:
    """Maps a call's credentials to its principal."""

    def __init__(self, keys_file: str = "", mutual_tls: bool = False) -> None:
        self.keys_file = keys_file
        self.mutual_tls = mutual_tls
        self.keys = load_key_file(keys_file) if keys_file else None
        self._stamp = _stamp(keys_file) if keys_file else None
        self._next_check = time.monotonic() + RELOAD_CHECK_S

    @property
    def enabled(self) -> bool:
        return self.keys is not None or self.mutual_tls

    def _reload_if_changed(self) -> None:
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + RELOAD_CHECK_S
        stamp = _stamp(self.keys_file)
        if stamp is None or stamp == self._stamp:
            return
        try:
            self.keys = load_key_file(self.keys_file)
        except KeyFileError as error:
            # Keep serving with the keys we had: a half-written file must not lock everyone out.
            log.error("key file change ignored: %s", error.message)
            return
        self._stamp = stamp
        log.info("key file reloaded: %d principals", len(self.keys.principals))

    def authenticate(
        self, metadata: Mapping[str, Any], auth_context: Mapping[str, Sequence[bytes]]
    ) -> Principal:
        if not self.enabled:
            return ANONYMOUS
        if self.keys is not None:
            self._reload_if_changed()
            token = _bearer(metadata)
            if token == "":
                raise Unauthenticated("malformed authorization: send 'Bearer <key>'")
            if token is not None:
                principal = self.keys.by_key_hash.get(key_sha256(token))
                if principal is None:
                    raise Unauthenticated("unknown API key")
                return principal
        names = certificate_names(auth_context) if self.mutual_tls else []
        for name in names:
            if self.keys is not None and name in self.keys.by_certificate:
                return self.keys.by_certificate[name]
        for name in names:
            service = _builtin_service(name)
            if service is not None:
                return service_principal(service)
        if names and self.keys is None:
            return Principal(names[0], scopes=PUBLIC_SCOPES)
        raise Unauthenticated("missing API key: send 'authorization: Bearer <key>'")


def authorize(principal: Principal, method: str) -> Access | None:
    """The RPC's access entry if the principal may call it; PermissionDenied otherwise."""
    access = access_for(method)
    if principal.anonymous:
        return access
    if access is None:
        raise PermissionDenied(f"{method} has no access rule in this release of Svod")
    if principal.service:
        if principal.service in access.callers or access.scope in principal.scopes:
            return access
        raise PermissionDenied(f"service principal {principal.name!r} may not call {method}")
    if access.scope not in principal.scopes:
        raise PermissionDenied(
            f"principal {principal.name!r} lacks the scope {access.scope.value!r} for {method}"
        )
    if principal.segments is not None and access.segments is SegmentRule.REFUSE:
        raise PermissionDenied(
            f"principal {principal.name!r} is limited to segments; {method} could show "
            "customers outside them"
        )
    return access


def is_open(method: str) -> bool:
    return method.startswith(OPEN_PREFIXES)


# -- secure by default -----------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class InsecureConfiguration(ConfigurationError):
    pass


def require_secure(
    listen_host: str, *, keys_file: str, mutual_tls: bool, allow_insecure: bool
) -> None:
    """Refuses to serve a non-loopback address with nobody's credentials checked."""
    if keys_file or mutual_tls or allow_insecure or is_loopback(listen_host):
        return
    raise InsecureConfiguration(
        f"refusing to listen on {listen_host} without authentication: set SVOD_API_KEYS_FILE "
        "(svod keys create) or mutual TLS (SVOD_TLS_CERT_FILE, SVOD_TLS_KEY_FILE and "
        "SVOD_TLS_CA_FILE), or SVOD_ALLOW_INSECURE=1 to accept anyone's calls"
    )
