"""After a bridge merge is undone, the merged-away id answers for the person split out again,
never for the customer her records left (#16 items 2 and 6, identity's side)."""

from __future__ import annotations

import grpc

from svod.common.v1 import common_pb2
from svod.identity.v1 import identity_pb2
from svod.profile.v1 import profile_pb2
from tests.builders import EMAIL, PHONE, identify, random_phone, unique
from tests.waiting import wait_until

T = 10.0


def placed(suite, request) -> str:
    suite.ingestion.Identify(request, timeout=T)
    return suite.wait_processed(request.record_ref).customer_id


def customer_of(suite, customer_id: str) -> identity_pb2.Customer:
    return suite.identity.LookupCustomer(
        identity_pb2.LookupCustomerRequest(customer_id=customer_id), timeout=T
    )


def test_a_split_sends_the_old_id_to_the_side_its_records_went(suite) -> None:
    phone, mail = random_phone(), f"{unique('maria')}@example.ru"
    till = identify("pos-msk-01", phones=(phone,), first_name="Маша")
    app = identify("app", emails=(mail,), first_name="Мария", last_name="Смирнова")
    pos_customer, app_customer = placed(suite, till), placed(suite, app)
    assert pos_customer != app_customer
    # A web order form carries both: the till's Маша and the app's Мария become one customer.
    bridge = identify("webshop", phones=(phone,), emails=(mail,), first_name="Мария")
    assert placed(suite, bridge) == pos_customer
    assert customer_of(suite, app_customer).customer_id == pos_customer

    # A person finds the app's Мария is somebody else and moves her record out.
    split = suite.identity.SplitCustomer(
        identity_pb2.SplitCustomerRequest(
            customer_id=pos_customer,
            record_refs=[app.record_ref],
            reason="the app account is her sister's",
            actor="agent-2",
        ),
        timeout=T,
    )
    sister = split.target_customer_id
    assert list(split.redirected_customer_ids) == [app_customer]
    assert customer_of(suite, app_customer).customer_id == sister
    assert app_customer in customer_of(suite, sister).merged_ids
    assert customer_of(suite, pos_customer).customer_id == pos_customer
    assert app_customer not in customer_of(suite, pos_customer).merged_ids
    # The till's phone still names the customer who kept it; the e-mail both sides' records
    # carry names neither on its own.
    answers = suite.identity.BatchLookupCustomers(
        identity_pb2.BatchLookupCustomersRequest(
            identifiers=[
                common_pb2.Identifier(type=PHONE, value=phone),
                common_pb2.Identifier(type=EMAIL, value=mail),
            ]
        ),
        timeout=T,
    ).results
    assert answers[0].customer_id == pos_customer
    assert answers[1].state == identity_pb2.IDENTIFIER_STATE_SHARED
    assert sorted(answers[1].candidate_customer_ids) == sorted([pos_customer, sister])

    # What a marketer sees: the old app id shows the sister's profile, not Маша's.
    def shown() -> profile_pb2.Profile | None:
        try:
            return suite.profile.GetProfile(
                profile_pb2.GetProfileRequest(customer_id=app_customer), timeout=T
            )
        except grpc.RpcError as error:  # the split is still on its way to profile
            assert error.code() == grpc.StatusCode.NOT_FOUND, error
            return None

    wait_until(
        shown,
        T,
        what="the sister's profile shown for the old app id",
        until=lambda p: (
            p is not None and p.customer_id == sister and p.last_name.value == "Смирнова"
        ),
    )
    kept = suite.profile.GetProfile(
        profile_pb2.GetProfileRequest(customer_id=pos_customer), timeout=T
    )
    assert kept.customer_id == pos_customer and not kept.last_name.value
