"""Name knowledge: nicknames, transliteration, ё, case, gender."""

from __future__ import annotations

import pytest

from svod_identity.domain.matching import (
    canonical_first_name,
    gender_of_first_name,
    is_known_first_name,
    latin_skeleton,
)
from svod_identity.domain.matching.names import resolve_first_name
from svod_names.first_names import table_entries


@pytest.mark.parametrize(
    "written",
    ["Мария", "Маша", "Маня", "Муся", "Маруся", "Марья", "Maria", "Mariya", "Marija", "Mariia",
     "Masha", "МАРИЯ", "  мария ", "Мaрия"],  # the last one has a Latin "a"
)  # fmt: skip
def test_every_form_of_maria_is_maria(written: str) -> None:
    assert canonical_first_name(written) == {"мария"}


def test_sasha_follows_gender() -> None:
    assert canonical_first_name("Саша", "female") == {"александра"}
    assert canonical_first_name("Саша", "male") == {"александр"}
    assert canonical_first_name("Саша") == {"александр", "александра"}
    assert canonical_first_name("Sasha", "ж") == {"александра"}


def test_zhenya_and_valya_follow_gender() -> None:
    assert canonical_first_name("Женя", "female") == {"евгения"}
    assert canonical_first_name("Женя", "male") == {"евгений"}
    assert canonical_first_name("Валя", "male") == {"валентин"}


@pytest.mark.parametrize(
    ("canonical", "spellings"),
    [
        ("юлия", ["Юля", "Yuliya", "Julia", "Yulia", "Iuliia", "Juliya"]),
        ("александр", ["Aleksandr", "Alexander", "Alexandr", "Шура", "Саня"]),
        ("дмитрий", ["Дима", "Митя", "Dmitriy", "Dmitry", "Dmitrii", "Dmitrij"]),
        ("евгений", ["Evgeniy", "Yevgeny", "Evgenii", "Eugene", "Evgenij"]),
        ("сергей", ["Серёжа", "Серега", "Sergey", "Sergei", "Sergej"]),
        ("наталья", ["Наташа", "Наталия", "Natalia", "Natalya", "Nataliya", "Natal'ya"]),
        ("ксения", ["Ксюша", "Kseniya", "Xenia", "Ksenia", "Kseniia"]),
        ("петр", ["Пётр", "Петр", "Петя", "Pyotr", "Petr", "Peter"]),
        ("анастасия", ["Настя", "Anastasiya", "Anastasia", "Nastya"]),
        ("екатерина", ["Катя", "Катерина", "Yekaterina", "Ekaterina", "Katya"]),
        ("иван", ["Ваня", "Ivan", "Vanya"]),
        ("михаил", ["Миша", "Mikhail", "Mihail", "Michael"]),
        ("алексей", ["Лёша", "Алёша", "Aleksey", "Alexey", "Alexei", "Lyosha"]),
        ("илья", ["Илюша", "Ilya", "Ilia", "Il'ya"]),
        ("софья", ["Соня", "София", "Sofia", "Sofya", "Sophia"]),
    ],
)
def test_nicknames_and_transliterations(canonical: str, spellings: list[str]) -> None:
    for spelling in spellings:
        assert canonical in canonical_first_name(spelling), spelling


def test_yo_and_ye_are_one_letter() -> None:
    assert canonical_first_name("Артём") == canonical_first_name("Артем") == {"артем"}
    assert canonical_first_name("Алёна") == canonical_first_name("Алена")


def test_distinct_names_stay_distinct() -> None:
    assert canonical_first_name("Мария") != canonical_first_name("Марина")
    assert canonical_first_name("Александр") != canonical_first_name("Александра")
    assert canonical_first_name("Евгений") != canonical_first_name("Евгения")


def test_gender_of_first_names() -> None:
    assert gender_of_first_name("Маша") == "female"
    assert gender_of_first_name("Dmitry") == "male"
    assert gender_of_first_name("Саша") is None  # ambiguous
    assert gender_of_first_name("Зорислав") is None  # unknown


def test_unknown_names_come_back_as_themselves() -> None:
    assert canonical_first_name("Зорислав") == {"зорислав"}
    assert not is_known_first_name("Зорислав")
    assert canonical_first_name("") == frozenset()


def test_rare_names_are_known() -> None:
    assert is_known_first_name("Авксентий")
    assert canonical_first_name("Avksentiy") == {"авксентий"}


def test_a_typo_reads_as_the_nearest_name_for_matching_only() -> None:
    name = resolve_first_name("Екатреина")
    assert name is not None and name.corrected
    assert "екатерина" in name.canonicals
    # The public name key does not rename what it does not know.
    assert canonical_first_name("Екатреина") == {"екатреина"}


@pytest.mark.parametrize(
    ("a", "b"),
    [("Щербакова", "Shcherbakova"), ("Соловьёв", "Solovyov"), ("Соловьёв", "Solov'ev"),
     ("Кузнецов", "Kuznetsov"), ("Журавлёв", "Zhuravlyov"), ("Хохлова", "Khokhlova")],
)  # fmt: skip
def test_latin_skeleton_unifies_surname_transliterations(a: str, b: str) -> None:
    assert latin_skeleton(a) == latin_skeleton(b)


def test_the_matcher_knows_every_name_of_the_shared_table() -> None:
    """The matcher reads svod_names' table (profile and quality read it too), so a name added
    there - Динара, once only in quality's list - is a known name here, not a typo of Дина."""
    for entry in table_entries():
        assert is_known_first_name(entry.name), entry.name
        assert gender_of_first_name(entry.name) in (entry.gender, None), entry.name
    assert canonical_first_name("Динара") == frozenset({"динара"})
    assert gender_of_first_name("Айгуль") == "female"
