"""One table maps every RPC to its scope, and the interceptor enforces it (access.RPC_ACCESS)."""

from __future__ import annotations

import grpc
import pytest

from svod.common.v1 import common_pb2
from svod.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from svod.profile.v1 import profile_pb2, profile_pb2_grpc
from svod_runtime.access import RPC_ACCESS
from svod_runtime.config import SERVICES
from tests.builders import PHONE, identify, random_phone
from tests.security.conftest import bearer
from tests.security.rpcs import all_rpcs, call
from tests.waiting import wait_until

REFUSED = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}
RPCS = list(all_rpcs())


def test_every_rpc_has_an_access_rule_and_every_rule_an_rpc() -> None:
    paths = {rpc.path for rpc in RPCS}
    missing = sorted(paths - RPC_ACCESS.keys())
    assert not missing, (
        "RPCs without an access rule — add each to RPC_ACCESS in libs/svod_runtime/access.py "
        f"(its scope, the services that call it, segment rule, audit): {missing}"
    )
    assert not sorted(RPC_ACCESS.keys() - paths), "rules for RPCs that do not exist"


@pytest.mark.parametrize("rpc", RPCS, ids=str)
def test_an_rpc_needs_a_key_with_its_scope(secured, rpc) -> None:
    scope = RPC_ACCESS[rpc.path].scope.value
    # Refusals come at once; the generous deadline is for a busy machine.
    with secured.channel(rpc.service) as channel:
        assert call(channel, rpc, timeout=15)[0] == grpc.StatusCode.UNAUTHENTICATED
        wrong_key = (("authorization", "Bearer not-a-key"),)
        assert call(channel, rpc, wrong_key, timeout=15)[0] == grpc.StatusCode.UNAUTHENTICATED
        without = call(channel, rpc, bearer(f"without-{scope}"), timeout=15)[0]
        assert without == grpc.StatusCode.PERMISSION_DENIED
        with_scope = call(channel, rpc, bearer(f"with-{scope}"), timeout=2)[0]
        assert with_scope not in REFUSED


@pytest.mark.parametrize("rpc", RPCS, ids=str)
def test_a_service_calls_only_the_rpcs_it_needs(secured, rpc) -> None:
    callers = RPC_ACCESS[rpc.path].callers
    with secured.channel(rpc.service) as channel:
        for service in SERVICES:
            allowed = service in callers
            code = call(channel, rpc, bearer(f"svod-{service}"), timeout=2 if allowed else 15)[0]
            if allowed:
                assert code not in REFUSED, (service, code)
            else:
                assert code == grpc.StatusCode.PERMISSION_DENIED, (service, code)


def test_services_reach_each_other_with_their_own_keys(secured) -> None:
    """An Identify sent with a till's key is resolved and applied: ingestion's key got through
    identity and profile, and profile's through identity."""
    phone = random_phone()
    request = identify("pos-msk-01", phones=(phone,), first_name="Вера")
    key = bearer("with-ingest:write")
    with secured.channel("ingestion") as channel:
        stub = ingestion_pb2_grpc.IngestionServiceStub(channel)
        stub.Identify(request, timeout=5, metadata=key)
        status = wait_until(
            lambda: stub.GetRecordStatus(
                ingestion_pb2.GetRecordStatusRequest(record_ref=request.record_ref),
                timeout=5,
                metadata=key,
            ),
            15,
            "the record processed",
            until=lambda s: s.state != ingestion_pb2.RecordStatus.STATE_PENDING,
        )
    assert status.state == ingestion_pb2.RecordStatus.STATE_DELIVERED, status
    with secured.channel("profile") as channel:
        profile = profile_pb2_grpc.ProfileServiceStub(channel).GetProfile(
            profile_pb2.GetProfileRequest(
                identifier=common_pb2.Identifier(type=PHONE, value=phone)
            ),
            timeout=5,
            metadata=bearer("with-profile:read"),
        )
    assert profile.first_name.value == "Вера"
