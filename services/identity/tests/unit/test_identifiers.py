from __future__ import annotations

import pytest

from svod_identity.domain.identifiers import IdentifierKey, normalize_identifiers
from svod_runtime.errors import InvalidArgument


@pytest.mark.parametrize(
    "raw",
    ["8 (916) 123-45-67", "+7 916 123 45 67", "89161234567", "+79161234567", "8-916-123-4567"],
)
def test_russian_phone_spellings_normalise_to_one_e164(raw: str) -> None:
    assert normalize_identifiers([("phone", raw, "")]) == (IdentifierKey("phone", "+79161234567"),)


def test_email_is_trimmed_and_lowercased() -> None:
    (key,) = normalize_identifiers([("email", "  Maria.Smirnova@Example.RU ", "")])
    assert key == IdentifierKey("email", "maria.smirnova@example.ru")


def test_card_loses_separators_and_external_id_keeps_its_namespace() -> None:
    keys = normalize_identifiers(
        [("loyalty_card", "2000 1234-5678", ""), ("external_id", "C-1", "CRM")]
    )
    assert keys == (
        IdentifierKey("external_id", "C-1", "crm"),
        IdentifierKey("loyalty_card", "200012345678"),
    )


def test_duplicates_after_normalisation_collapse() -> None:
    keys = normalize_identifiers(
        [("phone", "8 916 123 45 67", ""), ("phone", "+7 916 1234567", "")]
    )
    assert len(keys) == 1


def test_every_bad_identifier_is_reported_with_its_path() -> None:
    with pytest.raises(InvalidArgument) as invalid:
        normalize_identifiers(
            [
                ("phone", "12", ""),
                ("fax", "1", ""),
                ("email", "not-an-email", ""),
                ("custom", "x", ""),
                ("email", "a" * 300 + "@x.ru", ""),
            ]
        )
    fields = [v.field for v in invalid.value.violations]
    assert fields == [
        "identifiers[0].value",
        "identifiers[1].type",
        "identifiers[2].value",
        "identifiers[3].namespace",
        "identifiers[4].value",
    ]


def test_no_identifiers_is_invalid() -> None:
    with pytest.raises(InvalidArgument):
        normalize_identifiers([])
