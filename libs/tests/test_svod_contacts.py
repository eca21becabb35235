"""The shared contact vocabulary: the identifier types are the proto's, and a phone or an e-mail
gets the same canonical spelling through every service that reads it (ingestion's validation
and attribution keys, identity's identifier keys and matcher, quality's standardisation)."""

from __future__ import annotations

import random

import phonenumbers
import pytest

from svod.common.v1 import common_pb2
from svod_contacts.cards import normalize_card
from svod_contacts.emails import check_email, normalize_email
from svod_contacts.identifiers import NAMESPACED_NAMES, TYPE_NAMES, IdentifierType
from svod_contacts.phones import (
    NumberKind,
    e164,
    normalize_phone,
    parse_phone,
    russian_number_kind,
)
from svod_identity.domain.identifiers import normalize_value
from svod_identity.domain.matching.record import build_person_record
from svod_ingestion.domain.attribution import identifier_key
from svod_ingestion.domain.messages import validate_identifiers
from svod_quality.domain.facts import normalized_contact
from svod_runtime.errors import ViolationCollector

PHONES = [
    # Russian mobile numbers as people and tills write them.
    "+7 916 123-45-67",
    "8 (916) 123-45-67",
    "89161234567",
    "79161234567",
    "9161234567",
    " +7(916)1234567 ",
    "8-916-123-45-67",
    # A Moscow landline, a toll-free number, foreign numbers.
    "8 495 123-45-67",
    "8 800 555-35-35",
    "+375 29 123-45-67",
    "+1 650 555 1212",
    "+44 20 7946 0958",
    # Placeholders: possible numbers, so kept as identifiers (identity's placeholder rule
    # decides what they link).
    "+7 000 000-00-00",
    "8 999 999-99-99",
    # Eleven digits after a 7 that make no Russian number (the matcher used to force "+7").
    "7-138-784-12-04",
    "75248768702",
    # Not phone numbers at all.
    "123",
    "phone",
    "+7 916 123-45-67-89-01-23",
]

EMAILS = [
    "ivan.petrov@mail.ru",
    "  Ivan.Petrov@Mail.RU ",
    "a+tag@gmail.com",
    "иван@почта.рф",
    "ivan@xn--80a1acny.xn--p1ai",
    "o'brien@example.com",
    "mailto:Ivan@mail.ru",
    # Shaped like addresses, not valid ones: kept as identifiers, reported by quality.
    "ivan..petrov@mail.ru",
    "ivan.@mail.ru",
    "ivan@shop.test",
    "ivan(at)@mail.ru",
    # Not addresses.
    "a@b@mail.ru",
    "ivan@mail.ru.",
    "ivan@localhost",
    "ivan petrov@mail.ru",
    "ivan@mailru",
    "ivan",
    "",
]


def test_identifier_types_are_the_proto_enum() -> None:
    proto = common_pb2.IdentifierType
    named = {
        name.removeprefix("IDENTIFIER_TYPE_").lower(): number
        for name, number in proto.items()
        if number != proto.IDENTIFIER_TYPE_UNSPECIFIED
    }
    assert {t.value: t.proto_number for t in IdentifierType} == named
    assert tuple(sorted(named, key=named.__getitem__)) == TYPE_NAMES
    assert set(NAMESPACED_NAMES) == {"external_id", "custom"}
    assert IdentifierType.PHONE == "phone" and not IdentifierType.PHONE.namespaced


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("8 (916) 123-45-67", "+79161234567"),
        ("79161234567", "+79161234567"),
        ("9161234567", "+79161234567"),
        ("+375 29 123-45-67", "+375291234567"),
        ("+7 000 000-00-00", "+70000000000"),
        ("7-138-784-12-04", None),
        ("123", None),
        ("", None),
    ],
)
def test_phones_go_to_e164_with_russia_as_the_default_region(raw: str, e164: str | None) -> None:
    assert normalize_phone(raw) == e164


def test_a_russian_number_in_e164_is_answered_as_phonenumbers_reads_it() -> None:
    """normalize_phone answers "+7" and ten digits without parsing: phonenumbers must read
    every such value as itself (possible), whatever its prefix."""
    rng = random.Random(20)
    values = ["+7" + "0" * 10, "+7" + "8" * 10, "+7" + "9" * 10]
    for prefix in range(100):
        values += [f"+7{prefix:02d}{rng.randrange(10**8):08d}" for _ in range(20)]
    for value in values:
        assert parse_phone(value) is not None, value
        assert e164(parse_phone(value)) == value  # type: ignore[arg-type]
        assert phonenumbers.is_possible_number(parse_phone(value)), value
        assert normalize_phone(value) == value
    # Not ASCII digits, or not exactly ten: parsed as before.
    assert normalize_phone("+7916123456７") == "+79161234567"
    assert normalize_phone("+7916123456") is None


_KIND_OF_TYPE = {
    phonenumbers.PhoneNumberType.MOBILE: NumberKind.MOBILE,
    phonenumbers.PhoneNumberType.FIXED_LINE: NumberKind.LANDLINE,
}


def test_a_russian_numbers_kind_is_the_one_phonenumbers_gives() -> None:
    """russian_number_kind types a number from the RU metadata without phonenumbers' calls: for
    every four-digit prefix it says what number_type says of a Russian number, and declines
    (None) a number phonenumbers calls invalid or places in Kazakhstan."""
    rng = random.Random(2042)
    typed = 0
    for prefix in range(10_000):
        for _ in range(2):
            national = f"{prefix:04d}{rng.randrange(10**6):06d}"
            number = phonenumbers.parse("+7" + national, None)
            kind = phonenumbers.number_type(number)
            in_russia = phonenumbers.region_code_for_number(number) == "RU"
            found = russian_number_kind(national)
            if found is None:
                assert kind == phonenumbers.PhoneNumberType.UNKNOWN or not in_russia, national
            else:
                typed += 1
                assert in_russia, national
                assert found == _KIND_OF_TYPE.get(kind, NumberKind.OTHER), national
    assert typed > 3_000  # the fast answer covers the plan's mobiles and landlines (4,019)
    assert russian_number_kind("916123456") is None and russian_number_kind("91612345678") is None


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("  Ivan.Petrov@Mail.RU ", "ivan.petrov@mail.ru"),
        ("mailto:Ivan@mail.ru", "ivan@mail.ru"),
        ("иван@почта.рф", "иван@почта.рф"),
        ("ivan@xn--80a1acny.xn--p1ai", "ivan@почта.рф"),
        ("Ivan..Petrov@mail.ru", "ivan..petrov@mail.ru"),
        ("ivan@shop.test", "ivan@shop.test"),
        ("a@b@mail.ru", None),
        ("ivan@mail.ru.", None),
        ("ivan@mailru", None),
        ("", None),
    ],
)
def test_emails_are_trimmed_lower_cased_and_shaped_like_an_address(
    raw: str, normal: str | None
) -> None:
    assert normalize_email(raw) == normal


@pytest.mark.parametrize("raw", EMAILS)
def test_an_email_spelling_is_its_own_spelling(raw: str) -> None:
    normal = normalize_email(raw)
    if normal is not None:
        assert normalize_email(normal) == normal


def test_validity_is_email_validators_and_says_why() -> None:
    assert check_email(" Ivan@Mail.ru ") == ("ivan@mail.ru", "")
    assert "two periods" in check_email("ivan..petrov@mail.ru").error
    assert "special-use" in check_email("ivan@shop.test").error
    assert check_email(" ").error == "empty"


def test_cards_lose_spaces_and_dashes() -> None:
    assert normalize_card(" 1234-5678 90ab ") == "1234567890AB"
    assert normalize_card(" - ") is None


def _ingestion_accepts(id_type: str, raw: str) -> bool:
    errors = ViolationCollector()
    validate_identifiers([(id_type, raw, "")], errors, "identifiers")
    return not errors.violations


def _ingestion_key(id_type: str, raw: str) -> str:
    return identifier_key(id_type, raw).rpartition("\x1f")[2]


@pytest.mark.parametrize("raw", PHONES)
def test_a_phone_is_spelled_alike_by_every_service(raw: str) -> None:
    shared = normalize_phone(raw)
    # Ingestion accepts what identity accepts, and keys it by the same spelling.
    assert _ingestion_accepts("phone", raw) == (shared is not None)
    if shared is not None:
        assert _ingestion_key("phone", raw) == shared
    # Identity: its identifier keys and the matcher's reading of a source record.
    assert normalize_value("phone", raw) == shared
    assert build_person_record("r", phones=[raw]).phones == ((shared,) if shared else ())
    # Quality: its normal form of a valid number (an invalid one it reports, with no E.164).
    quality = normalized_contact("phone", raw)
    assert quality in ("", shared)


def test_quality_gives_the_shared_spelling_of_every_valid_number() -> None:
    valid = [raw for raw in PHONES if normalized_contact("phone", raw)]
    assert len(valid) >= 10
    assert all(normalized_contact("phone", raw) == normalize_phone(raw) for raw in valid)


@pytest.mark.parametrize("raw", EMAILS)
def test_an_email_is_spelled_alike_by_every_service(raw: str) -> None:
    shared = normalize_email(raw)
    if raw.strip():
        assert _ingestion_accepts("email", raw) == (shared is not None)
    if shared is not None:
        assert _ingestion_key("email", raw) == shared
    assert normalize_value("email", raw) == shared
    assert build_person_record("r", emails=[raw]).emails == ((shared,) if shared else ())
    # Quality: the same spelling of a valid address; an invalid one it reports, unspelled.
    quality = normalized_contact("email", raw)
    assert quality in ("", shared)
    assert (quality != "") == (not check_email(raw).error)


def test_ingestion_names_the_identifier_it_refuses() -> None:
    """What ingestion refuses it names; it never stores what identity would then refuse."""
    errors = ViolationCollector()
    validate_identifiers(
        [("email", "ivan@mail.ru.", ""), ("phone", "8 916 123-45-67", "")],
        errors,
        "record.identifiers",
    )
    assert [v.field for v in errors.violations] == ["record.identifiers[0].value"]
