"""BatchLookupCustomers' response, put together from each distinct answer's bytes, is the
message a result built per identifier gives (issue #22 made it cheaper, not different)."""

from __future__ import annotations

import uuid

from svod.common.v1 import common_pb2
from svod.identity.v1 import identity_pb2
from svod_identity.domain.identifiers import BlockReason, IdentifierKey
from svod_identity.domain.lookup import (
    MAX_CANDIDATES,
    IdentifierAnswer,
    IdentifierState,
    Lookups,
    answer_for,
    answers_for,
)
from svod_identity.entrypoints.grpc_servicer import lookup_response
from svod_runtime.errors import FieldViolation, InvalidArgument
from svod_runtime.interceptors import status_proto_for
from svod_runtime.protoconv import enum_number

PHONE = IdentifierKey("phone", "+79161234567")
CARD = IdentifierKey("loyalty_card", "12345678")
CUSTOM = IdentifierKey("custom", "Анна-" + "я" * 100, "crm")  # 2-byte characters, >127 bytes
OWNER, OTHER = str(uuid.uuid4()), str(uuid.uuid4())


def reference(
    found: IdentifierAnswer | InvalidArgument,
) -> identity_pb2.BatchLookupCustomersResponse.Result:
    """A result as the servicer built it per identifier before issue #22."""
    result = identity_pb2.BatchLookupCustomersResponse.Result
    if isinstance(found, InvalidArgument):
        return result(error=status_proto_for(found))
    key = found.key
    return result(
        customer_id=found.customer_id,
        state=enum_number(
            identity_pb2.IdentifierState.DESCRIPTOR, found.state.value, "IDENTIFIER_STATE_"
        ),
        candidate_customer_ids=list(found.candidates),
        blocked_reason=found.blocked_reason,
        identifier=common_pb2.Identifier(
            type=enum_number(common_pb2.IdentifierType.DESCRIPTOR, key.type, "IDENTIFIER_TYPE_"),
            value=key.value,
            namespace=key.namespace,
        ),
    )


def test_the_response_is_the_per_identifier_one_byte_for_byte() -> None:
    many = tuple(str(uuid.uuid4()) for _ in range(MAX_CANDIDATES))  # a result over 127 bytes
    answers = [
        IdentifierAnswer(PHONE, IdentifierState.DECISIVE, OWNER, (OWNER,)),
        IdentifierAnswer(CARD, IdentifierState.SHARED, "", (OWNER, OTHER)),
        IdentifierAnswer(CUSTOM, IdentifierState.BLOCKED, "", many, BlockReason.FREQUENCY),
        IdentifierAnswer(IdentifierKey("email", "a@b.ru"), IdentifierState.UNKNOWN),
        IdentifierAnswer(
            IdentifierKey("phone", "+79999999999"), IdentifierState.BLOCKED, "", (), "placeholder"
        ),
    ]

    def bad(index: int) -> InvalidArgument:
        return InvalidArgument([FieldViolation(f"identifiers[{index}].value", "must not be empty")])

    slots: list[int | InvalidArgument] = [0, 1, bad(2), 2, 0, 3, 4, bad(7), 2]
    expected = identity_pb2.BatchLookupCustomersResponse(
        results=[reference(answers[s] if isinstance(s, int) else s) for s in slots]
    )

    got = lookup_response(Lookups(answers, slots))

    assert got.SerializeToString() == expected.SerializeToString()
    assert got == expected


def test_answers_follow_the_rules_before_the_stored_blocklist() -> None:
    keys = [PHONE, CARD, CUSTOM, IdentifierKey("email", "a@b.ru")]
    facts = {0: (OWNER, (), None), 1: (OWNER, [OTHER, "gone"], None), 2: (None, (), "frequency")}

    def rules_block(key: IdentifierKey) -> str | None:
        return BlockReason.CONFIGURED if key == CUSTOM else None

    answers = answers_for(keys, facts, rules_block, {OTHER: OTHER})

    assert answers == [
        answer_for(PHONE, OWNER, [], None, {}),
        answer_for(CARD, OWNER, [OTHER, "gone"], None, {OTHER: OTHER}),
        answer_for(CUSTOM, None, [], BlockReason.CONFIGURED),
        answer_for(keys[3], None, [], None),
    ]
    assert [a.state for a in answers] == [
        IdentifierState.DECISIVE,
        IdentifierState.SHARED,
        IdentifierState.BLOCKED,
        IdentifierState.UNKNOWN,
    ]
    assert answers[0].candidates == (OWNER,) and answers[1].candidates == (OWNER, OTHER)
    assert answers[2].blocked_reason == "configured"
