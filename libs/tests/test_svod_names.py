"""The shared first-name table: diminutives stand for passport names, full spellings for
themselves, Latin spellings read like Cyrillic ones."""

from __future__ import annotations

from svod_names.first_names import full_spelling, read_first_name, search_forms
from svod_names.text import latin_skeleton, to_cyrillic


def names(written: str, gender: str | None = None) -> list[str]:
    return [n.name for n in read_first_name(written, gender).names]


def test_diminutives_and_transliterations_read_as_the_passport_name() -> None:
    for written in ("Маша", "Masha", "Машенька", "Мария", "Maria", "Mariya", "МАРИЯ"):
        assert names(written) == ["Мария"], written
    assert not read_first_name("Маша").full
    assert read_first_name("Мария").full and read_first_name("Maria").full
    assert read_first_name("Наталия").full  # a full spelling of its own


def test_a_gender_reads_a_shared_diminutive_unless_it_contradicts_every_reading() -> None:
    assert names("Саша") == ["Александр", "Александра"]
    assert names("Саша", "female") == ["Александра"]
    assert names("Маша", "male") == ["Мария"]


def test_unknown_names_stand_for_themselves() -> None:
    reading = read_first_name("Ариадна")
    assert reading.names == () and reading.full


def test_latin_full_forms_have_a_cyrillic_spelling() -> None:
    assert full_spelling("Dmitry") == "Дмитрий"
    assert full_spelling("Dima") is None


def test_search_forms() -> None:
    assert search_forms("Маша", first_name=True) == {"masha", "maria"}
    assert search_forms("Smirnova") == {latin_skeleton("Смирнова")}
    assert search_forms("  ") == set()
    assert to_cyrillic("Smirnova") == "смирнова"
