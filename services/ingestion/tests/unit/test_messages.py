from __future__ import annotations

import datetime as dt

import pytest

from svod_ingestion.domain.messages import Amount, IdentifyMessage, validate_identify
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


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"names": {"first_name": "x" * 201}}, "record.name.first_name"),
        ({"names": {"last_name": "Ива\x00нова"}}, "record.name.last_name"),
        ({"addresses": [{"city": "c" * 201}]}, "record.addresses[0].city"),
        ({"addresses": [{"city": "Москва"}] * 11}, "record.addresses"),
        ({"identifiers": [("custom", "v", "n" * 65)]}, "record.identifiers[0].namespace"),
        ({"identifiers": [("email", "a@b.ru", "")] * 51}, "record.identifiers"),
        ({"attributes": {"x" * 65: "v"}}, "record.attributes"),
        ({"attributes": {"note": "\x00"}}, "record.attributes[note]"),
        ({"observed_at": dt.datetime(1899, 12, 31, tzinfo=dt.UTC)}, "observed_time"),
        ({"gender": "other"}, "record.gender"),
        ({"size_bytes": 200 * 1024}, ""),
    ],
)
def test_identify_bounds_name_the_field(changes, field) -> None:
    assert violations(message(**changes)) == [field]


def test_a_time_refused_while_reading_is_reported_with_the_other_fields() -> None:
    from svod_runtime.errors import FieldViolation

    refused = (FieldViolation("observed_time", "out of range"),)
    assert violations(message(observed_at=None, refused=refused, source="")) == [
        "observed_time",
        "record_ref.source",
    ]


def order(**changes):
    from svod_ingestion.domain.messages import Amount, Line, TrackMessage

    rub = Amount("RUB", 100, 0)
    base = {
        "source": "pos-msk-01",
        "message_id": "e-1",
        "channel": "pos",
        "event_type": "order_placed",
        "occurred_at": NOW,
        "identifiers": [("phone", "+79161234567", "")],
        "total": rub,
        "lines": [Line(1, rub, Amount("RUB", 5, 0), "sku-1", "Туфли", "shoes")],
    }
    base.update(changes)
    return TrackMessage(**base)


def track_violations(msg) -> list[str]:
    from svod_ingestion.domain.messages import validate_track

    with pytest.raises(InvalidArgument) as invalid:
        validate_track(msg, NOW, "RUB")
    return [v.field for v in invalid.value.violations]


def test_a_good_order_passes() -> None:
    from svod_ingestion.domain.messages import validate_track

    validate_track(order(), NOW, "RUB")


def _line(quantity: int = 1, price: int = 100, discount: int = 0, **texts: str):
    from svod_ingestion.domain.messages import Line

    return Line(quantity, Amount("RUB", price, 0), Amount("RUB", discount, 0), **texts)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"total": Amount("RUB", 10**15, 0)}, "event.total"),
        ({"lines": [_line(price=10**11)]}, "event.lines[0].unit_price"),
        ({"lines": [_line(discount=-1)]}, "event.lines[0].discount"),
        ({"lines": [_line(quantity=0)]}, "event.lines[0].quantity"),
        ({"lines": [_line(quantity=2_000_000)]}, "event.lines[0].quantity"),
        ({"lines": [_line(quantity=1_000_000, discount=10**5)]}, "event.lines"),
        ({"lines": [_line()] * 1001}, "event.lines"),
        ({"lines": [_line(sku="s" * 129)]}, "event.lines[0].sku"),
        ({"lines": [_line(category="\x00")]}, "event.lines[0].category"),
        ({"order_id": "o" * 129}, "event.order_id"),
        ({"reference_id": "r" * 129}, "event.reference_id"),
        ({"properties": {f"p{i}": "v" for i in range(51)}}, "event.properties"),
        ({"properties": {"url": "u" * 1001}}, "event.properties[url]"),
        ({"loyalty_points": -5}, "event.loyalty_points"),
        ({"loyalty_points": 10**10}, "event.loyalty_points"),
        ({"occurred_at": dt.datetime(1850, 1, 1, tzinfo=dt.UTC)}, "event.occurred_time"),
        ({"occurred_at": NOW + dt.timedelta(minutes=6)}, "event.occurred_time"),
    ],
)
def test_track_bounds_name_the_field(changes, field) -> None:
    assert track_violations(order(**changes)) == [field]


def test_nanos_out_of_range_are_refused() -> None:
    assert track_violations(order(total=Amount("RUB", 1, 10**9))) == ["event.total"]
    assert track_violations(order(total=Amount("RUB", 1, -1))) == ["event.total"]


def test_erase_refs_are_bounded() -> None:
    from svod_ingestion.domain.messages import validate_refs

    validate_refs([("pos", "m-1")], "record_refs")
    for refs, field in (
        ([], "record_refs"),
        ([("pos", "")], "record_refs[0].message_id"),
        ([("POS!", "m")], "record_refs[0].source"),
        ([("pos", "m")] * 10_001, "record_refs"),
    ):
        with pytest.raises(InvalidArgument) as invalid:
            validate_refs(refs, "record_refs")
        assert [v.field for v in invalid.value.violations] == [field]
