"""Name standardisation: case, spacing, ё, splitting a full name, gender."""

from __future__ import annotations

import pytest

from svod_quality.domain.names import (
    NameParts,
    infer_gender,
    name_key,
    name_problem,
    normalize_name,
    split_full_name,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("иВАНОВ", "Иванов"),
        ("  ИВАНОВ  ", "Иванов"),
        ("римский - корсаков", "Римский-Корсаков"),
        ("анна   мария", "Анна Мария"),
        ("СЕМЁН", "Семён"),
        ("McDonald", "McDonald"),
        ("гасан оглы", "Гасан оглы"),
        ("   ", ""),
    ],
)
def test_normalize_name(raw: str, expected: str) -> None:
    assert normalize_name(raw) == expected


def test_yo_is_kept_but_compares_equal_to_e() -> None:
    assert normalize_name("фёдоров") == "Фёдоров"
    assert name_key("Фёдоров") == name_key("ФЕДОРОВ")


@pytest.mark.parametrize(
    ("full", "parts"),
    [
        ("Иванова Мария Петровна", NameParts("Иванова", "Мария", "Петровна")),
        ("Мария Петровна Иванова", NameParts("Иванова", "Мария", "Петровна")),
        ("Иванов Иван", NameParts("Иванов", "Иван", "")),
        ("Мария Иванова", NameParts("Иванова", "Мария", "")),
        ("Абрамович Роман Аркадьевич", NameParts("Абрамович", "Роман", "Аркадьевич")),
        ("Роман Аркадьевич Абрамович", NameParts("Абрамович", "Роман", "Аркадьевич")),
        ("Алиев Рашид Гасан оглы", NameParts("Алиев", "Рашид", "Гасан оглы")),
        ("Мария", NameParts("", "Мария", "")),
    ],
)
def test_split_full_name(full: str, parts: NameParts) -> None:
    assert split_full_name(full) == parts


@pytest.mark.parametrize("full", ["Джон Рональд Толкин", "Ыыы Ааа", "Иванов", "a b c d e"])
def test_split_refuses_to_guess(full: str) -> None:
    assert split_full_name(full) is None


@pytest.mark.parametrize(
    ("first", "middle", "expected"),
    [
        ("Мария", "Петровна", ("female", "patronymic")),
        ("Саша", "Петрович", ("male", "patronymic")),
        ("Ольга", "Ильинична", ("female", "patronymic")),
        ("Никита", "", ("male", "first_name")),
        ("Саша", "", ("unknown", "")),  # unisex: not guessed
        ("", "", ("unknown", "")),
    ],
)
def test_infer_gender(first: str, middle: str, expected: tuple[str, str]) -> None:
    assert infer_gender(first, middle) == expected


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("Тест", "placeholder"),
        ("xxx", "placeholder"),
        ("нет", "placeholder"),
        ("Иван2", "digits"),
        ("Ааааа", "repeated"),
        ("Ивaнов", "Cyrillic and Latin"),  # Latin "a"
        ("Иван!", "characters"),
    ],
)
def test_name_problem(name: str, problem: str) -> None:
    assert problem in name_problem(name)


@pytest.mark.parametrize("name", ["Иванов", "Римский-Корсаков", "Д'Артаньян", "Гасан оглы", "Ли"])
def test_real_names_are_plausible(name: str) -> None:
    assert name_problem(name) == ""


@pytest.mark.parametrize(
    ("first", "gender"),
    [
        # The shared table (svod_names): full names, diminutives and transliterations alike.
        ("Евгений", "male"),
        ("Вика", "female"),
        ("Mariya", "female"),
        ("Алишер", "male"),  # merged in from quality's former list
        ("Айгуль", "female"),
        # A diminutive of a man's and a woman's name settles nothing.
        ("Саша", "unknown"),
        ("Женя", "unknown"),
    ],
)
def test_first_names_come_from_the_shared_table(first: str, gender: str) -> None:
    assert infer_gender(first, "")[0] == gender


def test_a_full_name_in_latin_letters_splits_like_a_cyrillic_one() -> None:
    assert split_full_name("Mariya Ivanova") == NameParts("Ivanova", "Mariya", "")
    assert split_full_name("Евгений Петров") == NameParts("Петров", "Евгений", "")
