"""Pairwise comparison levels, feature by feature."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.matching import (
    FEATURES,
    LEVELS,
    MISSING,
    PersonRecord,
    build_person_record,
    compare_records,
    is_placeholder_phone,
    normalize_phone,
)
from svod_identity.domain.matching.blocking import blocking_keys
from svod_identity.domain.matching.compare import birth_date_level
from svod_identity.domain.matching.contacts import is_dummy_phone
from svod_identity.domain.matching.record import BoundedCache
from svod_identity.domain.rules import Rules

RecordFactory = Callable[..., PersonRecord]


def test_masha_maria_and_maria_in_latin(make_record: RecordFactory) -> None:
    masha = make_record(first_name="Маша", last_name="Иванова")
    maria = make_record(first_name="Мария", last_name="Иванова")
    latin = make_record(first_name="Maria", last_name="Ivanova")
    assert compare_records(masha, maria)["first_name"] == "equivalent"
    assert compare_records(masha, latin)["first_name"] == "equivalent"
    assert compare_records(maria, latin)["first_name"] == "exact"


def test_sasha_female_is_not_aleksandr(make_record: RecordFactory) -> None:
    sasha = make_record(first_name="Саша", last_name="Ким", gender="female")
    aleksandr = make_record(first_name="Александр", last_name="Ким")
    aleksandra = make_record(first_name="Александра", last_name="Ким")
    assert compare_records(sasha, aleksandr)["first_name"] == "disagree"
    assert compare_records(sasha, aleksandra)["first_name"] == "equivalent"


def test_gender_hint_comes_from_patronymic_and_surname(make_record: RecordFactory) -> None:
    by_patronymic = make_record(first_name="Женя", last_name="Ким", middle_name="Олеговна")
    by_surname = make_record(first_name="Женя", last_name="Петрова")
    evgeny = make_record(first_name="Евгений", last_name="Петров")
    assert compare_records(by_patronymic, evgeny)["first_name"] == "disagree"
    assert compare_records(by_surname, evgeny)["first_name"] == "disagree"


def test_every_level_is_declared(make_record: RecordFactory) -> None:
    a = make_record(first_name="Иван", phones=["+79161234567"], city="Москва")
    b = make_record(last_name="Петров")
    levels = compare_records(a, b)
    assert tuple(levels) == FEATURES
    assert all(level == MISSING or level in LEVELS[f] for f, level in levels.items())


@pytest.mark.parametrize(
    ("a", "b", "level"),
    [
        ("1985-03-14", "1985-03-14", "exact"),
        ("1985-03-04", "1985-04-03", "typo"),  # day and month swapped
        ("1985-03-14", "1985-03-17", "typo"),  # one digit
        ("1985-03-14", "1958-03-14", "disagree"),  # two digits
        ("1985-03-14", "1991-07-02", "disagree"),
    ],
)
def test_birth_date_levels(a: str, b: str, level: str) -> None:
    assert birth_date_level(dt.date.fromisoformat(a), dt.date.fromisoformat(b)) == level


@pytest.mark.parametrize(
    "raw", ["8 916 123-45-67", "+7 (916) 123-45-67", "89161234567", "7 916 1234567"]
)
def test_phone_formats_normalise_to_e164(raw: str) -> None:
    assert normalize_phone(raw) == "+79161234567"


@pytest.mark.parametrize(
    "raw", ["+7 000 000-00-00", "80000000000", "+7 (999) 999-99-99", "+7 (123) 456-78-90"]
)
def test_till_placeholders_are_recognised(raw: str) -> None:
    phone = normalize_phone(raw)
    assert phone is None or is_placeholder_phone(phone)


@pytest.mark.parametrize(
    "raw", ["+7 926 212-22-12", "8 916 500-50-05", "+7 903 777-77-17", "+7 495 100-10-01"]
)
def test_real_numbers_of_two_digits_are_no_placeholders(raw: str) -> None:
    """About 0.06% of subscribers have seven digits of two kinds; they are real numbers, and
    the pattern may not keep them from ever linking (the frequency blocklist handles shares)."""
    phone = normalize_phone(raw)
    assert phone is not None
    assert not is_placeholder_phone(phone)
    assert not is_dummy_phone(phone)
    assert Rules().block_reason(IdentifierKey("phone", phone)) is None


@pytest.mark.parametrize(
    ("raw", "dummy"),
    [
        ("+7 916 777-77-77", True),  # all one digit
        ("+7 (999) 999-99-99", True),
        ("8 900 000 00 00", True),
        ("+7 916 234-56-78", False),  # a counting run: no evidence, but a number some have
        ("+7 916 876-54-32", False),
        ("+7 916 012-34-56", False),
    ],
)
def test_unmistakable_placeholders_by_pattern(raw: str, dummy: bool) -> None:
    phone = normalize_phone(raw)
    assert phone is not None
    assert is_placeholder_phone(phone)
    assert is_dummy_phone(phone) is dummy
    blocked = Rules().block_reason(IdentifierKey("phone", phone))
    assert blocked == ("placeholder" if dummy else None)


def test_two_digit_number_is_evidence(make_record: RecordFactory) -> None:
    a = make_record(first_name="Иван", phones=["+7 926 212-22-12"])
    b = make_record(first_name="Иван", phones=["89262122212"])
    assert compare_records(a, b)["phone"] == "agree"
    assert "p:+79262122212" in blocking_keys(a)


def test_placeholder_phone_is_no_evidence(make_record: RecordFactory) -> None:
    a = make_record(first_name="Иван", phones=["+7 000 000-00-00"])
    b = make_record(first_name="Пётр", phones=["80000000000"])
    assert compare_records(a, b)["phone"] == MISSING


def test_mobile_and_landline_agreement_differ(make_record: RecordFactory) -> None:
    mobile_a = make_record(phones=["8 916 482-19-37"])
    mobile_b = make_record(phones=["+7 916 4821937", "+7 495 731-22-08"])
    home = make_record(phones=["8 (495) 731-22-08"])
    assert compare_records(mobile_a, mobile_b)["phone"] == "agree"
    assert compare_records(home, mobile_b)["phone"] == "agree_landline"
    assert compare_records(home, mobile_a)["phone"] == "disagree"


@pytest.mark.parametrize(
    ("a", "b", "level"),
    [
        ("Ivan.Petrov@Mail.ru", "ivan.petrov@mail.ru", "exact"),
        ("ivan.petrov@yandex.ru", "ivan-petrov@ya.ru", "exact"),  # one Yandex mailbox
        ("ivan.petrov85@mail.ru", "ivan.petrov85@gmail.com", "local_part"),
        ("ivan.petrov85@mail.ru", "ivan.petorv85@mail.ru", "fuzzy"),
        ("elena1952@bk.ru", "elena1972@bk.ru", "disagree"),  # two Elenas' years, not a slip
        # Two birth years (1985, 1958) of two namesakes, as birth dates are read.
        ("ivan.petrov85@mail.ru", "ivan.petrov58@mail.ru", "disagree"),
        ("ivan.petrov85@mail.ru", "ivan.petrvo85@mail.ru", "fuzzy"),  # letters swapped: a slip
        ("ivan.petrov85@mail.ru", "ivan.petrov5@mail.ru", "fuzzy"),  # a digit dropped
        ("info@mail.ru", "info@gmail.com", "disagree"),  # says nothing about who
        ("olga7@mail.ru", "olga7@gmail.com", "disagree"),  # too short: taken everywhere
        ("maria.smirnova@bk.ru", "maria.smirnova@list.ru", "local_part"),
        ("maria.smirnova@inbox.ru", "mariasmirnova@ya.ru", "local_part"),
        ("ivan.petrov@mail.ru", "olga.smirnova@mail.ru", "disagree"),
    ],
)
def test_email_levels(make_record: RecordFactory, a: str, b: str, level: str) -> None:
    assert compare_records(make_record(emails=[a]), make_record(emails=[b]))["email"] == level


def test_one_login_under_unlike_given_names_is_two_mailboxes(
    make_record: RecordFactory,
) -> None:
    """popov.a@rambler.ru (Антон) and popov.a@bk.ru (Алексей) are logins built alike from
    two people's names, not one person's login at two providers."""
    anton = make_record(first_name="Антон", last_name="Попов", emails=["popov.a@rambler.ru"])
    alexey = make_record(first_name="Алексей", last_name="Попов", emails=["popov.a@bk.ru"])
    tosha = make_record(first_name="Антоша", last_name="Попов", emails=["popov.a@gmail.com"])
    anonymous = make_record(last_name="Попов", emails=["popov.a@mail.ru"])
    assert compare_records(anton, alexey)["email"] == "disagree"
    assert compare_records(anton, tosha)["email"] == "local_part"
    assert compare_records(anton, anonymous)["email"] == "local_part"


def test_location_levels(make_record: RecordFactory) -> None:
    a = make_record(city="г. Москва", address_line="ул. Ленина, д. 5, кв. 12")
    b = make_record(city="Moscow", address_line="улица Ленина дом 5 квартира 12")
    c = make_record(city="МОСКВА", address_line="ул. Тверская, д. 1, кв. 3")
    d = make_record(city="Казань")
    assert compare_records(a, b)["location"] == "address"
    assert compare_records(a, c)["location"] == "city"
    assert compare_records(a, d)["location"] == "disagree"


def test_swapped_name_fields_are_put_back() -> None:
    record = build_person_record("r1", first_name="Иванова", last_name="Мария")
    assert (record.first_name, record.last_name) == ("Мария", "Иванова")


def test_a_surname_alone_in_the_first_name_field_is_read_as_the_surname(
    make_record: RecordFactory,
) -> None:
    alone = build_person_record("r1", first_name="Смирнов")
    assert (alone.first_name, alone.last_name) == (None, "Смирнов")
    # Read as a given name, "Смирнов" contradicted Игорь; as the surname it agrees.
    levels = compare_records(
        make_record(first_name="Смирнов"), make_record(first_name="Игорь", last_name="Смирнов")
    )
    assert (levels["first_name"], levels["last_name"]) == (MISSING, "exact")


def test_a_given_name_alone_stays_a_given_name() -> None:
    for name in ("Игорь", "Ким"):  # a known name; no surname ending
        record = build_person_record("r1", first_name=name)
        assert (record.first_name, record.last_name) == (name, None)


def test_crossed_reading_catches_swaps_the_builder_leaves(make_record: RecordFactory) -> None:
    # "Ким" is not a surname by its ending, so the builder cannot tell; the comparison can.
    straight = make_record(first_name="Ольга", last_name="Ким")
    swapped = make_record(first_name="Ким", last_name="Ольга")
    levels = compare_records(straight, swapped)
    assert (levels["first_name"], levels["last_name"]) == ("exact", "exact")


def test_unknown_spelling_of_a_known_name_is_fuzzy(make_record: RecordFactory) -> None:
    a = make_record(first_name="Шуа", last_name="Иванов")  # "Шура" with a slip
    b = make_record(first_name="Александр", last_name="Иванов")
    assert compare_records(a, b)["first_name"] == "fuzzy"


@pytest.mark.parametrize(
    ("a", "b", "level"),
    [
        ("1980-12-13", "1980-12-31", "typo"),  # day digits transposed
        ("1980-01-12", "1980-10-12", "typo"),  # month digits transposed
        ("1918-07-01", "1981-07-01", "disagree"),  # a year is not a slip: parent and child
    ],
)
def test_transposed_digits_in_day_or_month_are_a_typo(a: str, b: str, level: str) -> None:
    assert birth_date_level(dt.date.fromisoformat(a), dt.date.fromisoformat(b)) == level


def test_postcode_and_house_number_make_a_street_address_agree() -> None:
    a = build_person_record(
        "a", city="umina breach", postcode="4873", address_line="11 stonehaven crescent"
    )
    b = build_person_record(
        "b", city="umina beach", postcode="4873", address_line="11 stonehaven crescent apt 2"
    )
    assert compare_records(a, b)["location"] == "address"


def test_same_postcode_is_its_own_location_level(make_record: RecordFactory) -> None:
    a = make_record(city="orange", postcode="2289", address_line="3 officer crescent")
    b = make_record(city="orange", postcode="2289", address_line="3 trumble street")
    c = make_record(city="orange", postcode="2290")
    assert compare_records(a, b)["location"] == "postcode"
    assert compare_records(a, c)["location"] == "city"


def test_swapped_fields_with_a_slip_or_a_replaced_given_name_read_crossed(
    make_record: RecordFactory,
) -> None:
    a = make_record(first_name="jack", last_name="stubbs")
    b = make_record(first_name="stubbs", last_name="jaxck")
    levels = compare_records(a, b)
    assert (levels["first_name"], levels["last_name"]) == ("fuzzy", "exact")
    c = make_record(first_name="quilliam", last_name="ashleigh")
    d = make_record(first_name="maddison", last_name="quilliam")
    levels = compare_records(c, d)
    assert (levels["first_name"], levels["last_name"]) == ("other", "exact")


def test_postcodes_one_slip_apart(make_record: RecordFactory) -> None:
    a = make_record(city="dover", postcode="6714")
    # The same city name: the slip is the likelier story.
    assert compare_records(a, make_record(city="dover", postcode="6741"))["location"] == (
        "postcode"
    )
    # Another city name: the same area at best.
    assert compare_records(a, make_record(city="wilson", postcode="6741"))["location"] == "city"
    assert compare_records(a, make_record(city="perth", postcode="6000"))["location"] == (
        "disagree"
    )


def test_one_slip_in_a_short_unknown_name_is_fuzzy(make_record: RecordFactory) -> None:
    pia, pai = make_record(first_name="pia"), make_record(first_name="pai")
    assert compare_records(pia, pai)["first_name"] == "fuzzy"
    # Two known names one letter apart are two names, not a slip.
    ira, iia = make_record(first_name="Ира"), make_record(first_name="Ия")
    assert compare_records(ira, iia)["first_name"] == "disagree"


def test_one_slip_in_a_four_letter_surname_is_fuzzy(make_record: RecordFactory) -> None:
    reid, reif = make_record(last_name="reid"), make_record(last_name="reif")
    assert compare_records(reid, reif)["last_name"] == "fuzzy"


def test_derived_data_is_shared_by_content_not_by_record_key() -> None:
    """A record is compared (and blocked) the same under any key, and a caller that changes
    a comparison it was given does not change the next caller's."""
    first = build_person_record(
        "-1", first_name="Маша", last_name="Иванова", phones=["+79161234567"]
    )
    again = build_person_record(
        "0", first_name="Маша", last_name="Иванова", phones=["+79161234567"]
    )
    other = build_person_record(
        "7", first_name="Мария", last_name="Иванова", phones=["+79161234567"]
    )
    given = compare_records(first, other)
    expected = dict(given)
    given["first_name"] = "disagree"
    assert compare_records(again, other) == expected
    assert compare_records(first, other) == expected
    assert blocking_keys(first) == blocking_keys(again)


def test_bounded_cache_keeps_its_newer_half_when_full() -> None:
    cache: BoundedCache[int] = BoundedCache(4)
    for value, key in enumerate("abcd"):
        cache.put((key,), value)
    cache.put(("e",), 4)
    # The two oldest went; the batch at work (the newest entries) is still there.
    assert cache == {("c",): 2, ("d",): 3, ("e",): 4}
    for value, key in enumerate("fghijk", start=5):
        cache.put((key,), value)
    assert len(cache) <= 4
    assert ("k",) in cache
