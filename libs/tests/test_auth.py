"""Principals from the key file, who may call what, limits, and secure defaults (pure parts)."""

from __future__ import annotations

import json
import time

import pytest

from svod_runtime.access import PUBLIC_SCOPES, RPC_ACCESS, Scope
from svod_runtime.auth import (
    ANONYMOUS,
    Authenticator,
    InsecureConfiguration,
    KeyFileError,
    Principal,
    acting_as,
    authorize,
    key_sha256,
    parse_key_file,
    principal_entry,
    require_secure,
    reset_current_principal,
    set_current_principal,
)
from svod_runtime.errors import PermissionDenied, ResourceExhausted, Unauthenticated
from svod_runtime.limits import LimitDefaults, PrincipalLimits

MERGE = "/svod.identity.v1.IdentityService/MergeCustomers"
RESOLVE = "/svod.identity.v1.IdentityService/Resolve"
GET_PROFILE = "/svod.profile.v1.ProfileService/GetProfile"
LOOKUP = "/svod.identity.v1.IdentityService/LookupCustomer"
ERASE = "/svod.profile.v1.ProfileService/ErasePersonalData"
APPLY = "/svod.profile.v1.ProfileService/Apply"


def _file(*entries: dict) -> str:
    return json.dumps({"principals": list(entries)})


def test_a_key_file_lists_principals_by_the_hash_of_their_keys() -> None:
    keys = parse_key_file(
        _file(
            principal_entry("pos", "k-pos", ["ingest:write"]),
            principal_entry("mkt", "k-mkt", ["profile:read"], segments=["vip"], rate_per_s=5),
            principal_entry("svod-ingestion", "k-ing", service="ingestion"),
        )
    )
    assert "k-pos" not in json.dumps([p.name for p in keys.principals])
    pos = keys.by_key_hash[key_sha256("k-pos")]
    assert pos.scopes == {Scope.INGEST_WRITE} and pos.segments is None
    mkt = keys.by_key_hash[key_sha256("k-mkt")]
    assert mkt.segments == {"vip"} and mkt.rate_per_s == 5
    assert keys.by_key_hash[key_sha256("k-ing")].service == "ingestion"


def test_the_key_file_may_be_yaml() -> None:
    text = f"""
principals:
  - name: crm
    key_sha256: [{key_sha256("a")}, {key_sha256("b")}]   # rotating
    scopes: [profile:read]
  - name: partner
    certificate_names: [partner.example]
    scopes: [ingest:write]
"""
    keys = parse_key_file(text)
    assert keys.by_key_hash[key_sha256("b")].name == "crm"
    assert keys.by_certificate["partner.example"].scopes == {Scope.INGEST_WRITE}


@pytest.mark.parametrize(
    ("entry", "complaint"),
    [
        ({"name": "x", "key_sha256": "secret-key", "scopes": ["ingest:write"]}, "64 hex"),
        ({"name": "x", "key_sha256": key_sha256("k"), "scopes": ["ingest:all"]}, "unknown scope"),
        ({"name": "x", "key_sha256": key_sha256("k")}, "at least one scope"),
        ({"name": "x", "scopes": ["ingest:write"]}, "key_sha256 or certificate_names"),
        ({"name": "x", "key_sha256": key_sha256("k"), "service": "billing"}, "service"),
        ({"name": "x", "key": "k", "scopes": ["ingest:write"]}, "unknown field 'key'"),
        ({"key_sha256": key_sha256("k"), "scopes": ["ingest:write"]}, "name: required"),
        (
            {
                "name": "x",
                "key_sha256": key_sha256("k"),
                "scopes": ["segment:read"],
                "segments": [],
            },
            "at least one segment",
        ),
    ],
)
def test_a_bad_entry_is_named_precisely(entry: dict, complaint: str) -> None:
    with pytest.raises(KeyFileError) as refused:
        parse_key_file(_file(entry))
    assert "principals[0]" in refused.value.message and complaint in refused.value.message


def test_names_and_keys_are_unique() -> None:
    a = principal_entry("a", "k1", ["ingest:write"])
    with pytest.raises(KeyFileError, match="listed twice"):
        parse_key_file(_file(a, principal_entry("a", "k2", ["ingest:write"])))
    with pytest.raises(KeyFileError, match="same key as 'a'"):
        parse_key_file(_file(a, principal_entry("b", "k1", ["ingest:write"])))
    with pytest.raises(KeyFileError, match="principals"):
        parse_key_file("[]")


def _authenticator(tmp_path, *entries: dict, mutual_tls: bool = False) -> Authenticator:
    path = tmp_path / "keys.json"
    path.write_text(_file(*entries))
    return Authenticator(str(path), mutual_tls=mutual_tls)


def test_a_bearer_key_names_its_principal(tmp_path) -> None:
    auth = _authenticator(tmp_path, principal_entry("pos", "k-pos", ["ingest:write"]))
    assert auth.authenticate({"authorization": "Bearer k-pos"}, {}).name == "pos"
    for metadata, complaint in (
        ({}, "missing API key"),
        ({"authorization": "Bearer nope"}, "unknown API key"),
        ({"authorization": "Basic k-pos"}, "malformed"),
    ):
        with pytest.raises(Unauthenticated, match=complaint):
            auth.authenticate(metadata, {})


def test_a_verified_certificate_names_a_service_or_a_listed_principal(tmp_path) -> None:
    partner = {
        "name": "partner",
        "certificate_names": ["partner.example"],
        "scopes": ["ingest:write"],
    }
    auth = _authenticator(tmp_path, partner, mutual_tls=True)

    def cert(*names: str) -> dict[str, list[bytes]]:
        return {
            "x509_common_name": [names[0].encode()],
            "x509_subject_alternative_name": [n.encode() for n in names],
        }

    assert auth.authenticate({}, cert("svod-ingestion")).service == "ingestion"
    assert auth.authenticate({}, cert("svod-profile.svod.svc")).service == "profile"
    assert auth.authenticate({}, cert("x", "partner.example")).name == "partner"
    with pytest.raises(Unauthenticated):
        auth.authenticate({}, cert("svod-billing"))
    # mTLS without a key file: the CA's certificates are the access list.
    ca_only = Authenticator("", mutual_tls=True)
    crm = ca_only.authenticate({}, cert("crm.example"))
    assert crm.name == "crm.example" and crm.scopes == PUBLIC_SCOPES
    assert Authenticator().authenticate({}, {}) is ANONYMOUS


def test_the_key_file_is_reread_when_it_changes(tmp_path, monkeypatch) -> None:
    import svod_runtime.auth as auth_module

    monkeypatch.setattr(auth_module, "RELOAD_CHECK_S", 0.0)
    auth = _authenticator(tmp_path, principal_entry("old", "k-old", ["ingest:write"]))
    path = tmp_path / "keys.json"
    time.sleep(0.01)
    path.write_text(_file(principal_entry("new", "k-new", ["ingest:write"])))
    auth._next_check = 0
    assert auth.authenticate({"authorization": "Bearer k-new"}, {}).name == "new"
    with pytest.raises(Unauthenticated):
        auth.authenticate({"authorization": "Bearer k-old"}, {})
    # A broken file keeps the keys that worked.
    path.write_text("{not yaml: [")
    auth._next_check = 0
    assert auth.authenticate({"authorization": "Bearer k-new"}, {}).name == "new"


def test_authorization_follows_the_table() -> None:
    admin = Principal("admin", scopes=PUBLIC_SCOPES)
    assert authorize(admin, MERGE) is RPC_ACCESS[MERGE]
    with pytest.raises(PermissionDenied, match="internal"):
        authorize(admin, RESOLVE)
    reader = Principal("reader", scopes=frozenset({Scope.PROFILE_READ}))
    with pytest.raises(PermissionDenied, match="identity:admin"):
        authorize(reader, MERGE)
    scoped = Principal("mkt", scopes=PUBLIC_SCOPES, segments=frozenset({"vip"}))
    authorize(scoped, GET_PROFILE)  # the profile service checks membership itself
    with pytest.raises(PermissionDenied, match="limited to segments"):
        authorize(scoped, LOOKUP)
    with pytest.raises(PermissionDenied, match="no access rule"):
        authorize(admin, "/svod.profile.v1.ProfileService/NotInTheTable")


def test_a_service_calls_only_what_lists_it() -> None:
    ingestion = Principal("svod-ingestion", service="ingestion")
    authorize(ingestion, RESOLVE)
    authorize(ingestion, APPLY)
    for method in (MERGE, ERASE, "/svod.identity.v1.IdentityService/EraseCustomer"):
        with pytest.raises(PermissionDenied):
            authorize(ingestion, method)
    authorize(Principal("svod-profile", service="profile"), LOOKUP)


def test_the_actor_is_the_principal_with_the_given_name_beside_it() -> None:
    assert acting_as("Анна") == "Анна"  # authentication off: the client's text is all there is
    token = set_current_principal(Principal("dpo-key", scopes=PUBLIC_SCOPES))
    try:
        assert acting_as("") == "dpo-key"
        assert acting_as("  Анна  Петрова ") == "dpo-key (Анна Петрова)"
        assert acting_as("dpo-key") == "dpo-key"
    finally:
        reset_current_principal(token)
    token = set_current_principal(Principal("svod-profile", service="profile"))
    try:
        assert acting_as("dpo-key (Анна)") == "dpo-key (Анна)"  # a service relays the actor
    finally:
        reset_current_principal(token)


def test_a_non_loopback_listener_needs_authentication() -> None:
    require_secure("127.0.0.1", keys_file="", mutual_tls=False, allow_insecure=False)
    require_secure("::1", keys_file="", mutual_tls=False, allow_insecure=False)
    require_secure("localhost", keys_file="", mutual_tls=False, allow_insecure=False)
    with pytest.raises(InsecureConfiguration, match="SVOD_ALLOW_INSECURE"):
        require_secure("0.0.0.0", keys_file="", mutual_tls=False, allow_insecure=False)
    require_secure("0.0.0.0", keys_file="/k.yaml", mutual_tls=False, allow_insecure=False)
    require_secure("0.0.0.0", keys_file="", mutual_tls=True, allow_insecure=False)
    require_secure("0.0.0.0", keys_file="", mutual_tls=False, allow_insecure=True)


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_principal_over_its_rate_waits_for_tokens() -> None:
    clock = _Clock()
    limits = PrincipalLimits(LimitDefaults(rate_per_s=2, burst=3), clock=clock)
    pos = Principal("pos", scopes=PUBLIC_SCOPES)
    for _ in range(3):
        limits.admit_call(pos)
    with pytest.raises(ResourceExhausted) as over:
        limits.admit_call(pos)
    assert over.value.retry_after_s == pytest.approx(0.5)
    clock.now += 0.5
    limits.admit_call(pos)
    # Others have buckets of their own; services and the anonymous principal are not limited.
    limits.admit_call(Principal("other", scopes=PUBLIC_SCOPES))
    for _ in range(10):
        limits.admit_call(Principal("svod-ingestion", service="ingestion"))
        limits.admit_call(ANONYMOUS)


def test_open_streams_are_capped_per_principal() -> None:
    limits = PrincipalLimits(LimitDefaults(max_streams=2))
    pos = Principal("pos", scopes=PUBLIC_SCOPES, max_streams=1)
    assert limits.open_stream(pos)
    with pytest.raises(ResourceExhausted, match="at most 1"):
        limits.open_stream(pos)
    limits.close_stream(pos)
    assert limits.open_stream(pos)


def test_contact_hashes_are_keyed_with_the_deployments_secret() -> None:
    import hashlib

    from svod_runtime.config import ServiceConfig
    from svod_runtime.errors import ConfigurationError
    from svod_runtime.hash_secret import deployment_secret
    from svod_runtime.hashing import DEVELOPMENT_SECRET, keyed_hash

    phone = "phone\x1f\x1f+79161234567"
    mine, theirs = keyed_hash(b"a" * 32, phone), keyed_hash(b"b" * 32, phone)
    # Without the secret the hash cannot be recomputed by trying every number.
    assert mine != theirs and mine != hashlib.sha256(phone.encode()).digest()
    config = ServiceConfig("quality", "postgresql://x/y", listen_host="0.0.0.0")
    with pytest.raises(ConfigurationError, match="SVOD_HASH_SECRET is required"):
        deployment_secret(config)
    with pytest.raises(ConfigurationError, match="at least 16"):
        deployment_secret(ServiceConfig("quality", "postgresql://x/y", hash_secret="short"))
    loopback = ServiceConfig("quality", "postgresql://x/y")
    assert deployment_secret(loopback) == DEVELOPMENT_SECRET
    secret = "s" * 40
    given = ServiceConfig("quality", "postgresql://x/y", listen_host="0.0.0.0", hash_secret=secret)
    assert deployment_secret(given) == secret.encode()
