"""An incoming record's matcher person is built once per record and identifiers
(``engine.incoming_person``) and rekeyed for the resolver (``record.rekeyed``): each is the
person ``person_from`` builds, the kept view and keys are those of the content, and the
record itself compares and hashes as before."""

from __future__ import annotations

from services.identity.tests.unit.records import incoming
from svod_identity.domain.engine import footprint, incoming_person, person_from
from svod_identity.domain.identifiers import IdentifierKey
from svod_identity.domain.matching.blocking import blocking_keys
from svod_identity.domain.matching.compare import view
from svod_identity.domain.matching.record import rekeyed

PHONE = IdentifierKey("phone", "+79161234567")
EMAIL = IdentifierKey("email", "anna.smirnova@example.ru")
ATTRIBUTES = {
    "first_name": "Анна",
    "last_name": "Смирнова",
    "birth_date": "1990-04-12",
    "addresses": [{"city": "Москва", "postal_code": "101000", "address_line": "ул. Ленина 5"}],
}


def test_the_person_is_the_one_person_from_builds() -> None:
    record = incoming(1, PHONE, EMAIL, **ATTRIBUTES)
    for identifiers in ((PHONE, EMAIL), (EMAIL,), ()):
        built = person_from("0", record.attributes, identifiers, record.ref.source)
        assert incoming_person(record, identifiers) == built
        assert incoming_person(record, list(identifiers)) is incoming_person(record, identifiers)
    assert incoming_person(record, (PHONE,)) != incoming_person(record, (PHONE, EMAIL))


def test_the_record_compares_and_hashes_as_before() -> None:
    record = incoming(2, PHONE, **ATTRIBUTES)
    twin = incoming(2, PHONE, **ATTRIBUTES)
    footprint(record)
    assert record == twin
    assert hash(record.ref) == hash(twin.ref)
    assert footprint(record) == footprint(twin)


def test_rekeyed_is_the_person_under_the_key_with_its_derived_data() -> None:
    record = incoming(3, PHONE, EMAIL, **ATTRIBUTES)
    person = incoming_person(record, record.identifiers)
    keys, seen = blocking_keys(person), view(person)
    moved = rekeyed(person, "42")
    assert moved == person_from("42", record.attributes, record.identifiers, record.ref.source)
    assert moved.record_key == "42"
    assert person.record_key == "0"
    assert blocking_keys(moved) == keys
    assert view(moved) is seen
