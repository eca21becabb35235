"""Look-ups never pick one customer for an identifier that names nobody on its own: a family's
shared phone, a shop's own number on the frequency blocklist, a placeholder, a phone a split
left on both sides."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from services.identity.tests.integration.test_identity_api import (
    CARD,
    EMAIL,
    PHONE,
    T,
    email,
    phone,
    request,
    resolve,
    unique,
)
from svod.common.v1 import common_pb2
from svod.identity.v1 import identity_pb2
from svod_identity.domain.lookup import IdentifierState

DECISIVE = identity_pb2.IDENTIFIER_STATE_DECISIVE
SHARED = identity_pb2.IDENTIFIER_STATE_SHARED
BLOCKED = identity_pb2.IDENTIFIER_STATE_BLOCKED
UNKNOWN = identity_pb2.IDENTIFIER_STATE_UNKNOWN


def lookup(suite, *identifiers: common_pb2.Identifier) -> list:
    reply = suite.identity.BatchLookupCustomers(
        identity_pb2.BatchLookupCustomersRequest(identifiers=list(identifiers)), timeout=T
    )
    return list(reply.results)


def by_phone(value: str) -> common_pb2.Identifier:
    return common_pb2.Identifier(type=PHONE, value=value)


def refusal_info(suite, identifier: common_pb2.Identifier) -> tuple[grpc.RpcError, dict]:
    with pytest.raises(grpc.RpcError) as caught:
        suite.identity.LookupCustomer(
            identity_pb2.LookupCustomerRequest(identifier=identifier), timeout=T
        )
    error = caught.value
    status = status_pb2.Status.FromString(
        dict(error.trailing_metadata())["grpc-status-details-bin"]
    )
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return error, {"reason": info.reason, **info.metadata}


def family(suite) -> tuple[str, str, str, str]:
    """Мария and her daughter Анна share the flat's phone; each has her own card or e-mail."""
    shared, card, mail = phone(), unique("card"), email()
    mother = resolve(
        suite,
        request(phones=(shared,), cards=(card,), first="Мария", last="Смирнова", born=(1968, 3, 2)),
    )
    daughter = resolve(
        suite,
        request(phones=(shared,), emails=(mail,), first="Анна", last="Смирнова", born=(1997, 7, 9)),
    )
    assert mother.customer_id != daughter.customer_id
    assert [u.reason for u in daughter.unlinked_identifiers] == ["conflict"]
    return shared, mother.customer_id, daughter.customer_id, card


def test_state_enum_mirrors_the_proto() -> None:
    names = {
        v.name.removeprefix("IDENTIFIER_STATE_").lower()
        for v in identity_pb2.IdentifierState.DESCRIPTOR.values
        if v.number != 0
    }
    assert names == {s.value for s in IdentifierState}


def test_a_familys_shared_phone_names_both_and_picks_neither(suite) -> None:
    shared, mother, daughter, card = family(suite)
    phone_answer, card_answer = lookup(
        suite, by_phone(shared), common_pb2.Identifier(type=CARD, value=card.lower())
    )
    assert phone_answer.state == SHARED and phone_answer.customer_id == ""
    assert list(phone_answer.candidate_customer_ids) == [mother, daughter]
    assert phone_answer.identifier.value == shared.replace(" ", "")
    assert card_answer.state == DECISIVE and card_answer.customer_id == mother

    error, info = refusal_info(suite, by_phone(shared))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert info["reason"] == "IDENTIFIER_SHARED"
    assert info["candidate_customer_ids"].split(",") == [mother, daughter]
    assert shared.replace(" ", "")[2:] not in error.details()  # no personal data in the text

    # Once a person says they are one customer, the phone names the survivor again.
    merged = suite.identity.MergeCustomers(
        identity_pb2.MergeCustomersRequest(
            customer_ids=[mother, daughter], reason="one person after all", actor="agent-3"
        ),
        timeout=T,
    )
    (after,) = lookup(suite, by_phone(shared))
    assert after.state == DECISIVE and after.customer_id == merged.surviving_customer_id


def test_a_shop_number_on_the_frequency_blocklist_names_nobody(suite) -> None:
    shop = phone()
    people = [
        resolve(suite, request(phones=(shop,), first=first, born=(1960 + i, 1 + i, 1 + i)))
        for i, first in enumerate(("Олег", "Ирина", "Степан", "Жанна", "Вадим"))
    ]
    assert people[-1].unlinked_identifiers[0].reason == "frequency"
    (answer,) = lookup(suite, by_phone(shop))
    assert answer.state == BLOCKED and answer.blocked_reason == "frequency"
    assert answer.customer_id == ""
    assert answer.candidate_customer_ids[0] == people[0].customer_id
    error, info = refusal_info(suite, by_phone(shop))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert info["reason"] == "IDENTIFIER_BLOCKED" and info["blocked_reason"] == "frequency"

    placeholder, nobody = lookup(suite, by_phone("+7 000 000-00-00"), by_phone(phone()))
    assert placeholder.state == BLOCKED and placeholder.blocked_reason == "placeholder"
    assert nobody.state == UNKNOWN and not nobody.candidate_customer_ids


def test_a_phone_a_split_leaves_on_both_sides_is_shared(suite) -> None:
    shared, mail = phone(), email()
    first = request(phones=(shared,), first="Павел", born=(1980, 1, 1))
    second = request(phones=(shared,), emails=(mail,), first="Павел", born=(1980, 1, 1))
    a, b = resolve(suite, first), resolve(suite, second)
    assert a.customer_id == b.customer_id
    split = suite.identity.SplitCustomer(
        identity_pb2.SplitCustomerRequest(
            customer_id=a.customer_id,
            record_refs=[second.record_ref],
            reason="two brothers",
            actor="agent-1",
        ),
        timeout=T,
    )
    phone_answer, email_answer = lookup(
        suite, by_phone(shared), common_pb2.Identifier(type=EMAIL, value=mail)
    )
    assert phone_answer.state == SHARED
    assert list(phone_answer.candidate_customer_ids) == [a.customer_id, split.target_customer_id]
    assert email_answer.state == DECISIVE
    assert email_answer.customer_id == split.target_customer_id


def test_an_erased_person_is_nobodys_candidate(suite) -> None:
    shared, mother, daughter, _ = family(suite)
    suite.identity.EraseCustomer(
        identity_pb2.EraseCustomerRequest(customer_id=daughter, actor="dpo", reason="asked"),
        timeout=T,
    )
    (answer,) = lookup(suite, by_phone(shared))
    assert answer.state == DECISIVE and answer.customer_id == mother
    assert list(answer.candidate_customer_ids) == [mother]
