from __future__ import annotations

import datetime as dt

import pytest

from svod_ingestion.domain.messages import IdentifyMessage, validate_identify
from svod_runtime.errors import InvalidArgument

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


def message(**changes) -> IdentifyMessage:
    base = {
        "source": "pos-msk-01",
        "message_id": "m-1",
        "channel": "pos",
        "observed_at": NOW,
        "identifiers": [("phone", "8 (916) 123-45-67", "")],
    }
    base.update(changes)
    return IdentifyMessage(**base)


def violations(msg: IdentifyMessage) -> list[str]:
    with pytest.raises(InvalidArgument) as invalid:
        validate_identify(msg, NOW)
    return [v.field for v in invalid.value.violations]


def test_a_good_message_passes() -> None:
    validate_identify(message(), NOW)


def test_all_bad_fields_are_named_at_once() -> None:
    assert violations(message(source="", message_id="", channel="unspecified")) == [
        "record_ref.source",
        "record_ref.message_id",
        "channel",
    ]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"source": "POS Moscow"}, "record_ref.source"),
        ({"message_id": "x" * 129}, "record_ref.message_id"),
        ({"identifiers": [("phone", "call me", "")]}, "record.identifiers[0].value"),
        ({"identifiers": [("phone", "12345", "")]}, "record.identifiers[0].value"),
        ({"identifiers": [("email", "masha at mail", "")]}, "record.identifiers[0].value"),
        ({"identifiers": [("", "x", "")]}, "record.identifiers[0].type"),
        ({"identifiers": [("external_id", "C-1", "")]}, "record.identifiers[0].namespace"),
        ({"identifiers": []}, "record.identifiers"),
        ({"observed_at": NOW + dt.timedelta(hours=1)}, "observed_time"),
        ({"birth_date": (1990, 2, 30)}, "record.birth_date"),
        ({"birth_date": (2030, 1, 1)}, "record.birth_date"),
    ],
)
def test_each_malformed_field_is_named(changes, field) -> None:
    assert violations(message(**changes)) == [field]


def test_placeholder_phone_is_accepted_here_and_left_to_identity_rules() -> None:
    validate_identify(message(identifiers=[("phone", "+7 000 000-00-00", "")]), NOW)


DECLARED = {"shoe_size": "number", "vip": "bool", "anniversary": "date", "pets": "list"}


def test_declared_custom_attributes_are_type_checked() -> None:
    good = {"shoe_size": "38.5", "vip": "yes", "anniversary": "2020-06-01", "pets": "Барсик, Рекс"}
    validate_identify(message(attributes=good), NOW, DECLARED)
    with pytest.raises(InvalidArgument) as invalid:
        validate_identify(
            message(attributes={"shoe_size": "big", "vip": "maybe", "colour": "red"}), NOW, DECLARED
        )
    assert {v.field: v.description for v in invalid.value.violations} == {
        "record.attributes[shoe_size]": "must be a number",
        "record.attributes[vip]": "must be true or false (yes/no, да/нет, 1/0)",
        "record.attributes[colour]": "not a declared custom attribute",
    }


def test_bad_declarations_are_refused() -> None:
    from svod_ingestion.domain.attributes import parse_declarations

    assert parse_declarations('{"pets": "list"}') == {"pets": "list"}
    with pytest.raises(ValueError, match="unknown type"):
        parse_declarations('{"pets": "array"}')
