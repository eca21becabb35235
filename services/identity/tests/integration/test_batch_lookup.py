"""BatchLookupCustomers: many identifiers' customers in one call (ingestion's event delivery)."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2

from services.identity.tests.integration.test_identity_api import (
    EMAIL,
    PHONE,
    T,
    email,
    phone,
    request,
    resolve,
)
from svod.common.v1 import common_pb2
from svod.identity.v1 import identity_pb2


def lookup(suite, *identifiers: common_pb2.Identifier) -> list:
    reply = suite.identity.BatchLookupCustomers(
        identity_pb2.BatchLookupCustomersRequest(identifiers=list(identifiers)), timeout=T
    )
    return list(reply.results)


def test_each_identifier_gets_its_current_customer_in_order(suite) -> None:
    p, m = phone(), email()
    by_phone = resolve(suite, request(phones=(p,)))
    by_email = resolve(suite, request(emails=(m,)))
    digits = p.replace(" ", "")[2:]

    results = lookup(
        suite,
        common_pb2.Identifier(type=EMAIL, value=m.upper()),  # normalised before the look-up
        common_pb2.Identifier(type=PHONE, value="8" + digits),
        common_pb2.Identifier(type=PHONE, value=phone()),  # nobody's
        common_pb2.Identifier(type=PHONE, value=""),  # malformed
    )

    assert [r.customer_id for r in results] == [
        by_email.customer_id,
        by_phone.customer_id,
        "",
        "",
    ]
    assert [r.HasField("error") for r in results] == [False, False, False, True]
    assert results[3].error.code == code_pb2.INVALID_ARGUMENT
    details = error_details_pb2.BadRequest()
    assert results[3].error.details[0].Unpack(details)
    assert [v.field for v in details.field_violations] == ["identifiers[3].value"]

    # After a merge both answer with the survivor.
    bridge = resolve(suite, request(phones=(p,), emails=(m,)))
    survivor = bridge.customer_id
    after = lookup(
        suite,
        common_pb2.Identifier(type=PHONE, value=p),
        common_pb2.Identifier(type=EMAIL, value=m),
    )
    assert [r.customer_id for r in after] == [survivor, survivor]


def test_repeated_identifiers_each_get_their_answer_in_place(suite) -> None:
    """A batch asks for the same customers again and again (an event import): each distinct
    spelling is answered once, and every position gets the answer and its own error path."""
    p = phone()
    customer = resolve(suite, request(phones=(p,))).customer_id
    digits = p.replace(" ", "")[2:]
    asked = [p, "", "8" + digits, p, "", "+7" + digits]

    results = lookup(suite, *(common_pb2.Identifier(type=PHONE, value=v) for v in asked))

    assert [r.customer_id for r in results] == [customer, "", customer, customer, "", customer]
    assert results[0] == results[2] == results[3] == results[5]
    assert results[0].identifier.value == "+7" + digits
    fields = []
    for r in (results[1], results[4]):
        details = error_details_pb2.BadRequest()
        assert r.error.details[0].Unpack(details)
        fields += [v.field for v in details.field_violations]
    assert fields == ["identifiers[1].value", "identifiers[4].value"]


@pytest.mark.parametrize("count", [0, 5001])
def test_call_size_is_bounded(suite, count) -> None:
    identifiers = [common_pb2.Identifier(type=PHONE, value=phone()) for _ in range(count)]
    with pytest.raises(grpc.RpcError) as caught:
        lookup(suite, *identifiers)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
