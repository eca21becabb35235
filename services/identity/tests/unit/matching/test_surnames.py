"""Surname gender forms, patronymics and the phonetic key."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from svod_identity.domain.matching import (
    PersonRecord,
    compare_records,
    patronymic_form,
    surname_form,
    surname_key,
)

RecordFactory = Callable[..., PersonRecord]


@pytest.mark.parametrize(
    ("male", "female"),
    [("Иванов", "Иванова"), ("Петровский", "Петровская"), ("Толстой", "Толстая"),
     ("Соловьёв", "Соловьева"), ("Ильин", "Ильина"), ("Новицкий", "Новицкая"),
     ("Petrovsky", "Petrovskaya"), ("Ivanov", "Иванова")],
)  # fmt: skip
def test_gender_forms_share_a_stem(male: str, female: str) -> None:
    m, f = surname_form(male), surname_form(female)
    assert m is not None and f is not None
    assert (m.stem, m.gender) == (f.stem, "male")
    assert f.gender == "female"
    assert surname_key(male) == surname_key(female)


@pytest.mark.parametrize("surname", ["Шевченко", "Черных", "Ким", "Дюма"])
def test_indeclinable_surnames_have_no_gender(surname: str) -> None:
    form = surname_form(surname)
    assert form is not None and form.gender is None


def test_patronymics_share_the_fathers_stem() -> None:
    daughter, son = patronymic_form("Ивановна"), patronymic_form("Иванович")
    assert daughter is not None and son is not None
    assert daughter.stem == son.stem == "ivanov"
    assert (daughter.gender, son.gender) == ("female", "male")
    assert patronymic_form("Sergeyevna") == patronymic_form("Сергеевна")


def test_ivanova_vs_ivanov_is_a_gender_form_not_a_typo(make_record: RecordFactory) -> None:
    wife = make_record(first_name="Мария", last_name="Иванова")
    husband = make_record(first_name="Иван", last_name="Иванов")
    assert compare_records(wife, husband)["last_name"] == "gender_form"


def test_a_typo_in_a_surname_is_fuzzy(make_record: RecordFactory) -> None:
    a = make_record(first_name="Мария", last_name="Иванова")
    b = make_record(first_name="Мария", last_name="Иваонва")
    assert compare_records(a, b)["last_name"] == "fuzzy"


def test_a_womans_new_surname_is_a_change(make_record: RecordFactory) -> None:
    maiden = make_record(first_name="Мария", last_name="Иванова")
    married = make_record(first_name="Мария", last_name="Смирнова")
    assert compare_records(maiden, married)["last_name"] == "changed"
    men = (make_record(first_name="Иван", last_name=n) for n in ("Иванов", "Смирнов"))
    assert compare_records(*men)["last_name"] == "disagree"


def test_transliterated_surname_is_exact(make_record: RecordFactory) -> None:
    a = make_record(first_name="Наталья", last_name="Щербакова")
    b = make_record(first_name="Natalya", last_name="Shcherbakova")
    assert compare_records(a, b)["last_name"] == "exact"
