"""Blocking keys: few, selective, and shared by one person's differently written records."""

from __future__ import annotations

from collections.abc import Callable

from svod_identity.domain.matching import MAX_KEYS, PersonRecord, blocking_keys
from svod_identity.domain.matching.blocking import possible_keys

RecordFactory = Callable[..., PersonRecord]


def test_keys_are_capped_even_for_records_with_many_contacts(
    make_record: RecordFactory,
) -> None:
    record = make_record(
        first_name="Саша",  # two readings: Александр and Александра
        last_name="Ким",
        birth_date="1990-01-01",
        phones=["+79164821937", "+79263057144", "+74957312208"],
        emails=["sasha.kim@mail.ru", "kim90@gmail.com", "s.kim@yandex.ru"],
        cards=["2000123456789", "2000987654321"],
    )
    keys = blocking_keys(record)
    assert len(keys) <= MAX_KEYS
    # The name-based kinds survive the cap.
    assert {k.split(":")[0] for k in keys} >= {"p", "e", "c", "fb", "sb", "fs"}


def test_one_person_written_differently_shares_keys(make_record: RecordFactory) -> None:
    cyrillic = make_record(first_name="Маша", last_name="Иванова", birth_date="1985-03-14")
    latin = make_record(first_name="Mariya", last_name="Ivanova", birth_date="1985-03-14")
    typo = make_record(first_name="Мраия", last_name="Иванова", birth_date="1985-03-14")
    assert blocking_keys(cyrillic) & blocking_keys(latin)
    assert blocking_keys(cyrillic) & blocking_keys(typo)


def test_married_name_change_still_blocks_on_first_name_and_birth_date(
    make_record: RecordFactory,
) -> None:
    maiden = make_record(first_name="Анна", last_name="Кузнецова", birth_date="1990-03-08")
    married = make_record(first_name="Аня", last_name="Волкова", birth_date="1990-03-08")
    assert "fb:ana:19900308" in blocking_keys(maiden) & blocking_keys(married)


def test_phone_and_email_spellings_share_keys(make_record: RecordFactory) -> None:
    a = make_record(phones=["8 916 482-19-37"], emails=["Ivan.Petrov85@mail.ru"])
    b = make_record(phones=["+7 (916) 482-19-37"], emails=["ivan_petrov85@gmail.com"])
    assert {"p:+79164821937", "e:ivanpetrov85"} <= blocking_keys(a) & blocking_keys(b)


def test_placeholders_and_initials_make_no_keys(make_record: RecordFactory) -> None:
    record = make_record(first_name="И.", phones=["+7 000 000-00-00"], emails=["info@shop.ru"])
    assert blocking_keys(record) == {"e:info@shop.ru"}


def test_swapped_name_fields_still_share_a_key(make_record: RecordFactory) -> None:
    a = make_record(first_name="riley", last_name="gloster", birth_date="1959-01-24")
    b = make_record(first_name="gloster", last_name="mia", birth_date="1959-01-24")
    assert blocking_keys(a) & blocking_keys(b)


def test_one_home_with_garbled_names_and_birth_date_shares_a_key(
    make_record: RecordFactory,
) -> None:
    a = make_record(
        first_name="claudia",
        last_name="huxley",
        birth_date="1944-10-20",
        address_line="108 crease place edellen",
        postcode="2464",
    )
    b = make_record(
        first_name="huxlye",
        last_name="klaudia",
        birth_date="1985-10-22",
        address_line="108 crease plcae edellen",
        postcode="2464",
    )
    assert "ad:108:kre:2464" in blocking_keys(a) & blocking_keys(b)


def test_no_home_key_without_a_postcode(make_record: RecordFactory) -> None:
    # A flat in a city is shared by a whole household: blocking on it would flood EM's
    # candidate pairs with family members.
    record = make_record(
        first_name="Иван", last_name="Иванов", city="Москва", address_line="ул. Ленина, д. 5"
    )
    assert not any(k.startswith("ad:") for k in blocking_keys(record))


def test_slips_in_an_unknown_given_name_keep_a_key(make_record: RecordFactory) -> None:
    a = make_record(first_name="kynan", last_name="dooley")
    b = make_record(first_name="kynzn", last_name="dooley")
    assert blocking_keys(a) & blocking_keys(b)
    # Known names block on their canonical form only.
    assert not any(
        k.startswith("fi:")
        for k in blocking_keys(make_record(first_name="Маша", last_name="Орлова"))
    )


def test_swapped_name_fields_without_birth_date_share_a_key(make_record: RecordFactory) -> None:
    # No birth date, so no ``sb:`` key: the crossed reading of the unknown "given name" does it.
    a = make_record(first_name="adam", last_name="vaszocz", postcode="3135")
    b = make_record(first_name="vaszocz", last_name="adam", postcode="3153")
    assert blocking_keys(a) & blocking_keys(b)


def test_surname_slip_without_birth_date_shares_the_given_name_and_postcode_key(
    make_record: RecordFactory,
) -> None:
    a = make_record(first_name="Мария", last_name="Кузнецова", postcode="125009")
    b = make_record(first_name="Маша", last_name="Кузнезова", postcode="125009")
    assert "fp:maria:125009" in blocking_keys(a) & blocking_keys(b)
    # Without a postcode there is no such key (a city is too wide).
    assert not any(
        k.startswith("fp:")
        for k in blocking_keys(make_record(first_name="Мария", last_name="Кузнецова", city="Тверь"))
    )


def test_last_resort_keys_do_not_push_out_the_city_keys(make_record: RecordFactory) -> None:
    record = make_record(
        first_name="alana",  # two readings and unknown to the tables: every kind of key
        last_name="lombardi",
        birth_date="1902-11-23",
        postcode="4034",
        city="canterbury",
        address_line="6 mandurah place tantallon",
    )
    keys = blocking_keys(record)
    assert len(keys) <= MAX_KEYS
    assert any(k.startswith("db:") and k.endswith(":kanterburi") for k in keys)


def test_possible_keys_hold_the_keys_of_the_record_with_any_identifiers_left_out(
    make_record: RecordFactory,
) -> None:
    """What lets two chunks of an import run side by side: a record's keys, whichever of its
    identifiers end up blocked, are among its possible keys."""
    phones = ["+79164821937", "+79263057144", "+74957312208"]
    emails = ["sasha.kim@mail.ru", "kim90@gmail.com", "info@shop.ru"]
    cards = ["2000123456789", "2000987654321"]
    contacts = [("phones", p) for p in phones] + [("emails", e) for e in emails]
    contacts += [("cards", c) for c in cards]
    names = (
        {"first_name": "Саша", "last_name": "Ким", "birth_date": "1990-01-01"},
        {
            "first_name": "Zhenya",
            "last_name": "Petrova",
            "city": "Казань",
            "postcode": "420000",
            "address_line": "ул. Баумана, 5",
        },
        {},
    )
    for attributes in names:
        every = make_record(**attributes, phones=phones, emails=emails, cards=cards)
        possible = possible_keys(every)
        for mask in range(1 << len(contacts)):
            kept = [contact for bit, contact in enumerate(contacts) if mask >> bit & 1]
            subset = make_record(
                **attributes,
                phones=[v for kind, v in kept if kind == "phones"],
                emails=[v for kind, v in kept if kind == "emails"],
                cards=[v for kind, v in kept if kind == "cards"],
            )
            assert blocking_keys(subset) <= possible, kept
