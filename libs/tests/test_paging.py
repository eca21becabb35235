"""Page tokens and id checks every service shares: what a caller gets back and is refused."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from svod.common.v1 import common_pb2
from svod_runtime.bounds import MAX_PAGE_TOKEN
from svod_runtime.dead_letters import DeadLetterApi
from svod_runtime.errors import InvalidArgument
from svod_runtime.ids import is_uuid, parse_customer_id, parse_uuid
from svod_runtime.outbox import DeadLetter
from svod_runtime.paging import (
    NOT_A_TOKEN,
    decode_page_token,
    encode_page_token,
    number_token,
    token_time,
)

CUSTOMER = "0b8f3a9e-5c1d-4e2a-9f60-1d2c3b4a5e6f"


def _refused(call: object) -> tuple[str, str]:
    with pytest.raises(InvalidArgument) as refused:
        call()  # type: ignore[operator]
    (violation,) = refused.value.violations
    return violation.field, violation.description


def test_a_token_gives_back_the_position_it_was_made_from() -> None:
    position = ["2026-12-04T10:00:00+00:00", "web", "m-1"]
    assert decode_page_token(encode_page_token(position), 3) == position


def test_tokens_issued_before_the_shared_codec_still_decode() -> None:
    # Identity's review-queue token as it was issued (profile's had the same form).
    identity = (
        "WyIyMDI2LTEyLTA0VDEwOjAwOjAwKzAwOjAwIiwgIjBiOGYzYTllLTVjMW"
        "QtNGUyYS05ZjYwLTFkMmMzYjRhNWU2ZiJd"
    )
    assert decode_page_token(identity, 2) == ["2026-12-04T10:00:00+00:00", CUSTOMER]
    # Ingestion's held-event token: base64 of the bare number, where the caller accepts it.
    assert decode_page_token("MTIzNDU=", 1, bare=True) == ["12345"]
    assert _refused(lambda: decode_page_token("MTIzNDU=", 1)) == ("page_token", NOT_A_TOKEN)


@pytest.mark.parametrize(
    "token",
    [
        "not a token!",
        encode_page_token(["a", "b"]),  # another RPC's token: wrong number of values
        encode_page_token(["a\x00"]),
        "A" * (MAX_PAGE_TOKEN + 4),
    ],
)
def test_anything_else_is_refused_on_the_token_field(token: str) -> None:
    assert _refused(lambda: decode_page_token(token, 1, field="resume_token")) == (
        "resume_token",
        NOT_A_TOKEN,
    )


def test_token_times_need_an_offset_and_a_storable_year() -> None:
    assert token_time("2026-12-04T10:00:00+00:00") == dt.datetime(2026, 12, 4, 10, tzinfo=dt.UTC)
    for bad in ("2026-12-04T10:00:00", "yesterday", "0001-01-01T00:00:00+00:00"):
        assert _refused(lambda bad=bad: token_time(bad)) == ("page_token", NOT_A_TOKEN)


def test_ids_come_back_canonical_or_are_refused_naming_the_field() -> None:
    assert parse_uuid(CUSTOMER.upper(), "customer_id") == CUSTOMER
    assert parse_uuid("{" + CUSTOMER + "}", "customer_id") == CUSTOMER
    assert is_uuid(CUSTOMER) and not is_uuid("42")
    assert _refused(lambda: parse_uuid("42", "delivery_ids[3]")) == (
        "delivery_ids[3]",
        "must be a UUID",
    )
    assert _refused(lambda: parse_customer_id("")) == (
        "customer_id",
        "must be a customer id (UUID)",
    )


def test_one_number_tokens_old_and_new_give_the_row_key() -> None:
    assert number_token(encode_page_token(["42"])) == 42
    assert number_token("42") == 42  # the dead-letter listing's bare number
    assert number_token("NDI=") == 42  # ingestion's base64 of it
    for bad in ("-1", "9" * 20, encode_page_token(["x"]), encode_page_token([str(2**63)])):
        assert _refused(lambda bad=bad: number_token(bad)) == ("page_token", NOT_A_TOKEN)


def test_dead_letters_page_on_from_a_token_issued_before_the_codec() -> None:
    now = dt.datetime(2026, 12, 4, tzinfo=dt.UTC)
    letters = [DeadLetter(n, "t", f"k{n}", 20, "no", now, now, 0) for n in range(1, 8)]

    class Letters:
        async def list(self, topic: str | None, after: int, limit: int) -> tuple[list, int]:
            return [d for d in letters if d.dead_letter_id > after][:limit], len(letters)

    api = DeadLetterApi(Letters(), ["t"])  # type: ignore[arg-type]

    async def page(token: str) -> common_pb2.ListDeadLettersResponse:
        return await api.list(common_pb2.ListDeadLettersRequest(page_size=3, page_token=token))

    first = asyncio.run(page(""))
    second = asyncio.run(page(first.next_page_token))
    issued_before = asyncio.run(page("3"))
    assert [d.dead_letter_id for d in second.dead_letters] == [4, 5, 6]
    assert [d.dead_letter_id for d in issued_before.dead_letters] == [4, 5, 6]
    with pytest.raises(InvalidArgument):
        asyncio.run(page("x"))
