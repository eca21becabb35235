"""Addresses: abbreviations, punctuation, postcode extraction."""

from __future__ import annotations

import pytest

from svod_quality.domain.addresses import normalize_address, normalize_address_line
from svod_quality.domain.model import Address


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "г.Москва,улица Тверская,дом 7 , корпус 2, квартира 15",
            "г. Москва, ул. Тверская, д. 7, корп. 2, кв. 15",
        ),
        (
            "Московская обл , Одинцовский район, пр-т Мира д 1 к 2 стр 3",
            "Московская обл., Одинцовский р-н, просп. Мира д. 1 корп. 2 стр. 3",
        ),
        ("ул Ленина д5 кв.12", "ул. Ленина д. 5 кв. 12"),
        ("Ленинградское шоссе д.16А стр.1", "Ленинградское ш. д. 16А стр. 1"),
        ("Бульвар Дмитрия Донского, 9", "б-р Дмитрия Донского, 9"),
        ("наб  реки Фонтанки,,20", "наб. реки Фонтанки, 20"),
        ("пл Революции, 2", "пл. Революции, 2"),
        ("Кутузовский проспект, д. № 5", "Кутузовский просп., д. 5"),
        ("пер Сивцев Вражек 1/2 оф 5", "пер. Сивцев Вражек 1/2 оф. 5"),
        ("УЛ. 1-Я ТВЕРСКАЯ-ЯМСКАЯ, Д. 5", "ул. 1-я Тверская-Ямская, д. 5"),
        # An initial is not an abbreviation.
        ("ул. К. Маркса, д. 10", "ул. К. Маркса, д. 10"),
    ],
)
def test_address_line(raw: str, expected: str) -> None:
    assert normalize_address_line(raw) == expected


def test_postcode_moves_from_line_to_field() -> None:
    address = normalize_address(
        Address("rus", "", "московская область", "г москва", "123456, ул ленина д5")
    )
    assert address == Address("RU", "123456", "Московская обл.", "Москва", "ул. Ленина д. 5")


def test_given_postcode_wins_and_conflicting_line_is_left_alone() -> None:
    address = normalize_address(Address("RU", "101 000", "", "", "190000, Невский пр-т 1"))
    assert address.postal_code == "101000"
    assert address.address_line == "190000, Невский просп. 1"
