"""Declared custom attribute types and the canonical form of their values."""

from __future__ import annotations

import pytest

from svod_runtime.custom_attributes import AttributeType, normalize, parse_declarations


@pytest.mark.parametrize(
    ("kind", "raw", "canonical"),
    [
        ("number", "38,5", "38.5"),
        ("number", "38.50", "38.5"),
        ("number", " 40 ", "40"),
        ("number", "1 200,50", "1200.5"),
        ("number", "1,200.50", "1200.5"),
        ("number", "1.200,50", "1200.5"),
        ("number", "-0", "0"),
        ("number", "1e5", None),
        ("number", "big", None),
        ("number", "NaN", None),
        ("number", "", None),
        ("integer", "3", "3"),
        ("integer", "3,0", "3"),
        ("integer", "-2", "-2"),
        ("integer", "3.5", None),
        ("bool", "yes", "true"),
        ("bool", "Да", "true"),
        ("bool", "TRUE", "true"),
        ("bool", "0", "false"),
        ("bool", "нет", "false"),
        ("bool", "maybe", None),
        ("date", "2020-06-01", "2020-06-01"),
        ("date", "01.06.2020", "2020-06-01"),
        ("date", "1.6.2020", "2020-06-01"),
        ("date", "31.02.2020", None),
        ("date", "2020-6-1", None),
        ("date", "yesterday", None),
        ("list", "Барсик,Рекс", "Барсик, Рекс"),
        ("list", " кот ", "кот"),
        ("list", "кот,,пёс", None),
        ("string", " as is ", " as is "),
    ],
)
def test_values_take_their_types_canonical_form(kind: str, raw: str, canonical: str | None) -> None:
    assert normalize(kind, raw) == canonical


def test_normalising_twice_changes_nothing() -> None:
    for kind, raw in (("number", "1 200,50"), ("bool", "да"), ("date", "01.06.2020")):
        once = normalize(kind, raw)
        assert once is not None and normalize(kind, once) == once


def test_declarations() -> None:
    assert parse_declarations('{"pets": "list"}') == {"pets": AttributeType.LIST}
    assert parse_declarations("") == {}
    with pytest.raises(ValueError, match="unknown type"):
        parse_declarations('{"pets": "array"}')
    with pytest.raises(ValueError, match="name"):
        parse_declarations('{"Pets": "list"}')
